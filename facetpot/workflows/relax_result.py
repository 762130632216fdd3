"""The outcome of one relaxation: one row of ``facet relax``'s results.csv."""
from __future__ import annotations

from dataclasses import dataclass

#: a structure whose energy falls below this many eV per atom has exploded
BLOWUP_EV_PER_ATOM = -1e3


@dataclass
class RelaxResult:
    name: str  # input file's base name, with @index for files of several frames
    converged: bool = False
    steps: int = 0
    energy_initial: float = float("nan")  # eV
    energy_final: float = float("nan")  # eV
    fmax_final: float = float("nan")  # eV/Å, largest atomic force
    max_stress_final: float = float("nan")  # eV/Å^3, largest |component|; nan without a 3D cell
    volume_final: float = float("nan")  # Å^3
    seconds: float = 0.0  # wall time from entering the batch to leaving it
    error: str = ""
