"""Structures for a teacher to label, generated deterministically from seed structures.

Every generated structure carries ``info["source"]`` (seed, perturb, md, substitute, vacancy, surface),
``info["parent"]`` (the seed's name) and ``info["distill_id"]`` (source:seed index:copy). The random
numbers of one (source, seed, copy) come from their own stream, ``default_rng([seed, source, index,
copy])``, so a structure does not depend on which other sources are switched on or on their order:
the same config and seed give the same structures, on any machine.

    perturb     x' = x (1 + eps) + sigma n: a random symmetric strain (components uniform in +-strain) and a
                Gaussian rattle with sigma uniform in [lo, hi] Å
    md          snapshots every k steps of the teacher's Langevin NVT (or MTK NPT at a pressure) from the
                seed (repeated to >= min_atoms), at each temperature
    substitute  all sites of one element of the seed become another element; the cell is scaled by
                1 + f (r_new / r_old - 1), r the covalent radii, f the fraction of sites replaced
    vacancy     one random atom removed
    surface     vacuum added along one random cell axis (a slab, still periodic in the cell)

A structure with a pair closer than ``min_distance`` Å is dropped (and counted).
"""

from __future__ import annotations

from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers, covalent_radii
from ase.md.velocitydistribution import thermalize_momenta

from ..structure.neighbors import radius_graph
from ..workflows.md import make_integrator

SOURCES = ("seed", "perturb", "md", "substitute", "vacancy", "surface")


def rng_for(seed: int, source: str, index: int, copy: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), SOURCES.index(source), int(index), int(copy)])


def min_distance(atoms: Atoms, cutoff: float = 2.0) -> float:
    """Closest pair distance (Å), inf when no pair is within ``cutoff``."""
    i, j, shifts = radius_graph(atoms.get_positions(), atoms.cell.array, atoms.pbc, cutoff)
    if len(i) == 0:
        return float("inf")
    vec = atoms.positions[j] - atoms.positions[i] + shifts @ atoms.cell.array
    return float(np.linalg.norm(vec, axis=1).min())


def _tagged(atoms: Atoms, source: str, parent: str, index: int, copy: int) -> Atoms:
    a = atoms.copy()
    a.calc = None
    a.info = {"source": source, "parent": parent, "distill_id": f"{source}:{index}:{copy}"}
    a.arrays = {k: v for k, v in a.arrays.items() if k in ("numbers", "positions")}
    return a


def perturb(atoms: Atoms, rng: np.random.Generator, strain: float, rattle: Sequence[float]) -> Atoms:
    eps = rng.uniform(-strain, strain, (3, 3))
    eps = 0.5 * (eps + eps.T)
    a = atoms.copy()
    if a.cell.rank == 3:
        a.set_cell(a.cell.array @ (np.eye(3) + eps), scale_atoms=True)
    a.positions += rng.normal(0.0, rng.uniform(*rattle), a.positions.shape)
    return a


def substitute(atoms: Atoms, rng: np.random.Generator, elements: Sequence[str]) -> Optional[Atoms]:
    present = sorted(set(atoms.numbers.tolist()))
    old = int(rng.choice(present))
    choices = [atomic_numbers[s] for s in elements if atomic_numbers[s] != old]
    if not choices:
        return None
    new = int(rng.choice(choices))
    a = atoms.copy()
    a.numbers[a.numbers == old] = new
    frac = float(np.mean(atoms.numbers == old))
    scale = 1.0 + frac * (covalent_radii[new] / covalent_radii[old] - 1.0)
    if a.cell.rank == 3:
        a.set_cell(a.cell.array * scale, scale_atoms=True)
    return a


def vacancy(atoms: Atoms, rng: np.random.Generator) -> Optional[Atoms]:
    if len(atoms) < 3:
        return None
    a = atoms.copy()
    del a[int(rng.integers(len(a)))]
    return a


def surface(atoms: Atoms, rng: np.random.Generator, vacuum: float) -> Optional[Atoms]:
    if atoms.cell.rank < 3:
        return None
    a = atoms.copy()
    axis = int(rng.integers(3))
    cell = a.cell.array.copy()
    length = np.linalg.norm(cell[axis])
    cell[axis] *= (length + vacuum) / length
    a.set_cell(cell, scale_atoms=False)
    a.wrap()
    return a


