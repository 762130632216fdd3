"""Training checkpoints: everything needed to continue a run exactly, written atomically."""
from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Dict

import torch

from ..atomic_save import atomic_torch_save

FORMAT = "facetpot-checkpoint"
FORMAT_VERSION = 1


def save_checkpoint(path, state: Dict[str, Any]) -> None:
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, **state,
               "rng": {"torch": torch.get_rng_state(), "python": list(random.getstate()[1]),
                       "python_version": random.getstate()[0], "python_gauss": random.getstate()[2]}}
    atomic_torch_save(payload, path)


def load_checkpoint(path) -> Dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint to resume from: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"{path} is not a readable facetpot checkpoint ({type(exc).__name__}: {exc})") from exc
    if payload.get("format") != FORMAT or payload.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: checkpoint format {payload.get('format')} v{payload.get('format_version')}, "
                         f"expected {FORMAT} v{FORMAT_VERSION}")
    rng = payload["rng"]
    torch.set_rng_state(rng["torch"])
    random.setstate((rng["python_version"], tuple(rng["python"]), rng["python_gauss"]))
    return payload
