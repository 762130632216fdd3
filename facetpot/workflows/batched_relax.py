"""Many relaxations at once: one model call per step for every structure in flight.

Each structure keeps its own ASE optimizer (FIRE or BFGS, with its own state) acting on its own
``FrechetCellFilter`` (positions and cell) or on its positions; only the energy, forces and stress
are computed for all of them together, by packing the structures in flight into one graph. The
steps are ASE's own, so every structure follows the trajectory it would follow relaxed alone with ASE's
optimizer stepped to the same convergence test (tested against ASE one by one). Structures that converge, reach
``max_steps`` or fail leave the batch, and waiting ones enter while the atoms in flight stay under
``max_atoms``. Results come back as the structures finish (a killed run keeps every finished one).

Convergence is judged on what the results report: every atom's force below ``fmax`` and, when the cell relaxes,
every stress component below ``smax_gpa`` (ASE's own test on the cell filter's gradient accepts a cell with
``fmax`` * atoms / volume of stress left, 0.3-0.6 GPa for small cells at fmax 0.05; ``smax_gpa=None`` leaves the
cell to that test).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Iterable, Iterator, List, Optional, Tuple, Union

import numpy as np
import torch
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.constraints import FixSymmetry
from ase.filters import FrechetCellFilter
from ase.optimize import BFGS, FIRE

from ..inference.ase_results import as_numpy, voigt
from ..inference.committee import Committee, model_properties
from ..dispersion import add_dispersion, make_dispersion
from ..structure.graph import atoms_to_graph, batch_graphs
from ..structure.option_checks import at_least, positive
from ..structure.units import GPA_TO_EV_PER_A3
from ..structure.validation import MIN_DISTANCE, is_crystal
from ..model import FacetModel
from .relax_result import BLOWUP_EV_PER_ATOM, SMAX_GPA, RelaxResult

OPTIMIZERS = {"fire": FIRE, "bfgs": BFGS}


@dataclass
class _Job:
    result: RelaxResult
    atoms: Optional[Atoms] = None
    opt: object = None
    periodic: bool = False
    force_std: float = float("nan")  # committee: the largest per-atom force std at the current step
    start: float = field(default_factory=time.perf_counter)


def _filter_converged(opt) -> bool:
    """ASE's own convergence test of ``opt`` (on its cell filter's gradient) at the current positions."""
    if hasattr(opt, "gradient_converged"):  # ASE >= 3.26
        return bool(opt.gradient_converged(opt.optimizable.get_gradient()))
    return bool(opt.converged())


class BatchedRelaxation:
    """Relax structures with ``model`` (a FacetModel on its device and dtype, or a ``Committee``: the members'
    mean drives the relaxation, and each result reports the largest force std of its last step), ``max_atoms`` in flight;
    ``dispersion`` as for ``FacetCalculator`` ("d3", "d3-zero" or a D3Dispersion) adds D3 to every step."""

    def __init__(
        self,
        model: Union[FacetModel, Committee],
        fmax: float = 0.05,
        max_steps: int = 500,
        cell: bool = True,
        optimizer: str = "fire",
        symmetry: bool = False,
        max_atoms: int = 2000,
        min_distance: float = MIN_DISTANCE,
        dispersion=None,
        smax_gpa: Optional[float] = SMAX_GPA,
    ):
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)}, got {optimizer!r}")
        positive("fmax", fmax, "eV/Å")
        if smax_gpa is not None:
            positive("smax_gpa", smax_gpa, "GPa")
        self.smax = None if smax_gpa is None else float(smax_gpa) * GPA_TO_EV_PER_A3
        at_least("max_steps", max_steps, 0)
        at_least("max_atoms", max_atoms, 1)
        at_least("min_distance", min_distance, 0.0, "Å")
        self.model = model
        self.fmax, self.max_steps, self.cell = float(fmax), int(max_steps), bool(cell)
        self.optimizer, self.symmetry, self.max_atoms = optimizer, bool(symmetry), int(max_atoms)
        self.min_distance = float(min_distance)
        self.dispersion = make_dispersion(dispersion, model.device, model.dtype)

    # ------------------------------------------------------------------ one structure in and out
    def _start(self, name: str, atoms: Optional[Atoms], read_error: Optional[str]) -> _Job:
        job = _Job(RelaxResult(name, error=read_error or ""))
        if read_error:
            return job
        try:
            atoms = atoms.copy()
            atoms_to_graph(atoms, self.model.cutoff, min_distance=self.min_distance)  # the checks, with their messages
            self.model.species_index(torch.as_tensor(atoms.numbers))  # elements the model covers
            job.periodic = is_crystal(atoms)
            if self.symmetry:
                if not job.periodic:
                    raise ValueError(
                        "keeping the symmetry (--symmetry) needs a crystal: this structure has no "
                        "periodic cell (relax it without --symmetry)"
                    )
                atoms.set_constraint(FixSymmetry(atoms))
            job.atoms = atoms
        except Exception as exc:  # noqa: BLE001 - the structure's error, the others go on
            job.result.error = f"{type(exc).__name__}: {exc}".splitlines()[0]
        return job

    def _finish(self, job: _Job) -> Tuple[RelaxResult, Optional[Atoms]]:
        job.result.seconds = time.perf_counter() - job.start
        atoms = job.atoms
        if atoms is None or job.result.error:
            return job.result, None
        r = job.result
        r.steps = int(job.opt.nsteps)
        r.energy_final = float(atoms.get_potential_energy())
        r.fmax_final = float(np.linalg.norm(atoms.get_forces(), axis=1).max())
        if job.periodic:
            r.max_stress_final = float(np.abs(atoms.get_stress()).max())
            r.volume_final = float(atoms.get_volume())
        r.max_force_std_final = job.force_std
        atoms.constraints = []
        results = dict(atoms.calc.results)
        atoms.calc = SinglePointCalculator(atoms, **results)
        return r, atoms

    def _converged(self, job: _Job) -> bool:
        """Every atom's force below fmax and, for a relaxing cell, every stress component below smax."""
        atoms = job.atoms
        if np.linalg.norm(atoms.get_forces(), axis=1).max(initial=0.0) >= self.fmax:
            return False
        if self.cell and job.periodic:
            if self.smax is None:  # no stress tolerance: ASE's own test of the cell filter's gradient
                return _filter_converged(job.opt)
            return bool(np.abs(atoms.get_stress()).max() < self.smax)
        return True

    # ------------------------------------------------------------------ the batched model call
    def _evaluate(self, jobs: List[_Job]) -> None:
        """Energy, forces (and stress) of every job's current structure, in one model call."""
        model = self.model
        graphs = {}
        for k, job in enumerate(jobs):
            try:
                graphs[k] = atoms_to_graph(job.atoms, model.cutoff, dtype=model.dtype, min_distance=self.min_distance)
            except ValueError as exc:  # e.g. atoms pushed onto each other by the optimizer: this structure fails
                job.result.error = f"{type(exc).__name__}: {exc}".splitlines()[0]
        if not graphs:
            return
        # structures of similar neighbour counts side by side: the density backend's chunks of atoms then
        # pad to their own widest atom, not to the densest structure in flight
        order = sorted(graphs, key=lambda k: graphs[k].max_neighbors())
        graph = batch_graphs([graphs[k] for k in order]).to(model.device, model.dtype)
        any_periodic = any(jobs[k].periodic for k in order)
        out = model_properties(model, graph, forces=True, stress=any_periodic)
        if self.dispersion is not None:
            out = add_dispersion(out, self.dispersion, [jobs[k].atoms for k in order])
        energy, forces = as_numpy(out["energy"]), as_numpy(out["forces"])
        stress = voigt(as_numpy(out["stress"])) if "stress" in out else None
        force_std = as_numpy(out["forces_std"]) if "forces_std" in out else None
        starts = np.cumsum([0] + [graphs[k].num_atoms for k in order])
        position = {k: p for p, k in enumerate(order)}
        for k in order:
            job = jobs[k]
            n, p = len(job.atoms), position[k]
            e, f = float(energy[p]), forces[starts[p] : starts[p] + n]
            if not np.isfinite(e) or not np.all(np.isfinite(f)):
                job.result.error = "FloatingPointError: non-finite energy or forces"
            elif e / n < BLOWUP_EV_PER_ATOM:
                job.result.error = f"FloatingPointError: energy exploded ({e / n:.3g} eV/atom)"
            if force_std is not None:
                job.force_std = float(force_std[starts[p] : starts[p] + n].max(initial=0.0))
            results = {"energy": e, "free_energy": e, "forces": f}
            if job.periodic:
                results["stress"] = stress[p]
            job.atoms.calc = SinglePointCalculator(job.atoms, **results)

    # ------------------------------------------------------------------ the loop
    def run(
        self, items: Iterable[Tuple[str, Optional[Atoms], Optional[str]]]
    ) -> Iterator[Tuple[RelaxResult, Optional[Atoms]]]:
        """(result, relaxed atoms or None) for every (name, atoms, read error) item, as each finishes."""
        pending = iter(items)
        active: List[_Job] = []
        done: List[Tuple[RelaxResult, Optional[Atoms]]] = []
        exhausted = False
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="logm result may be inaccurate")
            while active or not exhausted:
                # fill the batch under the atom budget (always at least one structure)
                entering: List[_Job] = []
                while not exhausted and (
                    not active and not entering or sum(len(j.atoms) for j in active + entering) < self.max_atoms
                ):
                    try:
                        name, atoms, error = next(pending)
                    except StopIteration:
                        exhausted = True
                        break
                    job = self._start(name, atoms, error)
                    if job.atoms is None:
                        done.append(self._finish(job))
                    else:
                        entering.append(job)
                if entering:
                    active += entering
                if active:
                    self._evaluate(active)
                    for job in entering:
                        if not job.result.error:
                            job.result.energy_initial = float(job.atoms.get_potential_energy())
                            target = FrechetCellFilter(job.atoms) if self.cell and job.periodic else job.atoms
                            job.opt = OPTIMIZERS[self.optimizer](target, logfile=None)
                            job.opt.fmax = self.fmax
                    still: List[_Job] = []
                    for job in active:
                        if not job.result.error:
                            try:
                                if self._converged(job):
                                    job.result.converged = True
                                elif job.opt.nsteps < self.max_steps:
                                    job.opt.step()
                                    job.opt.nsteps += 1
                                    still.append(job)
                                    continue
                            except Exception as exc:  # noqa: BLE001
                                job.result.error = f"{type(exc).__name__}: {exc}".splitlines()[0]
                        done.append(self._finish(job))
                    active = still
                yield from done
                done.clear()
