"""Relaxation of many structures, one by one, with ASE's optimizers (``facet relax``).

For every structure: FIRE or BFGS on the positions, or on positions and cell together (ASE's
``FrechetCellFilter``: the cell's degrees of freedom are the log of the deformation gradient, scaled
by the atom count), optionally keeping the space group (``FixSymmetry``), until the largest force
(and the largest stress component times the volume, through the filter) is below ``fmax``. A
structure that fails (an element the model does not cover, NaN or exploding energies) gets an error
and the others go on. Results stream to ``OUTDIR/results.csv`` and ``OUTDIR/relaxed.extxyz`` as they
come, so a killed job keeps what it finished.
"""
from __future__ import annotations

import csv
import time
import warnings
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Iterable, Optional, Tuple

import numpy as np
from ase import Atoms
from ase.constraints import FixSymmetry
from ase.filters import FrechetCellFilter
from ase.io import write
from ase.optimize import BFGS, FIRE

from ..calculator import FacetCalculator
from .structure_inputs import expand_inputs, iter_structures

OPTIMIZERS = {"fire": FIRE, "bfgs": BFGS}
#: a structure whose energy falls below this many eV per atom has exploded
BLOWUP_EV_PER_ATOM = -1e3


@dataclass
class RelaxResult:
    name: str
    converged: bool = False
    steps: int = 0
    energy_initial: float = float("nan")  # eV
    energy_final: float = float("nan")  # eV
    fmax_final: float = float("nan")  # eV/Å
    max_stress_final: float = float("nan")  # eV/Å^3, largest |component|; nan without a cell
    volume_final: float = float("nan")  # Å^3
    seconds: float = 0.0
    error: str = ""


def _check(atoms: Atoms) -> float:
    energy = atoms.get_potential_energy()
    if not np.isfinite(energy) or not np.all(np.isfinite(atoms.get_forces())):
        raise FloatingPointError("non-finite energy or forces")
    if energy / len(atoms) < BLOWUP_EV_PER_ATOM:
        raise FloatingPointError(f"energy exploded ({energy / len(atoms):.3g} eV/atom)")
    return energy


def relax_structure(name: str, atoms: Atoms, calc, fmax: float = 0.05, max_steps: int = 500, cell: bool = True,
                    optimizer: str = "fire", symmetry: bool = False) -> Tuple[RelaxResult, Optional[Atoms]]:
    """Relax a copy of ``atoms``; (result, relaxed structure or None on error)."""
    result = RelaxResult(name)
    start = time.perf_counter()
    atoms = atoms.copy()
    try:
        atoms.calc = calc
        if symmetry:
            atoms.set_constraint(FixSymmetry(atoms))
        result.energy_initial = _check(atoms)
        periodic = bool(atoms.pbc.all()) and abs(atoms.cell.volume) > 1e-8
        target = FrechetCellFilter(atoms) if cell and periodic else atoms
        opt = OPTIMIZERS[optimizer](target, logfile=None)
        for _ in opt.irun(fmax=fmax, steps=max_steps):
            _check(atoms)
        result.steps = int(opt.nsteps)
        result.converged = bool(opt.converged())
        result.energy_final = _check(atoms)
        result.fmax_final = float(np.linalg.norm(atoms.get_forces(), axis=1).max())
        if periodic:
            result.max_stress_final = float(np.abs(atoms.get_stress()).max())
            result.volume_final = float(atoms.get_volume())
        atoms.constraints = []
    except Exception as exc:  # noqa: BLE001 - one structure's failure never stops the others
        result.error = f"{type(exc).__name__}: {exc}".splitlines()[0]
        atoms = None
    result.seconds = time.perf_counter() - start
    return result, atoms


def relax_all(items: Iterable[Tuple[str, Optional[Atoms], Optional[str]]], calc, out_dir, progress: bool = True,
              **options) -> Tuple[int, int, int]:
    """Relax every (name, atoms, read error) item, appending to ``out_dir``/results.csv and relaxed.extxyz.

    Returns (structures, converged, failed)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    columns = [f.name for f in fields(RelaxResult)]
    total = converged = failed = 0
    written = False  # the first structure truncates relaxed.extxyz of an earlier run
    bar = None
    if progress:
        from tqdm import tqdm  # lazy: only with a progress bar

        bar = tqdm(unit="structure")
    with open(out / "results.csv", "w", newline="") as f:
        rows = csv.DictWriter(f, fieldnames=columns)
        rows.writeheader()
        for name, atoms, read_error in items:
            if read_error is not None:
                result, relaxed = RelaxResult(name, error=read_error), None
            else:
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", message="logm result may be inaccurate")
                    result, relaxed = relax_structure(name, atoms, calc, **options)
            if relaxed is not None:
                relaxed.info.update({"name": name, "converged": result.converged})
                write(out / "relaxed.extxyz", relaxed, format="extxyz", append=written)
                written = True
            rows.writerow({k: (f"{v:.10g}" if isinstance(v, float) else v) for k, v in asdict(result).items()})
            f.flush()
            total += 1
            converged += int(result.converged)
            failed += int(bool(result.error))
            if bar is not None:
                bar.update(1)
                bar.set_postfix(converged=converged, failed=failed)
    if bar is not None:
        bar.close()
    return total, converged, failed


def relax_files(model, inputs, out_dir, shard: Tuple[int, int] = (0, 1), device: str = "cpu", dtype: str = "float32",
                progress: bool = True, **options) -> Tuple[int, int, int]:
    """``facet relax``: every structure of ``inputs`` (files, folders, globs) relaxed with ``model``
    (a FacetModel, a file or a shipped name); (structures, converged, failed)."""
    calc = FacetCalculator(model, device=device, dtype=dtype)
    return relax_all(iter_structures(expand_inputs(inputs), shard), calc, out_dir, progress=progress, **options)
