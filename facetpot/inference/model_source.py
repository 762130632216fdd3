"""Every way a model is named: a ``FacetModel``, a model file (``facetpot.io.model_file``) or a shipped model's
name (``facetpot.pretrained``) -> a ``FacetModel``.

:func:`read_model` and :func:`resolve_model` give the model as it was saved (its own backend; what training and
export start from); :func:`load_model`, the public entry point, also chooses its backend
(``inference.backend_choice``). None of them changes a model passed in: a change of device or dtype is made on
a copy.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Optional, Union

import torch

from ..io.model_file import read_model_file
from ..model import FacetModel
from ..pretrained import PRETRAINED, available, pretrained_path
from .backend_choice import select_backend

#: the dtypes a model computes in, by name
DTYPES = {"float32": torch.float32, "float64": torch.float64}


def torch_dtype(dtype: Optional[str]) -> Optional[torch.dtype]:
    """ "float32" / "float64" -> torch dtype; None stays None ("as saved"); anything else is refused."""
    if dtype is None:
        return None
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    return DTYPES[dtype]


def model_path(model: Union[str, Path]) -> Path:
    """A model file, or the checked file of a shipped model's name; errors list the known names."""
    if Path(model).is_file():
        return Path(model)
    name = str(model)
    if name in PRETRAINED:
        return pretrained_path(name)
    if isinstance(model, Path) or any(c in name for c in "/\\."):
        raise FileNotFoundError(
            f"model file not found: {model} (nor is it a pretrained name: "
            f"{', '.join(m.name for m in available()) or 'none shipped yet'})"
        )
    return pretrained_path(name)  # raises: unknown name, with the list of known names


def read_model(path, device="cpu", dtype: Optional[str] = None) -> FacetModel:
    """The model of a model file or a shipped model's name, on its saved backend; ``dtype`` None keeps the
    dtype it was saved in."""
    payload = read_model_file(model_path(path))
    saved = getattr(torch, payload.get("dtype", "float32"))
    # load into parameters of the saved dtype: float64 weights copied into float32 ones would be rounded
    model = FacetModel(**payload["config"]).to(dtype=saved)
    model.load_state_dict(payload["state_dict"], strict=True)
    model.metadata = payload.get("metadata", {})
    return model.to(device=device, dtype=torch_dtype(dtype) or saved).eval()


def resolve_model(model: Union[FacetModel, str, Path], device=None, dtype: Optional[str] = None) -> FacetModel:
    """A FacetModel, a model file path or a pretrained name -> a FacetModel, on its own backend.

    ``dtype`` None keeps the object's dtype or the file's saved one; ``device`` None keeps an object where it
    is and puts a loaded model on the CPU. A FacetModel passed in is returned as it is when nothing changes,
    else a moved copy: the caller's model is never changed."""
    wanted = torch_dtype(dtype)
    if isinstance(model, FacetModel):
        same_device = device is None or torch.device(device) == model.device
        if same_device and wanted in (None, model.dtype):
            return model
        return copy.deepcopy(model).to(device=device, dtype=wanted)
    if isinstance(model, (str, Path)):
        return read_model(model, device=device or "cpu", dtype=dtype)
    raise TypeError(f"model must be a FacetModel, a file path or a pretrained name, got {type(model).__name__}")


def load_model(path, device="cpu", dtype: Optional[str] = None, backend: Optional[str] = None) -> FacetModel:
    """A model file written by ``save_model``, or a shipped model by name (``facetpot.pretrained``), ready to
    use: ``dtype`` None keeps the one it was saved in; its backend is ``backend``, else ``$FACETPOT_BACKEND``,
    else its own (``inference.backend_choice``)."""
    return select_backend(read_model(path, device=device, dtype=dtype), backend)
