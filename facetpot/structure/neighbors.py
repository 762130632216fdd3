"""Periodic radius graph from vesin.

Every pair (i, j, S) with |x_j - x_i + S . cell| < r_c, both directions (or one: ``half``), self-images included
(an atom sees its own periodic images when the cell is smaller than the cutoff), and mixed
periodicity per axis. Non-periodic axes may have a zero cell vector.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np
import vesin


def radius_graph(
    positions: np.ndarray,
    cell: np.ndarray,
    pbc,
    cutoff: float,
    distances: bool = False,
    half: bool = False,
    vectors: bool = False,
) -> Tuple[np.ndarray, ...]:
    """Returns (i, j, S): receiving atom, neighbour, integer cell shift; r_ij = x_j - x_i + S . cell; with
    ``distances`` also |r_ij| (Å), with ``vectors`` r_ij itself (E, 3), as a fourth array. ``half``: every pair
    once, in one of its directions (for pair sums such as dispersion, half the work)."""
    positions = np.ascontiguousarray(positions, dtype=np.float64)
    pbc = np.broadcast_to(np.asarray(pbc, dtype=bool), (3,))
    box = np.ascontiguousarray(cell, dtype=np.float64) if pbc.any() else np.zeros((3, 3))
    nl = vesin.NeighborList(cutoff=float(cutoff), full_list=not half)
    if distances or vectors:
        i, j, shifts, d = nl.compute(positions, box, [bool(p) for p in pbc], "ijSD" if vectors else "ijSd")
        return i.astype(np.int64), j.astype(np.int64), shifts.astype(np.int64), np.asarray(d, dtype=np.float64)
    i, j, shifts = nl.compute(positions, box, [bool(p) for p in pbc], "ijS")
    return i.astype(np.int64), j.astype(np.int64), shifts.astype(np.int64)
