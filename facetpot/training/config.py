"""Training configuration: YAML -> validated dict with defaults; every mistake named with its path.

Worked examples: the repository's ``training/`` folder (``training/*.yaml``, ``training/README.md``).
Sections: ``model`` (options of ``build_model``), ``data``, ``training``, ``loss``, ``finetune``.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any, Dict, List

import yaml

DEFAULTS: Dict[str, Dict[str, Any]] = {
    "model": {},  # build_model options; species default: the elements of the training data
    "data": {
        "train": None,  # file, glob or list of them (extxyz, ASE .db, MPtrj .json)
        "valid": None,  # optional files; else a split of train
        "valid_fraction": 0.1,
        "split_by": "auto",  # group (MPtrj trajectory), frame, or auto (group when groups exist)
        "keys": {},  # e.g. {energy: REF_energy, forces: REF_forces, stress: REF_stress}
        "mptrj_energy": "uncorrected",
        "cache": None,  # default: <output>/cache
        "stats_frames": 2000,  # frames sampled for the average neighbour count
    },
    "training": {
        "output": "runs/facet",
        "seed": 0,
        "device": "auto",  # auto, cpu, cuda
        "dtype": "float32",
        "max_atoms_per_batch": 1024,
        "max_frames_per_batch": 32,
        "epochs": 100,
        "max_steps": None,  # stops earlier than epochs when set
        "max_time_minutes": None,  # stop (validate, save) when the run has used this much wall time
        "optimizer": "adamw",
        "lr": None,  # default: 1e-3 for a new model, 3e-4 for a fine-tune (finetune.from)
        "weight_decay": 1e-3,
        "schedule": "cosine",  # cosine, plateau, constant
        "warmup_steps": None,  # default: 10% of the run's steps, at most 100
        "min_lr_ratio": 0.01,
        "plateau_patience": 5,
        "plateau_factor": 0.5,
        "grad_clip": 10.0,
        "ema_decay": 0.99,
        "readout_init": "random",  # a new model's energy readout: random, or zero (forces start at 0)
        "valid_every": None,  # steps; default: once per epoch
        "checkpoint_every": None,  # steps; default: valid_every
        "log_every": 10,
        "num_workers": 0,
        "threads": None,
        "tensorboard": True,
    },
    "loss": {
        "type": "huber",  # huber, mae, mse
        "huber_delta": 0.01,
        "energy_weight": 1.0,  # on energy per atom (eV/atom)
        "forces_weight": 10.0,  # on force components (eV/Å)
        "stress_weight": 1.0,  # on stress components (eV/Å^3)
        "stage_two": None,  # optional: other weights for the end of the run, STAGE_TWO below (MACE's "stage two")
    },
    "finetune": {
        "from": None,  # model file or pretrained name
        "freeze": [],  # parameter name prefixes, e.g. [embedding, layers.0]
        "refit_atomic_energies": True,  # shift the base E0 by the fit of what the base model leaves in the data
        "replay": None,  # true, false, auto (on when `from` names a shipped model), or a mapping: REPLAY below
    },
}

#: ``finetune.replay`` as a mapping: structures labelled by the base model itself, mixed into every epoch
REPLAY: Dict[str, Any] = {
    "enabled": "auto",
    "frames": 200,  # how many replay structures
    "weight": 1.0,  # weight of a replay frame in the loss (a data frame has its own, default 1)
    "per_epoch": None,  # replay frames drawn anew for each epoch; default: as many as the training frames
    "structures": None,  # files of structures for the base model to label; default: generated prototypes
    "focus": 0.5,  # fraction of generated structures that pair an element of the data with others
    "valid_fraction": 0.1,  # replay frames held out: valid_replay_* in metrics.csv measures forgetting
}

#: ``loss.stage_two``: from ``start`` (fraction of the run: steps or wall-time budget, whichever is further)
#: the loss uses these weights (missing ones: the stage-one weight). Forces first, energy at the end.
STAGE_TWO: Dict[str, Any] = {"start": 0.75, "energy_weight": None, "forces_weight": None, "stress_weight": None}

CHOICES = {
    ("data", "split_by"): ("auto", "group", "frame"),
    ("data", "mptrj_energy"): ("uncorrected", "corrected"),
    ("training", "device"): ("auto", "cpu", "cuda"),
    ("training", "dtype"): ("float32", "float64"),
    ("training", "optimizer"): ("adamw", "adam"),
    ("training", "schedule"): ("cosine", "plateau", "constant"),
    ("training", "readout_init"): ("random", "zero"),
    ("loss", "type"): ("huber", "mae", "mse"),
}

POSITIVE = {("training", k) for k in ("max_atoms_per_batch", "max_frames_per_batch", "epochs", "log_every")}
#: default learning rates: a fine-tune moves a trained model less (benchmarks/finetune_replay.py: on EMT Cu/Al with
#: replay, 1e-3 fits the new system twice as well in 15 epochs but costs +17% on MPtrj forces, 3e-4 costs +5%)
NEW_MODEL_LR, FINETUNE_LR = 1e-3, 3e-4


class ConfigError(ValueError):
    pass


def validate(raw: Dict[str, Any]) -> Dict[str, Any]:
    if not isinstance(raw, dict):
        raise ConfigError("the config must be a mapping with sections model, data, training, loss, finetune")
    unknown = sorted(set(raw) - set(DEFAULTS))
    if unknown:
        raise ConfigError(f"unknown section(s) {unknown}; known: {sorted(DEFAULTS)}")
    cfg = copy.deepcopy(DEFAULTS)
    for section, values in raw.items():
        if values is None:
            continue
        if not isinstance(values, dict):
            raise ConfigError(f"section '{section}' must be a mapping, got {type(values).__name__}")
        if section == "model":
            cfg["model"] = dict(values)
            continue
        bad = sorted(set(values) - set(DEFAULTS[section]))
        if bad:
            raise ConfigError(
                f"unknown key(s) {', '.join(section + '.' + b for b in bad)}; "
                f"known in '{section}': {sorted(DEFAULTS[section])}"
            )
        for key, value in values.items():
            default = DEFAULTS[section][key]
            if default is not None and value is not None and not isinstance(default, (list, dict)):
                typ = float if isinstance(default, float) else type(default)
                if typ is float and isinstance(value, (int, float)) and not isinstance(value, bool):
                    value = float(value)
                elif typ is int and isinstance(value, bool) or not isinstance(value, typ):
                    raise ConfigError(f"{section}.{key} must be {typ.__name__}, got {value!r}")
            if (section, key) in CHOICES and value not in CHOICES[(section, key)]:
                raise ConfigError(f"{section}.{key} must be one of {CHOICES[(section, key)]}, got {value!r}")
            if (section, key) in POSITIVE and not value > 0:
                raise ConfigError(f"{section}.{key} must be positive, got {value!r}")
            cfg[section][key] = value
    cfg["finetune"]["replay"] = replay_options(cfg["finetune"]["replay"])
    cfg["loss"]["stage_two"] = stage_two_options(cfg["loss"]["stage_two"], cfg["loss"])
    if not cfg["data"]["train"]:
        raise ConfigError("data.train is required: a file, a glob, or a list of them")
    lr = cfg["training"]["lr"]
    if lr is None:
        cfg["training"]["lr"] = FINETUNE_LR if cfg["finetune"]["from"] else NEW_MODEL_LR
    elif isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0:
        raise ConfigError(f"training.lr must be a positive number, got {lr!r}")
    else:
        cfg["training"]["lr"] = float(lr)
    warmup = cfg["training"]["warmup_steps"]
    if warmup is not None and (isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0):
        raise ConfigError(f"training.warmup_steps must be a whole number >= 0, got {warmup!r}")
    if not 0.0 <= cfg["data"]["valid_fraction"] < 1.0:
        raise ConfigError(f"data.valid_fraction must be in [0, 1), got {cfg['data']['valid_fraction']}")
    return cfg


def check_mapping(value: Any, known: Dict[str, Any], name: str, allowed: str) -> None:
    """A nested option ``name`` must be a mapping (or what ``allowed`` says) with only the ``known`` keys."""
    if not isinstance(value, dict):
        raise ConfigError(f"{name} must be {allowed} of {sorted(known)}, got {value!r}")
    bad = sorted(set(value) - set(known))
    if bad:
        raise ConfigError(f"unknown key(s) {', '.join(name + '.' + b for b in bad)}; known: {sorted(known)}")


def replay_options(value: Any) -> Dict[str, Any]:
    """``finetune.replay`` (true, false, "auto" or a mapping of REPLAY keys; None: the defaults) -> the full mapping."""
    out = dict(REPLAY)
    if value is None:
        return out
    if isinstance(value, bool) or value == "auto":
        out["enabled"] = value
        return out
    check_mapping(value, REPLAY, "finetune.replay", "true, false, auto or a mapping")
    out.update(value)
    out["enabled"] = value.get("enabled", True)
    checks = {
        "enabled": out["enabled"] in (True, False, "auto"),
        "frames": isinstance(out["frames"], int) and not isinstance(out["frames"], bool) and out["frames"] > 0,
        "weight": isinstance(out["weight"], (int, float)) and out["weight"] >= 0,
        "per_epoch": out["per_epoch"] is None or (isinstance(out["per_epoch"], int) and out["per_epoch"] > 0),
        "focus": isinstance(out["focus"], (int, float)) and 0 <= out["focus"] <= 1,
        "valid_fraction": isinstance(out["valid_fraction"], (int, float)) and 0 <= out["valid_fraction"] < 1,
        "structures": out["structures"] is None or isinstance(out["structures"], (str, list)),
    }
    wrong = [k for k, ok in checks.items() if not ok]
    if wrong:
        raise ConfigError(
            f"finetune.replay.{wrong[0]} is invalid: {out[wrong[0]]!r} (enabled: true/false/auto, "
            "frames > 0, weight >= 0, per_epoch > 0, focus in [0, 1], valid_fraction in [0, 1), structures: files)"
        )
    return out


def stage_two_options(value: Any, loss: Dict[str, Any]) -> Any:
    """``loss.stage_two`` (None, or a mapping of STAGE_TWO keys) -> None or the full mapping, missing
    weights taken from stage one."""
    if value is None or value is False:
        return None
    check_mapping(value, STAGE_TWO, "loss.stage_two", "a mapping")
    weights = ("energy_weight", "forces_weight", "stress_weight")
    if all(value.get(k) is None for k in weights):
        raise ConfigError(f"loss.stage_two changes no weight: give one or more of {', '.join(weights)}")
    out = {**STAGE_TWO, **value}
    for key, v in out.items():
        if v is None and key in weights:
            out[key] = float(loss[key])  # stage one's (checked as part of the loss section)
            continue
        if (
            isinstance(v, bool)
            or not isinstance(v, (int, float))
            or not math.isfinite(v)
            or v < 0
            or (key == "start" and not v < 1)
        ):
            raise ConfigError(
                f"loss.stage_two.{key} must be "
                + ("a fraction of the run in [0, 1)" if key == "start" else "a finite number >= 0")
                + f", got {v!r}"
            )
        out[key] = float(v)
    return out


def read_yaml(path) -> Any:
    """The parsed YAML file ``path``; a clear ConfigError when it is missing or not YAML."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc


def relative_to(value, base: Path) -> List[str]:
    """A path or list of paths (globs allowed) as a list, relative ones taken relative to ``base``."""
    return [p if Path(p).is_absolute() else str(base / p) for p in ([value] if isinstance(value, str) else value)]


def load_config(path) -> Dict[str, Any]:
    cfg = validate(read_yaml(path) or {})
    # relative data paths are relative to the config file
    base = Path(path).resolve().parent
    for key in ("train", "valid"):
        if cfg["data"][key]:
            cfg["data"][key] = relative_to(cfg["data"][key], base)
    if cfg["finetune"]["replay"]["structures"]:
        cfg["finetune"]["replay"]["structures"] = relative_to(cfg["finetune"]["replay"]["structures"], base)
    return cfg