def md_snapshots(
    atoms: Atoms,
    rng_seed: int,
    calc,
    temperature: float,
    pressure_gpa: Optional[float],
    steps: int,
    every: int,
    timestep_fs: float,
) -> List[Atoms]:
    """Snapshots every ``every`` steps of the teacher's MD (``calc``) from ``atoms``."""
    a = atoms.copy()
    a.calc = calc
    thermalize_momenta(a, temperature_K=temperature, rng=np.random.default_rng(rng_seed))
    ensemble = "npt" if pressure_gpa is not None else "langevin"
    dyn = make_integrator(a, ensemble, timestep_fs, temperature, pressure_gpa or 0.0, 0.01, 100.0, 1000.0, rng_seed)
    out = []
    for _ in range(max(1, steps // every)):
        dyn.run(every)
        snap = a.copy()
        snap.set_constraint()
        out.append(snap)
    return out


def generate(
    seeds: Sequence[Tuple[str, Atoms]],
    cfg: Dict,
    teacher_calc: Optional[Callable] = None,
    progress: Optional[Callable[[str], None]] = None,
) -> Tuple[List[Atoms], Dict[str, int]]:
    """(structures, counts of dropped ones by reason) for ``cfg`` = the ``structures`` section.
    ``teacher_calc()`` gives an ASE calculator of the teacher (needed only when MD is on)."""
    dmin = float(cfg["min_distance"])
    out: List[Atoms] = []
    dropped: Dict[str, int] = {}
    calc = None
    md = cfg["md"]
    for index, (name, atoms) in enumerate(seeds):
        if progress:
            progress(name)
        made = list(_variants(atoms, index, cfg))
        if md["temperatures"] and len(atoms) <= int(md["max_atoms"]):
            if calc is None:
                if teacher_calc is None:
                    raise ValueError("structures.md needs the teacher to run MD")
                calc = teacher_calc()
            made += _md_variants(atoms, index, md, int(cfg["seed"]), calc)
        for a, source, copy in made:
            why = f"{source}: not applicable" if a is None else None
            if a is not None and min_distance(a) < dmin:
                why = f"{source}: pair closer than {dmin} Å"
            if why:
                dropped[why] = dropped.get(why, 0) + 1
            else:
                out.append(_tagged(a, source, name, index, copy))
    return out, dropped


def _variants(atoms: Atoms, index: int, cfg: Dict) -> Iterator[Tuple[Optional[Atoms], str, int]]:
    """(structure or None when the source does not apply, source, copy) of every non-MD source for one seed."""
    seed, pert, sub = int(cfg["seed"]), cfg["perturb"], cfg["substitute"]
    if cfg["include_seeds"]:
        yield atoms, "seed", 0
    for c in range(int(pert["copies"])):
        yield perturb(atoms, rng_for(seed, "perturb", index, c), float(pert["strain"]), pert["rattle"]), "perturb", c
    for c in range(int(sub["copies"])):
        yield substitute(atoms, rng_for(seed, "substitute", index, c), sub["elements"]), "substitute", c
    for c in range(int(cfg["vacancies"]["copies"])):
        yield vacancy(atoms, rng_for(seed, "vacancy", index, c)), "vacancy", c
    for c in range(int(cfg["surfaces"]["copies"])):
        yield surface(atoms, rng_for(seed, "surface", index, c), float(cfg["surfaces"]["vacuum"])), "surface", c


def _md_variants(atoms: Atoms, index: int, md: Dict, seed: int, calc) -> List[Tuple[Atoms, str, int]]:
    """MD snapshots of one seed (repeated along its shortest axis up to ``md.min_atoms``) at every temperature
    and pressure asked for, with the teacher."""
    start = atoms
    while len(start) < int(md["min_atoms"]) and start.cell.rank == 3:
        rep = [1, 1, 1]
        rep[int(np.argmin(start.cell.lengths()))] = 2
        start = start.repeat(rep)
    runs = [(t, p) for t in md["temperatures"] for p in (md["pressures"] or [None])]
    out = []
    for c, (temperature, pressure) in enumerate(runs):
        stream = int(rng_for(seed, "md", index, c).integers(2**31))
        pressure = None if pressure is None else float(pressure)
        snaps = md_snapshots(
            start,
            stream,
            calc,
            float(temperature),
            pressure,
            int(md["steps"]),
            int(md["every"]),
            float(md["timestep_fs"]),
        )
        out += [(snap, "md", c * 10000 + k) for k, snap in enumerate(snaps)]
    return out
