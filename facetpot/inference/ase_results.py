"""Model outputs (torch tensors) -> ASE's results, written once for the calculator, ``facetpot.predict`` and the
batched relaxation: float64 numpy arrays; stress as Voigt 6-vectors

    (s_xx, s_yy, s_zz, s_yz, s_xz, s_xy)  in eV/Å^3, tensile positive (ASE's ``full_3x3_to_voigt_6_stress``);

and a structure whose energy is not finite named by one message.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from ase.stress import full_3x3_to_voigt_6_stress

NON_FINITE_ENERGY = "the model returned a non-finite energy for this structure"


def as_numpy(t: torch.Tensor) -> np.ndarray:
    """A tensor as a float64 numpy array on the host."""
    return t.detach().cpu().double().numpy()


def voigt(stress: np.ndarray) -> np.ndarray:
    """(..., 3, 3) stress -> (..., 6) Voigt, the off-diagonal pairs averaged."""
    return full_3x3_to_voigt_6_stress(stress)


def per_atom_stress(virials: np.ndarray, volume: float) -> np.ndarray:
    """Per-atom stresses (N, 6) Voigt, eV/Å^3: -virial_i / V (ASE's ``get_stresses``; they sum to the stress)."""
    return voigt(-np.asarray(virials) / abs(volume))


def energy_problem(energy: float) -> Optional[str]:
    """None for a finite energy, else :data:`NON_FINITE_ENERGY`."""
    return None if np.isfinite(energy) else NON_FINITE_ENERGY
