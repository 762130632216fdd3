"""Model files: config + weights + metadata in one ``torch.save`` archive of plain tensors and types.

Loading uses ``torch.load(weights_only=True)``, which never unpickles code; a file of another
format version, or not a facetpot model at all, is rejected with a message that says so.
"""
from __future__ import annotations

from typing import Any, Dict, Optional

import torch

from .torch_files import atomic_torch_save, read_torch_file

FORMAT_NAME = "facetpot-model"
FORMAT_VERSION = 1


def save_model(model, path, metadata: Optional[Dict[str, Any]] = None) -> None:
    """Write atomically: a crash mid-write leaves the old file (if any) intact."""
    from . import __version__

    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    payload = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "facetpot_version": __version__,
        "config": model.config,
        "state_dict": state,
        "dtype": str(model.dtype).replace("torch.", ""),
        "metadata": {
            "species": list(model.species),
            "cutoff": float(model.cutoff),
            "num_layers": int(model.num_layers),
            "units": {"energy": "eV", "length": "Angstrom", "stress": "eV/Angstrom^3"},
            **(metadata or {}),
        },
    }
    atomic_torch_save(payload, path)


def read_model_file(path) -> Dict[str, Any]:
    payload = read_torch_file(path, "model file")
    if payload.get("format") != FORMAT_NAME:
        raise ValueError(f"{path} is not a facetpot model file (no '{FORMAT_NAME}' header)")
    version = payload.get("format_version")
    if version != FORMAT_VERSION:
        raise ValueError(
            f"{path} has model-file format version {version} (written by facetpot "
            f"{payload.get('facetpot_version', '?')}); this facetpot ({_version()}) reads version {FORMAT_VERSION}"
        )
    return payload


def _version() -> str:
    from . import __version__

    return __version__


def load_model(path, device="cpu", dtype: Optional[str] = None):
    """Load a model file written by ``model.save``; ``dtype`` defaults to the one it was saved in."""
    from .model import FacetModel

    payload = read_model_file(path)
    saved = getattr(torch, payload.get("dtype", "float32"))
    # load into parameters of the saved dtype: float64 weights copied into float32 ones would be rounded
    model = FacetModel(**payload["config"]).to(dtype=saved)
    model.load_state_dict(payload["state_dict"], strict=True)
    model.metadata = payload.get("metadata", {})
    return model.to(device=device, dtype=getattr(torch, dtype) if dtype else saved).eval()
