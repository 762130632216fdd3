"""Checks on the numeric options of the workflows (MD, relaxation, batching, phonon supercells), in one place:
the Python functions call them first, so a bad value is refused before any file is written, with the same
message from Python and from the command line (``facet md --timestep -1``: "timestep must be > 0 fs, got -1").

    positive("timestep", dt, "fs")      # > 0
    at_least("steps", n, 1)             # >= 1
    at_least("temperature", t, 0.0, "K")
"""

from __future__ import annotations

import math


def _finite(name: str, value, unit: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number{' (' + unit + ')' if unit else ''}, got {value!r}") from None
    if not math.isfinite(v):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return v


def finite(name: str, value, unit: str = ""):
    """``value`` if it is a finite number, else ValueError naming ``name``."""
    _finite(name, value, unit)
    return value


def positive(name: str, value, unit: str = ""):
    """``value`` if it is a finite number > 0, else ValueError naming ``name``."""
    if _finite(name, value, unit) <= 0:
        raise ValueError(f"{name} must be > 0{' ' + unit if unit else ''}, got {value}")
    return value


def at_least(name: str, value, low, unit: str = ""):
    """``value`` if it is a finite number >= ``low`` (an integer where ``low`` is one), else ValueError."""
    v = _finite(name, value, unit)
    if isinstance(low, int) and v != int(v):
        raise ValueError(f"{name} must be a whole number, got {value}")
    if v < low:
        raise ValueError(f"{name} must be >= {low}{' ' + unit if unit else ''}, got {value}")
    return value


def torch_device(value):
    """``value`` (cpu, cuda, cuda:N, mps, or a torch.device) as a torch.device; a ValueError that names the choices
    otherwise (torch's own lists every device type it was built with)."""
    import torch  # lazy: this module stays free of torch (facet --help)

    if isinstance(value, torch.device):
        return value
    try:
        return torch.device(value)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"device must be cpu, cuda or cuda:N, got {value!r}") from None
