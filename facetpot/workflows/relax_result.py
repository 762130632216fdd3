"""The outcome of one relaxation: one row of ``facet relax``'s results.csv."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Dict

from ..structure.units import EV_PER_A3_TO_GPA

#: a structure whose energy falls below this many eV per atom has exploded
BLOWUP_EV_PER_ATOM = -1e3
#: default stress tolerance of cell relaxations (GPa): 0.1 GPa leaves ~0.1% in volume for a 100 GPa solid
SMAX_GPA = 0.1


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
    max_force_std_final: float = float("nan")  # eV/Å, committee's largest per-atom force std; nan for one model
    seconds: float = 0.0  # wall time from entering the batch to leaving it
    error: str = ""


#: results.csv's columns, units in their names: RelaxResult field -> header
CSV_COLUMNS = {
    "name": "name",
    "converged": "converged",
    "steps": "steps",
    "energy_initial": "energy_initial_eV",
    "energy_final": "energy_final_eV",
    "fmax_final": "fmax_final_eV_per_A",
    "max_stress_final": "max_stress_final_GPa",
    "volume_final": "volume_final_A3",
    "max_force_std_final": "max_force_std_final_eV_per_A",
    "seconds": "seconds",
    "error": "error",
}


def csv_row(result: RelaxResult) -> Dict[str, object]:
    """One results.csv row: floats with 10 significant digits, the stress in GPa."""
    values = asdict(result)
    values["max_stress_final"] *= EV_PER_A3_TO_GPA
    return {CSV_COLUMNS[k]: (f"{v:.10g}" if isinstance(v, float) else v) for k, v in values.items()}
