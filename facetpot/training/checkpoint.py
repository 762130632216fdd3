"""Training checkpoints: everything needed to continue a run exactly, written atomically."""
from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path
from typing import Any, Dict

import torch

FORMAT = "facetpot-checkpoint"
FORMAT_VERSION = 1


def save_checkpoint(path, state: Dict[str, Any]) -> None:
    path = Path(path)
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, **state,
               "rng": {"torch": torch.get_rng_state(), "python": list(random.getstate()[1]),
                       "python_version": random.getstate()[0], "python_gauss": random.getstate()[2]}}
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


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
