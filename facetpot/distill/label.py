"""Teacher labels, written in parts that survive a killed run.

The structures are cut into parts of ``part_size`` (in their generated order); part k is labelled in
batches of ``batch_atoms`` atoms (``predict_structures``) and written atomically as
``OUT/part_{k:05d}.extxyz`` (energy, forces, stress; ``source``, ``parent``, ``distill_id`` kept).
A rerun skips every part whose file exists, so a SIGKILL costs at most the part in flight, and no
structure is ever labelled twice into the labels. ``structures.extxyz`` (the unlabelled structures)
is written first, atomically; a rerun reads it back instead of generating again, and refuses to
continue when the config now generates different structures (``distill_id`` order differs).

Labels that are not finite or have a force component above ``max_force`` eV/Å are set aside in
``OUT/rejected.tsv`` (distill_id, reason), never in a part.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, List, Optional, Sequence

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import read, write

from ..io.atomic_write import atomic_write, atomic_write_text
from ..inference.single_points import predict_structures

STRUCTURES = "structures.extxyz"


def part_path(out: Path, k: int) -> Path:
    return Path(out) / f"part_{k:05d}.extxyz"


def label_parts(out) -> List[Path]:
    """The finished parts that hold structures (a part whose labels were all rejected is an empty file)."""
    return sorted(p for p in Path(out).glob("part_*.extxyz") if p.stat().st_size > 0)


def rejected_ids(out) -> List[str]:
    """distill_id of every structure whose teacher label was set aside (``OUT/rejected.tsv``), by any run."""
    path = Path(out) / "rejected.tsv"
    return [line.split("\t")[0] for line in path.read_text().splitlines() if line] if path.exists() else []


def save_structures(out, structures: Sequence[Atoms]) -> List[Atoms]:
    """Write the structures once; on a rerun check that the config still makes the same ones."""
    path = Path(out) / STRUCTURES
    if path.exists():
        old = read(path, ":")
        if [a.info.get("distill_id") for a in old] != [a.info.get("distill_id") for a in structures]:
            raise ValueError(
                f"{path} holds other structures than this config generates (changed config?): "
                "use a new labels.output folder, or delete it to start again"
            )
        return old
    atomic_write(path, lambda tmp: write(tmp, list(structures), format="extxyz"))
    return list(structures)


def label(
    teacher,
    structures: Sequence[Atoms],
    out,
    part_size: int,
    batch_atoms: int,
    max_force: float,
    progress: Optional[Callable[[int, int], None]] = None,
) -> dict:
    """Label every part not yet on disk; returns counts {labelled, skipped_parts, rejected}."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    n_parts = (len(structures) + part_size - 1) // part_size
    counts = {"labelled": 0, "skipped_parts": 0, "rejected": 0}
    rejected_path = out / "rejected.tsv"
    rejected = rejected_path.read_text().splitlines() if rejected_path.exists() else []
    for k in range(n_parts):
        chunk = structures[k * part_size : (k + 1) * part_size]
        if part_path(out, k).exists():  # done by an earlier run
            counts["skipped_parts"] += 1
            if progress:
                progress(k + 1, n_parts)
            continue
        results = predict_structures(teacher, chunk, batch_atoms)
        labelled, bad = [], []
        for atoms, (energy, forces, stress) in zip(chunk, results):
            why = ""
            if not (np.isfinite(energy) and np.all(np.isfinite(forces))):
                why = "non-finite energy or forces"
            elif np.abs(forces).max(initial=0.0) > max_force:
                why = f"force component {np.abs(forces).max():.1f} eV/Å > max_force {max_force}"
            if why:
                bad.append(f"{atoms.info.get('distill_id', '?')}\t{why}")
                continue
            a = atoms.copy()
            kw = {"energy": energy, "forces": forces}
            if stress is not None:
                kw["stress"] = stress
            a.calc = SinglePointCalculator(a, **kw)
            labelled.append(a)
        if bad:
            rejected = [line for line in rejected if line.split("\t")[0] not in {b.split("\t")[0] for b in bad}] + bad
            atomic_write_text(rejected_path, "\n".join(rejected) + "\n")
        atomic_write(part_path(out, k), lambda tmp: write(tmp, labelled, format="extxyz"))
        counts["labelled"] += len(labelled)
        counts["rejected"] += len(bad)
        if progress:
            progress(k + 1, n_parts)
    return counts
