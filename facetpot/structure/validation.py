"""Checks on structures, with messages that say what is wrong: one implementation for user input
(the ASE calculator, through :func:`check_atoms`) and training data (``Frame.problem``).

Thresholds, one of each kind:

* ``CELL_TOL`` (1e-8 Å): a periodic cell vector shorter than this is zero, and periodic vectors
  whose smallest singular value is below it are linearly dependent;
* ``MIN_CELL_VOLUME`` (1e-6 Å^3): a fully periodic cell of smaller volume has zero volume. The
  larger of the two values the package used before (the data cache's): a periodic cell that thin
  would need millions of periodic images in the neighbour list, so nothing usable is refused.
  The same threshold says whether a structure has stress at all (:func:`has_volume`, below).
* ``MIN_DISTANCE`` (0.5 Å): atoms closer than this overlap. No bond is that short (H2: 0.74 Å), and a
  model trained on DFT data has never seen such a pair: its energy there is meaningless (two Si atoms
  0.01 Å apart relaxed "below diamond's energy"). The calculator, ``facetpot.predict`` and every command
  refuse such structures, naming the pair; ``min_distance=0`` (``--min-distance 0``) allows them.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
from ase.data import chemical_symbols

#: Å: shorter periodic cell vectors count as zero; smaller singular values as linear dependence
CELL_TOL = 1e-8
#: Å^3: a fully periodic cell of smaller volume counts as zero volume
MIN_CELL_VOLUME = 1e-6
#: Å: atoms closer than this overlap (refused unless the caller allows it)
MIN_DISTANCE = 0.5


def spans_volume(volume):
    """|det cell| >= ``MIN_CELL_VOLUME``, elementwise: the one volume test, for a float, a numpy array or a torch
    tensor of volumes (Å^3; ``compute_properties`` and the committee test a batch's cells with it on the device)."""
    return volume >= MIN_CELL_VOLUME


def has_volume(cell) -> bool:
    """Whether a structure has a stress: its cell spans a volume (:func:`spans_volume`), periodic or not.
    A slab's or a boxed molecule's stress is that of its box, vacuum included (-virial / box volume), as ASE's own
    calculators report it; the calculator, ``facetpot.predict`` and ``compute_properties`` all follow this."""
    return bool(spans_volume(abs(float(np.linalg.det(np.asarray(cell, dtype=np.float64))))))


def is_crystal(atoms) -> bool:
    """Periodic in all three directions with a cell of non-zero volume: what a cell relaxation, NPT, a pressure
    and the material properties (equation of state, elastic constants, phonons) need."""
    return bool(np.asarray(atoms.pbc).all()) and has_volume(atoms.cell.array)


def structure_problem(numbers, positions, cell, pbc) -> Optional[str]:
    """Why a structure cannot be evaluated meaningfully, or None: one line, its particulars (atoms,
    cell) after a colon or in brackets at the end, so the kind of problem can be counted."""
    n = len(numbers)
    if n == 0:
        return "the structure has no atoms"
    positions = np.asarray(positions)
    if positions.shape != (n, 3):
        return f"positions have shape {positions.shape}, expected ({n}, 3)"
    finite = np.all(np.isfinite(positions), axis=1)
    if not finite.all():
        return f"non-finite (NaN/inf) positions for atom(s) {np.where(~finite)[0][:10].tolist()}"
    cell = np.asarray(cell, dtype=np.float64)
    if not np.all(np.isfinite(cell)):
        return f"non-finite (NaN/inf) cell: {cell.tolist()}"
    pbc = np.asarray(pbc, dtype=bool)
    if not pbc.any():
        return None
    lengths = np.linalg.norm(cell, axis=1)
    for ax in np.where(pbc)[0]:
        if lengths[ax] < CELL_TOL:
            return f"periodic along axis {ax} but cell vector {ax} is zero: {cell[ax].tolist()}"
    if pbc.all() and not has_volume(cell):
        return f"periodic cell has zero volume: det = {np.linalg.det(cell):.3g} Å^3, cell {cell.tolist()}"
    periodic_vectors = cell[pbc]
    if np.linalg.matrix_rank(periodic_vectors, tol=CELL_TOL) < len(periodic_vectors):
        return f"periodic cell vectors are linearly dependent: {cell.tolist()}"
    return None


def check_atoms(atoms) -> None:
    """Raise ValueError for structures the model cannot evaluate meaningfully."""
    problem = structure_problem(atoms.numbers, atoms.get_positions(), atoms.cell.array, atoms.pbc)
    if problem is not None:
        raise ValueError(problem)


def close_contact_problem(numbers, i, j, distances, min_distance: float = MIN_DISTANCE) -> Optional[str]:
    """Why the pairs (i, j) at ``distances`` (a neighbour list, periodic images included) are unphysical, or
    None: the closest pair below ``min_distance`` (Å) named with its elements; ``min_distance`` <= 0 allows all."""
    distances = np.asarray(distances)
    if min_distance <= 0 or distances.size == 0:
        return None
    k = int(np.argmin(distances))
    if distances[k] >= min_distance:
        return None
    a, b = sorted((int(i[k]), int(j[k])))
    close = np.asarray(i) <= np.asarray(j)
    count = int(((distances < min_distance) & close).sum()) or 1
    what = (
        f"atom {a} ({chemical_symbols[numbers[a]]}) and its own periodic image"
        if a == b
        else (f"atoms {a} ({chemical_symbols[numbers[a]]}) and {b} ({chemical_symbols[numbers[b]]})")
    )
    return (
        f"overlapping atoms: {what} are {distances[k]:.3f} Å apart, closer than {min_distance} Å "
        f"({count} such pair(s)); to evaluate it anyway pass min_distance=0 (calculator, facetpot.predict) "
        "or --min-distance 0 (facet commands)"
    )
