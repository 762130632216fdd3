"""One labelled structure, in ASE units and conventions (eV, Å, eV/Å^3, stress tensile > 0)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
from ase.stress import voigt_6_to_full_3x3_stress

from ..structure.validation import structure_problem


@dataclass
class Frame:
    numbers: np.ndarray  # (n,) int
    positions: np.ndarray  # (n, 3) Å
    cell: np.ndarray  # (3, 3) Å, rows are cell vectors
    pbc: np.ndarray  # (3,) bool
    energy: float  # eV, total
    forces: Optional[np.ndarray] = None  # (n, 3) eV/Å
    stress: Optional[np.ndarray] = None  # (3, 3) eV/Å^3
    weight: float = 1.0
    config_type: str = "default"
    group: str = ""  # frames of one group (an MPtrj trajectory) never straddle a train/valid split
    name: str = ""  # where it came from, for error messages: "file.xyz:17"

    def problem(self) -> Optional[str]:
        """Why this frame cannot be used for training, or None."""
        problem = structure_problem(self.numbers, self.positions, self.cell, self.pbc)
        if problem is not None:
            return problem
        n = len(self.numbers)
        if self.energy is None or not np.isfinite(self.energy):
            return "missing or non-finite energy"
        if self.forces is not None and (self.forces.shape != (n, 3) or not np.all(np.isfinite(self.forces))):
            return "forces missing values, non-finite, or of the wrong shape"
        if self.stress is not None and (self.stress.shape != (3, 3) or not np.all(np.isfinite(self.stress))):
            return "non-finite stress or stress of the wrong shape"
        if np.any(self.numbers < 1) or np.any(self.numbers > 118):
            return f"atomic numbers outside 1..118: {sorted(set(self.numbers.tolist()))}"
        if not np.isfinite(self.weight) or self.weight < 0:
            return f"invalid weight {self.weight}"
        return None


def as_stress_matrix(s) -> Optional[np.ndarray]:
    if s is None:
        return None
    s = np.asarray(s, dtype=float)
    if s.shape == (6,):
        return voigt_6_to_full_3x3_stress(s)
    if s.size == 9:
        return s.reshape(3, 3)
    raise ValueError(f"stress must have 6 (Voigt) or 9 components, got shape {s.shape}")
