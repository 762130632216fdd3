"""The systems benchmarks compute and the one way they time calls.

Imports ASE and the standard library only, so that a worker in a peer's venv (SevenNet, MACE) builds the same
structures: a ``-c`` worker starts with :data:`WORKER_IMPORT` (this folder on ``sys.path``), a script in this
folder imports it directly.

    silicon(4)                      Si diamond, a = 5.43 Å, the cubic 8-atom cell repeated 4 x 4 x 4 (512 atoms)
    silicon()                       the 2-atom primitive cell
    silicon_atoms(500)              the cubic supercell closest to 500 atoms (512)
    rocksalt_mgo(2)                 MgO rocksalt, a = 4.21 Å, cubic cell 2 x 2 x 2 (64 atoms)
    perovskite_srtio3(4)            SrTiO3, a = 3.905 Å, 4 x 4 x 4 (320 atoms)
    time_calls(fn, reps, warmup)    seconds of each of ``reps`` calls after ``warmup`` untimed ones
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Callable, List, Optional

from ase import Atoms
from ase.build import bulk

HERE = Path(__file__).resolve().parent
#: the first line of a ``python -c`` worker that imports this module (from any checkout or venv); appended, not
#: prepended, so this folder's script names (``lammps.py``, ``relax.py``) never shadow installed packages
WORKER_IMPORT = f"import sys; sys.path.append({str(HERE)!r})"
SI_LATTICE = 5.43  # Å, diamond Si
MGO_LATTICE = 4.21  # Å, rocksalt MgO
SRTIO3_LATTICE = 3.905  # Å, cubic perovskite SrTiO3


def silicon(n: Optional[int] = None, rattle: float = 0.0, seed: int = 1) -> Atoms:
    """Diamond Si: the primitive 2-atom cell (``n`` None) or the cubic cell repeated ``n`` times (8 n^3 atoms),
    each position displaced by a Gaussian of ``rattle`` Å (ASE's ``rattle``, ``seed``) when ``rattle`` > 0."""
    if n is None:
        return _rattled(bulk("Si", "diamond", a=SI_LATTICE), rattle, seed)
    return _rattled(bulk("Si", "diamond", a=SI_LATTICE, cubic=True) * (n, n, n), rattle, seed)


def _rattled(atoms: Atoms, rattle: float, seed: int) -> Atoms:
    """``atoms`` with every position displaced by a Gaussian of ``rattle`` Å (ASE's ``rattle``), when > 0."""
    if rattle:
        atoms.rattle(rattle, seed=seed)
    return atoms


def silicon_atoms(count: int, rattle: float = 0.0, seed: int = 1) -> Atoms:
    """The cubic Si supercell closest to ``count`` atoms: ``silicon(k)`` with k = round((count / 8)^(1/3)) >= 1."""
    return silicon(max(1, round((count / 8) ** (1 / 3))), rattle, seed)


def rocksalt_mgo(n: int, rattle: float = 0.0, seed: int = 1) -> Atoms:
    """Rocksalt MgO, the cubic 8-atom cell repeated ``n`` times (8 n^3 atoms), rattled as :func:`silicon`."""
    return _rattled(bulk("MgO", "rocksalt", a=MGO_LATTICE, cubic=True) * (n, n, n), rattle, seed)


def perovskite_srtio3(n: int, rattle: float = 0.0, seed: int = 1) -> Atoms:
    """Cubic perovskite SrTiO3, a = 3.905 Å, the 5-atom cell repeated ``n`` times (5 n^3 atoms), rattled as
    :func:`silicon`."""
    cell = [[SRTIO3_LATTICE, 0, 0], [0, SRTIO3_LATTICE, 0], [0, 0, SRTIO3_LATTICE]]
    fractions = [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]
    return _rattled(Atoms("SrTiO3", scaled_positions=fractions, cell=cell, pbc=True) * (n, n, n), rattle, seed)


def time_calls(
    fn: Callable[[], object],
    reps: int,
    warmup: int = 1,
    before: Optional[Callable[[], object]] = None,
    sync: Optional[Callable[[], object]] = None,
) -> List[float]:
    """Seconds of each of ``reps`` calls of ``fn`` after ``warmup`` untimed ones. ``before`` runs untimed before
    every call (e.g. move an atom so a calculator computes again); ``sync`` runs inside the timed region after each
    call and before the first (e.g. ``torch.cuda.synchronize``), so asynchronous work is counted."""
    times = []
    for k in range(warmup + reps):
        if before is not None:
            before()
        if sync is not None:
            sync()
        t = time.perf_counter()
        fn()
        if sync is not None:
            sync()
        if k >= warmup:
            times.append(time.perf_counter() - t)
    return times


def median_ms(times: List[float]) -> float:
    """The median of ``times`` (seconds), in ms."""
    return 1e3 * statistics.median(times)
