"""Training checkpoints: everything needed to continue a run exactly, written atomically."""
from __future__ import annotations

import random
from typing import Any, Dict

import torch

from ..torch_files import atomic_torch_save, read_torch_file

FORMAT = "facetpot-checkpoint"
FORMAT_VERSION = 1


def save_checkpoint(path, state: Dict[str, Any]) -> None:
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, **state,
               "rng": {"torch": torch.get_rng_state(), "python": list(random.getstate()[1]),
                       "python_version": random.getstate()[0], "python_gauss": random.getstate()[2]}}
    atomic_torch_save(payload, path)


def load_checkpoint(path) -> Dict[str, Any]:
    payload = read_torch_file(path, "checkpoint")
    if payload.get("format") != FORMAT or payload.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: checkpoint format {payload.get('format')} v{payload.get('format_version')}, "
                         f"expected {FORMAT} v{FORMAT_VERSION}")
    rng = payload["rng"]
    torch.set_rng_state(rng["torch"])
    random.setstate((rng["python_version"], tuple(rng["python"]), rng["python_gauss"]))
    return payload
