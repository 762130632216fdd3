"""Replay for fine-tuning: structures labelled by the base model itself, mixed into every epoch.

Fine-tuning on a few hundred frames of one system moves weights every element shares, so a universal
model forgets what it knew elsewhere. Replay (MACE's multihead fine-tuning with pseudolabels) adds
frames whose labels are the base model's own predictions: the loss then also asks the fine-tuned model
to stay what it was away from the new data. The replay set is labelled once, before the first step,
by the base model with its reference energies already shifted to the data's
(``finetune_energies.py``), so replay and data energies share one reference; it is written to
``OUTPUT/replay/replay.extxyz`` (config_type ``replay``, frame weight ``finetune.replay.weight``) and
reused on ``--resume``. Each epoch draws ``per_epoch`` of the replay frames anew (default: as many as the
data's training frames, so replay at most doubles an epoch's cost). A share ``valid_fraction`` is held out:
``valid_replay_*`` in metrics.csv is how far the model has moved from the base model (forgetting), beside the data's own validation.

``finetune.replay.enabled`` "auto" turns replay on when ``finetune.from`` names a shipped model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import read, write

from ..data.cache import FrameCache
from ..io.atomic_write import atomic_write
from ..inference.prepare import inference_model
from ..pretrained import PRETRAINED
from ..inference.single_points import predict_structures
from .data_prep import cache_root, ensure_cache, split_indices
from .distributed import barrier, log, rank
from .replay_structures import prototype_structures

REPLAY_FILE = "replay.extxyz"
MAX_FORCE = 20.0  # eV/Å: a replay label above this is dropped (a bad prototype, not what the model knows)


@dataclass
class ReplayData:
    """Replay frames ``cache[train_idx]`` for training, ``cache[valid_idx]`` for the forgetting check."""

    cache: FrameCache
    train_idx: np.ndarray
    valid_idx: np.ndarray


def replay_enabled(ft: Dict[str, Any]) -> bool:
    """Whether this fine-tune replays: asked for, or "auto" and the base is a shipped model."""
    enabled = ft["replay"]["enabled"]
    return bool(ft["from"]) and (enabled is True or (enabled == "auto" and str(ft["from"]) in PRETRAINED))


def replay_structures(
    opts: Dict[str, Any], species: Sequence[int], data_species: Sequence[int], seed: int
) -> List[Atoms]:
    """The structures to label: ``frames`` of ``opts["structures"]`` (a seeded draw among those whose elements
    are all in ``species``; their own labels are ignored), else generated prototypes over ``species``."""
    if not opts["structures"]:
        return prototype_structures(opts["frames"], species, data_species, seed=seed, focus=opts["focus"])
    read_in = [a for path in opts["structures"] for a in read(path, ":")]
    structures = [a for a in read_in if set(a.numbers.tolist()) <= set(species)]
    if len(structures) < len(read_in):
        log(
            f"replay: {len(read_in) - len(structures)} of the given structures hold elements the base model lacks: left out"
        )
    pick = np.random.default_rng(seed).permutation(len(structures))[: opts["frames"]]
    out = []
    for k in sorted(pick.tolist()):
        a = Atoms(structures[k].numbers, structures[k].positions, cell=structures[k].cell, pbc=structures[k].pbc)
        a.info.update(config_type="replay", replay_id=k)
        out.append(a)
    return out


def label(model, structures: Sequence[Atoms], weight: float) -> List[Atoms]:
    """The structures with ``model``'s energy, forces and stress as labels; non-finite or > MAX_FORCE dropped."""
    prepared = inference_model(model, device="cpu", dtype="float64")
    out = []
    for atoms, (energy, forces, stress) in zip(structures, predict_structures(prepared, structures, 1024)):
        if np.isfinite(energy) and np.all(np.isfinite(forces)) and np.abs(forces).max() <= MAX_FORCE:
            a = atoms.copy()
            a.info["weight"] = float(weight)
            a.calc = SinglePointCalculator(a, energy=energy, forces=forces, stress=stress)
            out.append(a)
    return out


def write_replay_set(
    model, ft: Dict[str, Any], species: Sequence[int], data_species: Sequence[int], folder: Path, seed: int
) -> Path:
    """``folder/replay.extxyz``, labelled by ``model`` (the base model) once; an existing file is kept.
    Generated structures hold elements of ``species`` only (the base model's, not those a fine-tune adds)."""
    path = folder / REPLAY_FILE
    if path.exists() or rank() != 0:
        return path
    opts = ft["replay"]
    structures = replay_structures(opts, species, data_species, seed)
    labelled = label(model, structures, opts["weight"])
    if not labelled:
        raise ValueError("no replay structure got a usable label from the base model")
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: write(tmp, labelled, format="extxyz"))
    log(
        f"replay: {len(labelled)} structures labelled by the base model ({len(structures) - len(labelled)} "
        f"dropped), weight {opts['weight']}, in {path}"
    )
    return path


def prepare_replay(
    model, cfg: Dict[str, Any], species: Sequence[int], data_species: Sequence[int], out: Path, resume: bool
) -> Optional[ReplayData]:
    """The replay frames of a fine-tune (None without replay): labelled by ``model`` unless resuming; generated
    ones hold elements of ``species`` (the base model's) only."""
    ft = cfg["finetune"]
    if not replay_enabled(ft):
        return None
    folder = out / "replay"
    if resume and not (folder / REPLAY_FILE).exists():
        raise ValueError(
            f"{folder / REPLAY_FILE} is missing: this run was not started with replay; "
            "resume with finetune.replay: false, or start a new run"
        )
    path = write_replay_set(model, ft, species, data_species, folder, int(cfg["training"]["seed"]))
    barrier()
    cache = ensure_cache([str(path)], cache_root(cfg["data"], out) / "replay", cfg["data"])
    train_idx, valid_idx = split_indices(cache, ft["replay"]["valid_fraction"], "frame", int(cfg["training"]["seed"]))
    return ReplayData(cache, train_idx, valid_idx)
