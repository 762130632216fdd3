"""Files of plain tensors and types (model files, checkpoints): written atomically, read safely.

``atomic_torch_save`` writes a temporary file beside the target and renames it into place (atomic
on POSIX), so a crash mid-write keeps the previous file intact. ``read_torch_file`` loads with
``weights_only=True`` (never unpickles code) and turns every failure into a message naming the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

import torch

from .atomic_write import atomic_write


def atomic_torch_save(payload, path) -> None:
    """``torch.save(payload)`` into ``path`` atomically (``facetpot.io.atomic_write``)."""
    atomic_write(path, lambda tmp: torch.save(payload, tmp))


def read_torch_file(path, what: str) -> Dict[str, Any]:
    """The dict stored in ``path``; ``what`` ("model file", "checkpoint") names it in errors."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle errors, truncated zip, unsafe globals...
        # torch's own text would advise weights_only=False (unpickling code): never pass that on
        raise ValueError(
            f"{path} is not a facetpot {what}: not a torch archive of plain tensors, or a damaged one "
            f"({type(exc).__name__}); check the path, or write the file again"
        ) from None
    if not isinstance(payload, dict):
        raise ValueError(f"{path} is not a facetpot {what}")
    return payload
