"""Model files, and every way a model is named: an object, a file, or a pretrained name.

A model file is one ``torch.save`` archive of plain tensors and types: the format header
(``facetpot.io.format_header``), the model config, the weights, the dtype they were trained in and
metadata. Loading uses ``torch.load(weights_only=True)``, which never unpickles code; a file of
another format version, or not a facetpot model at all, is refused with a message that says so.

Everything that needs a model (the ASE calculator, training, evaluation, export, the CLI) gets it
through :func:`resolve_model`; everything that only computes with it (the calculator, relaxations,
evaluation, distillation teachers, export) through :func:`inference_model`, the one way a model is
prepared for inference.
"""
from __future__ import annotations

import copy as copy_module
import os
from pathlib import Path
from typing import Any, Dict, Optional, Union

import torch

from ..backend_default import default_backend
from .format_header import check_header, make_header
from ..option_checks import torch_device
from ..model import FacetModel
from ..pretrained import PRETRAINED, available, pretrained_path
from .state_upgrade import OLDEST_READABLE, upgrade_state
from .torch_archive import atomic_torch_save, read_torch_file

FORMAT_NAME = "facetpot-model"
FORMAT_VERSION = 2  # 2: rank-R convolutions name their factors as io.state_upgrade says

#: the dtypes a model computes in, by name
DTYPES = {"float32": torch.float32, "float64": torch.float64}


def torch_dtype(dtype: Optional[str]) -> Optional[torch.dtype]:
    """"float32" / "float64" -> torch dtype; None stays None ("as saved"); anything else is refused."""
    if dtype is None:
        return None
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    return DTYPES[dtype]


def save_model(model: FacetModel, path, metadata: Optional[Dict[str, Any]] = None) -> None:
    """Write ``model`` to ``path`` atomically: a crash mid-write leaves the old file (if any) intact."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    payload = {
        **make_header(FORMAT_NAME, FORMAT_VERSION),
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
    """The checked payload of a model file (header, config, state_dict, dtype, metadata); the weights of an
    older format version are read as the current one names them (``io.state_upgrade``)."""
    payload = read_torch_file(path, "model file")
    version = check_header(payload, FORMAT_NAME, FORMAT_VERSION, path, "facetpot model file",
                           "convert it with the facetpot version that wrote it, or retrain",
                           older=range(OLDEST_READABLE, FORMAT_VERSION))
    payload["state_dict"] = upgrade_state(payload["state_dict"], version)
    return payload


def model_path(model: Union[str, Path]) -> Path:
    """A model file, or the checked file of a shipped model's name; errors list the known names."""
    if Path(model).is_file():
        return Path(model)
    name = str(model)
    if name in PRETRAINED:
        return pretrained_path(name)
    if isinstance(model, Path) or any(c in name for c in "/\\."):
        raise FileNotFoundError(f"model file not found: {model} (nor is it a pretrained name: "
                                f"{', '.join(m.name for m in available()) or 'none shipped yet'})")
    return pretrained_path(name)  # raises: unknown name, with the list of known names


#: environment variable that forces a convolution backend on every model loaded or resolved here
BACKEND_ENV = "FACETPOT_BACKEND"


def select_backend(model: FacetModel, backend: Optional[str] = None) -> FacetModel:
    """``model`` computing with ``backend``, or with ``$FACETPOT_BACKEND`` when it is set and ``backend``
    is None; neither: the default for its device (``facetpot.backend_default``: the fused triton kernels
    on CUDA, checked once; the model's own backend on CPU)."""
    name = backend or os.environ.get(BACKEND_ENV) or default_backend(model)
    if name and name != model.backend:
        model.set_backend(name)
    return model


def load_model(path, device="cpu", dtype: Optional[str] = None, backend: Optional[str] = None) -> FacetModel:
    """Load a model file written by :func:`save_model`, or a shipped model by name (``facetpot.pretrained``);
    ``dtype`` None keeps the one it was saved in; ``backend`` see :func:`select_backend`."""
    payload = read_model_file(model_path(path))
    saved = getattr(torch, payload.get("dtype", "float32"))
    # load into parameters of the saved dtype: float64 weights copied into float32 ones would be rounded
    model = FacetModel(**payload["config"]).to(dtype=saved)
    model.load_state_dict(payload["state_dict"], strict=True)
    model.metadata = payload.get("metadata", {})
    return select_backend(model.to(device=device, dtype=torch_dtype(dtype) or saved).eval(), backend)


def resolve_model(model: Union[FacetModel, str, Path], device=None, dtype: Optional[str] = None,
                  backend: Optional[str] = None) -> FacetModel:
    """A FacetModel, a model file path or a pretrained name -> a FacetModel.

    ``dtype`` None keeps the object's dtype or the file's saved one; ``device`` None keeps an
    object where it is and puts a loaded model on the CPU; ``backend`` see :func:`select_backend`."""
    wanted = torch_dtype(dtype)
    if isinstance(model, FacetModel):
        return select_backend(model.to(device=device, dtype=wanted), backend)
    if isinstance(model, (str, Path)):
        device = device or "cpu"
        return load_model(model, device=device, dtype=dtype, backend=backend)
    raise TypeError(f"model must be a FacetModel, a file path or a pretrained name, got {type(model).__name__}")


def inference_model(model: Union[FacetModel, str, Path], device=None, dtype: Optional[str] = None,
                    backend: Optional[str] = None, copy: bool = False) -> FacetModel:
    """``model`` (an object, a file or a pretrained name; see :func:`resolve_model`) prepared to compute
    energies, forces and stress: on ``device`` and ``dtype``, eval mode, every weight frozen, on its backend
    (:func:`select_backend`: ``backend``, else ``$FACETPOT_BACKEND``, else the device's default).

    Frozen weights are what select the inference paths: the density backend's fused Function with its
    hand-written backward (``nn/conv/density_op.py``) and the remembered isolated-atom energies
    (``FacetModel._frozen_isolated_atom_energies``); parameter gradients are then unavailable, so training
    never goes through here. ``copy`` True leaves a FacetModel passed in untouched (a prepared deep copy
    is returned): what the ASE calculator does, so two calculators of one model in different dtypes or
    devices do not change each other or the caller's model."""
    device = None if device is None else torch_device(device)
    if copy and isinstance(model, FacetModel):
        model = copy_module.deepcopy(model)
    model = resolve_model(model, device=device, dtype=dtype, backend=backend).eval()
    model.requires_grad_(False)
    return model
