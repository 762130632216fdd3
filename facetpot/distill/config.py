"""``facet distill`` configuration: a training config (model, data, training, loss, finetune) plus three
sections that say what the teacher labels.

    teacher:     model (a shipped name or a model file), device, dtype, batch_atoms
    structures:  seeds (files or globs of seed structures), seed_frames (a Python slice over the seed
                 structures in input order, e.g. "::2" for every other one; default ":" all), seed (the random
                 seed: same seed, same structures), include_seeds, and one subsection per source (count per seed structure;
                 0 switches a source off):
                   perturb:    copies, strain (largest strain component), rattle [lo, hi] (Å, Gaussian sigma)
                   md:         temperatures (K), pressures (GPa; [] = NVT), steps, every, timestep_fs,
                               max_atoms (seeds with more atoms are skipped), min_atoms (smaller seeds are
                               repeated until they have this many)
                   substitute: elements (symbols), copies (each: one element of the seed, all its sites,
                               replaced by one of ``elements``; the cell scaled by the covalent radii)
                   vacancies:  copies (one random atom removed)
                   surfaces:   copies (vacuum along a random cell axis), vacuum (Å)
                 min_distance (Å): generated structures with a closer pair are dropped
    labels:      output (default: <training.output>/labels), part_size (structures per resumable part),
                 max_force (eV/Å: teacher labels with a larger force component are set aside)
    active:      rounds (0: off, every generated structure is labelled; > 0: active learning, ``active.py``),
                 committee (students per round, >= 2), initial and holdout (structures of the pool labelled first,
                 to train on and only to measure), per_round (most structures picked per round), threshold (eV/Å:
                 committee force std above which a structure is picked), strategy (committee, or random: the
                 baseline at the same number of labels), patience (rounds without a lower held-out error before
                 stopping), md (the committee's own MD from the seeds each round: temperatures (K), steps,
                 every, timestep_fs, max_atoms)

``data.train`` is filled in with the label parts; the other ``data`` keys (valid_fraction, ...) apply.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Dict

from ase.data import atomic_numbers

from ..training.config import ConfigError, read_yaml, relative_to, validate

SECTIONS: Dict[str, Dict[str, Any]] = {
    "teacher": {"model": None, "device": "auto", "dtype": "float64", "batch_atoms": 1024},
    "structures": {
        "seeds": None,
        "seed_frames": ":",
        "seed": 0,
        "include_seeds": True,
        "perturb": {"copies": 4, "strain": 0.03, "rattle": [0.02, 0.1]},
        "md": {
            "temperatures": [],
            "pressures": [],
            "steps": 200,
            "every": 20,
            "timestep_fs": 1.0,
            "max_atoms": 128,
            "min_atoms": 16,
        },
        "substitute": {"elements": [], "copies": 0},
        "vacancies": {"copies": 0},
        "surfaces": {"copies": 0, "vacuum": 8.0},
        "min_distance": 0.6,
    },
    "labels": {"output": None, "part_size": 200, "max_force": 50.0},
    "active": {
        "rounds": 0,
        "committee": 3,
        "initial": 100,
        "holdout": 100,
        "per_round": 100,
        "threshold": 0.05,
        "strategy": "committee",
        "patience": 1,
        "md": {"temperatures": [], "steps": 100, "every": 10, "timestep_fs": 1.0, "max_atoms": 128},
    },
}


def _merge(defaults: Dict[str, Any], values: Any, where: str) -> Dict[str, Any]:
    if values is None:
        return copy.deepcopy(defaults)
    if not isinstance(values, dict):
        raise ConfigError(f"{where} must be a mapping, got {type(values).__name__}")
    bad = sorted(set(values) - set(defaults))
    if bad:
        raise ConfigError(f"unknown key(s) {', '.join(where + '.' + b for b in bad)}; known: {sorted(defaults)}")
    out = copy.deepcopy(defaults)
    for key, value in values.items():
        if isinstance(defaults[key], dict):
            out[key] = _merge(defaults[key], value, f"{where}.{key}")
        else:
            out[key] = value
    return out


def parse_slice(text: str) -> slice:
    """ "start:stop:step" (each part optional, integers) -> slice; a clear error otherwise."""
    parts = str(text).split(":")
    try:
        if not 1 <= len(parts) <= 3 or (len(parts) == 1 and parts[0].strip()):
            raise ValueError
        values = [int(p) if p.strip() else None for p in parts]
    except ValueError:
        raise ConfigError(f"structures.seed_frames: {text!r} is not a slice like ':', '::2' or '0:100'") from None
    if len(values) == 3 and values[2] == 0:
        raise ConfigError("structures.seed_frames: the step cannot be 0")
    return slice(*values)


def validate_distill(raw: Dict[str, Any], base: Path) -> Dict[str, Any]:
    """(distill sections, training config) from a parsed YAML; relative paths are relative to ``base``."""
    if not isinstance(raw, dict):
        raise ConfigError(
            "the config must be a mapping with sections teacher, structures, labels and the "
            "training sections (model, data, training, loss, finetune)"
        )
    raw = dict(raw)
    cfg = {name: _merge(defaults, raw.pop(name, None), name) for name, defaults in SECTIONS.items()}
    if not cfg["teacher"]["model"]:
        raise ConfigError("teacher.model is required: a shipped model name (facet models) or a model file")
    seeds = cfg["structures"]["seeds"]
    if not seeds:
        raise ConfigError("structures.seeds is required: files or globs of seed structures (any format ASE reads)")
    cfg["structures"]["seeds"] = relative_to(seeds, base)
    parse_slice(cfg["structures"]["seed_frames"])
    teacher = str(cfg["teacher"]["model"])
    if (base / teacher).exists():
        cfg["teacher"]["model"] = str(base / teacher)
    for sym in cfg["structures"]["substitute"]["elements"]:
        if sym not in atomic_numbers:
            raise ConfigError(f"structures.substitute.elements: unknown element {sym!r}")
    act = cfg["active"]
    if act["strategy"] not in ("committee", "random"):
        raise ConfigError(f"active.strategy must be committee or random, got {act['strategy']!r}")
    for key, low in (
        ("rounds", 0),
        ("committee", 2),
        ("initial", 1),
        ("holdout", 1),
        ("per_round", 1),
        ("patience", 1),
    ):
        if not isinstance(act[key], int) or act[key] < low:
            raise ConfigError(f"active.{key} must be an integer >= {low}, got {act[key]!r}")
    if not float(act["threshold"]) >= 0:
        raise ConfigError(f"active.threshold must be >= 0 eV/Å, got {act['threshold']!r}")
    if int(cfg["labels"]["part_size"]) < 1:
        raise ConfigError("labels.part_size must be a positive integer")
    data = dict(raw.get("data") or {})
    if data.get("train"):
        raise ConfigError("data.train is set by facet distill (the teacher's labels); leave it out")
    data["train"] = "<labels>"  # replaced by the label parts once they exist
    if data.get("valid"):
        data["valid"] = relative_to(data["valid"], base)
    raw["data"] = data
    train_cfg = validate(raw)
    if cfg["labels"]["output"] is None:
        cfg["labels"]["output"] = str(Path(train_cfg["training"]["output"]) / "labels")
    return {**cfg, "train": train_cfg}


def load_distill_config(path) -> Dict[str, Any]:
    return validate_distill(read_yaml(path) or {}, Path(path).resolve().parent)
