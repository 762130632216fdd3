"""An MD run's state on disk, ``restart.npz``: what ``facet md --restart`` needs to continue the run exactly.

A trajectory frame (extxyz, 8 decimals) is not enough to continue a run: positions and momenta lose digits,
and the integrators carry variables of their own. The state file holds, in binary:

* positions, momenta and cell of the last saved step, the step and the ensemble;
* the integrator's own variables: the Nose-Hoover chain (``eta``, ``p_eta``) of ``nhc`` and ``npt``, the MTK
  barostat's chain (``xi``, ``p_xi``) and cell momenta (``p_g``) of ``npt``, and the state of Langevin's
  random generator.

so that a run stopped and restarted reproduces the uninterrupted run (to the last bit on one machine and thread
count). It is written atomically beside every trajectory frame and at the last step.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict

import numpy as np

from ..io.atomic_write import atomic_write

#: the integrator variables kept, as (owner attribute or "" for the integrator itself, variable)
INTEGRATOR_VARIABLES = (
    ("_thermostat", "_eta"),
    ("_thermostat", "_p_eta"),
    ("_barostat", "_xi"),
    ("_barostat", "_p_xi"),
    ("", "_p_g"),
    ("", "_eps"),
    ("", "_p_eps"),
)
FORMAT = "facetpot-md-state 1"


def _owner(dyn, part: str):
    return dyn if not part else getattr(dyn, part, None)


def save_state(path, atoms, dyn, step: int, ensemble: str) -> None:
    """Write ``path`` (restart.npz) atomically: ``atoms`` and ``dyn``'s variables at ``step``."""
    arrays: Dict[str, Any] = {
        "format": np.array(FORMAT),
        "ensemble": np.array(ensemble),
        "step": np.array(step),
        "positions": atoms.get_positions(),
        "momenta": atoms.get_momenta(),
        "cell": np.array(atoms.get_cell()),
        "pbc": atoms.pbc.copy(),
        "numbers": atoms.numbers,
    }
    for part, name in INTEGRATOR_VARIABLES:
        owner = _owner(dyn, part)
        if owner is not None and hasattr(owner, name):
            arrays[f"var{part}.{name}"] = np.array(getattr(owner, name))
    rng = getattr(dyn, "rng", None)
    if isinstance(rng, np.random.Generator):
        arrays["rng"] = np.array(json.dumps(rng.bit_generator.state))

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)

    atomic_write(path, write)


def load_state(path) -> Dict[str, Any]:
    """The arrays of a state file, checked to be one."""
    with np.load(path, allow_pickle=False) as data:
        state = {k: data[k] for k in data.files}
    if str(state.get("format", "")) != FORMAT:
        raise ValueError(f"{path} is not a facetpot MD state file ({FORMAT})")
    return state


def restore_atoms(atoms, state: Dict[str, Any]) -> None:
    """Positions, momenta and cell of ``state`` into ``atoms`` (the same atoms, checked)."""
    if not np.array_equal(atoms.numbers, state["numbers"]):
        raise ValueError("the MD state file belongs to another structure (its atoms differ)")
    atoms.set_cell(state["cell"])
    atoms.pbc = state["pbc"]
    atoms.set_positions(state["positions"])
    atoms.set_momenta(state["momenta"])


def restore_integrator(dyn, state: Dict[str, Any]) -> None:
    """The integrator variables of ``state`` into ``dyn`` (built for the same ensemble from the restored atoms)."""
    for part, name in INTEGRATOR_VARIABLES:
        key = f"var{part}.{name}"
        owner = _owner(dyn, part)
        if key in state and owner is not None and hasattr(owner, name):
            value = state[key]
            setattr(owner, name, float(value) if value.ndim == 0 else value.copy())
    if "rng" in state and isinstance(getattr(dyn, "rng", None), np.random.Generator):
        dyn.rng.bit_generator.state = json.loads(str(state["rng"]))
