"""Checks on user structures, with messages that say what is wrong."""
from __future__ import annotations

import numpy as np


def check_atoms(atoms) -> None:
    """Raise ValueError for structures the model cannot evaluate meaningfully."""
    if len(atoms) == 0:
        raise ValueError("the structure has no atoms")
    pos = atoms.get_positions()
    if not np.all(np.isfinite(pos)):
        bad = np.where(~np.all(np.isfinite(pos), axis=1))[0]
        raise ValueError(f"non-finite (NaN/inf) positions for atom(s) {bad[:10].tolist()}")
    cell = np.asarray(atoms.cell.array)
    if not np.all(np.isfinite(cell)):
        raise ValueError(f"non-finite (NaN/inf) cell:\n{cell}")
    pbc = np.asarray(atoms.pbc, dtype=bool)
    if pbc.any():
        lengths = np.linalg.norm(cell, axis=1)
        for ax in np.where(pbc)[0]:
            if lengths[ax] < 1e-8:
                raise ValueError(f"periodic along axis {ax} but cell vector {ax} is zero: {cell[ax].tolist()}")
        if pbc.all() and abs(np.linalg.det(cell)) < 1e-8:
            raise ValueError(f"periodic cell has zero volume (det = {np.linalg.det(cell):.3g} Å^3):\n{cell}")
        periodic_vectors = cell[pbc]
        if np.linalg.matrix_rank(periodic_vectors, tol=1e-8) < len(periodic_vectors):
            raise ValueError(f"periodic cell vectors are linearly dependent:\n{cell}")
