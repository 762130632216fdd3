"""The model a run trains: new (config ``model`` + statistics of the data), fine-tuned (``finetune.from``,
with new elements added and reference energies shifted to the data's), or restored from a checkpoint;
then frozen parameters marked.

The statistics (E0, average neighbour count, scale) depend on the cutoff, which is known only once
the model is chosen, so they are asked for through ``stats_fn(cutoff)``.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from ase.data import chemical_symbols

from ..model import DEFAULT_CONFIG, FacetModel, build_model
from ..inference.model_source import resolve_model
from .distributed import log

StatsFn = Callable[[float], Dict[str, Any]]
ResidualFn = Callable[[FacetModel], Dict[int, float]]


def build_or_load_model(
    cfg: Dict[str, Any], species: List[int], stats_fn: StatsFn, residual_fn: Optional[ResidualFn] = None
) -> Tuple[FacetModel, Dict[str, Any]]:
    """(model, statistics) for a run that does not resume: fine-tuned or new. ``residual_fn(model)``: the
    model's reference energies refitted to what it leaves in the data (``finetune_energies.py``)."""
    if cfg["finetune"]["from"]:
        return finetuned_model(cfg["finetune"], species, stats_fn, residual_fn)
    model_cfg = dict(cfg["model"])
    model_cfg.setdefault("species", species)
    stats = stats_fn(float(model_cfg.get("cutoff", DEFAULT_CONFIG["cutoff"])))
    model_cfg.setdefault("avg_num_neighbors", stats["avg_num_neighbors"])
    model = build_model(**model_cfg)
    if "atomic_energies" not in cfg["model"]:
        model.set_atomic_energies({z: stats["atomic_energies"].get(z, 0.0) for z in model.species})
    if "scale" not in cfg["model"] and stats["scale"] > 0:
        model.set_scale({z: stats["scale"] for z in model.species})
    if cfg["training"]["readout_init"] == "zero":
        zero_readout(model)
    return model, stats


def zero_readout(model: FacetModel) -> None:
    """Readout weights 0: the new model starts as E_i = E0[s_i], forces and stress 0 (the zero predictor), instead
    of random forces of the size of the data's force RMS. Its gradient is not 0, so the first step moves it."""
    with torch.no_grad():
        for w in model.readout.weights:
            w.zero_()


def finetuned_model(
    ft: Dict[str, Any], species: List[int], stats_fn: StatsFn, residual_fn: Optional[ResidualFn]
) -> Tuple[FacetModel, Dict[str, Any]]:
    """The base model ``ft["from"]`` (float64 on the CPU) with the data's new elements added and its
    reference energies shifted to the data's (``refit_atomic_energies``; new elements always)."""
    base = resolve_model(ft["from"], device="cpu", dtype="float64")
    missing = sorted(set(species) - set(base.species))
    model = extend_species(base, missing) if missing else base
    if missing:
        log(f"fine-tuning {ft['from']}: added element(s) {missing} the base model lacks")
    stats = stats_fn(model.cutoff)
    if (ft["refit_atomic_energies"] or missing) and residual_fn is not None:
        before = dict(zip(model.species, model.atomic_energies.tolist()))
        fitted = residual_fn(model)
        keep = species if ft["refit_atomic_energies"] else missing
        model.set_atomic_energies({z: fitted[z] for z in keep})
        log(
            "reference energies: base model's shifted by the fit of what it leaves in the data: "
            + ", ".join(f"{chemical_symbols[z]} {fitted[z] - before[z]:+.4f} eV" for z in keep)
        )
    stats["atomic_energies"] = {int(z): float(e) for z, e in zip(model.species, model.atomic_energies.tolist())}
    stats["base_species"] = [int(z) for z in base.species]  # what replay may use: the elements the base knows
    return model, stats


def extend_species(base: FacetModel, extra: List[int]) -> FacetModel:
    """A copy of ``base`` covering ``extra`` elements too: new embedding rows, all else copied."""
    cfg = dict(base.config)
    cfg["species"] = sorted(set(base.species) | set(extra))
    for key in ("atomic_energies", "scale"):
        if isinstance(cfg[key], dict):
            fill = 0.0 if key == "atomic_energies" else float(np.mean(list(cfg[key].values())))
            cfg[key] = {**{z: fill for z in extra}, **cfg[key]}
    model = FacetModel(**cfg).double()
    state = base.state_dict()
    new_state = model.state_dict()
    for k, v in state.items():
        if k == "embedding.weight":
            for row, z in enumerate(base.species):
                new_state[k][model.species.index(z)] = v[row]
        else:
            new_state[k] = v
    model.load_state_dict(new_state)
    return model


def model_from_checkpoint(ckpt: Dict[str, Any]) -> FacetModel:
    """The model of a checkpoint, in the dtype of its weights (no rounding on load)."""
    dtype = next(iter(ckpt["model"].values())).dtype
    model = FacetModel(**ckpt["model_config"]).to(dtype=dtype)
    model.load_state_dict(ckpt["model"])
    return model


def check_species(model: FacetModel, species: Sequence[int]) -> None:
    unknown = sorted(set(species) - set(model.species))
    if unknown:
        raise ValueError(
            f"training data has element(s) Z={unknown} that the model does not cover; "
            "add them to model.species (or fine-tune, which adds them)"
        )


def freeze(model: torch.nn.Module, prefixes: Sequence[str]) -> None:
    """No gradient for parameters whose names start with one of ``prefixes`` (``finetune.freeze``)."""
    for name, p in model.named_parameters():
        if any(name.startswith(prefix) for prefix in prefixes):
            p.requires_grad_(False)
