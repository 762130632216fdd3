"""The one way a model is prepared to compute energies, forces and stress.

Frozen weights are what select the inference paths: the C++ engine running the layers (``frozen_program``), else
the density backend's fused Function with its hand-written backward (``nn/conv/density_op.py``), and the
remembered isolated-atom energies (``FacetModel._frozen_isolated_atom_energies``); parameter gradients are then
unavailable, so training never goes through here.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Optional, Union

from ..model import FacetModel
from ..structure.option_checks import torch_device
from .backend_choice import select_backend
from .frozen_program import attach
from .model_source import resolve_model, torch_dtype


def inference_model(
    model: Union[FacetModel, str, Path],
    device=None,
    dtype: Optional[str] = None,
    backend: Optional[str] = None,
    engine: bool = True,
) -> FacetModel:
    """``model`` (an object, a file or a pretrained name; ``model_source.resolve_model``) on ``device`` and
    ``dtype``, in eval mode, every weight frozen, on its backend (``backend``, else ``$FACETPOT_BACKEND``, else
    its own), its layers run by the C++ engine where it can (``engine``; ``frozen_program``). A FacetModel passed
    in is left untouched (a prepared copy is returned): two calculators of one model in different dtypes or
    devices do not change each other or the caller's model."""
    device = None if device is None else torch_device(device)
    if isinstance(model, FacetModel):
        model = copy.deepcopy(model).to(device=device, dtype=torch_dtype(dtype))
    else:
        model = resolve_model(model, device=device, dtype=dtype)
    model = select_backend(model, backend).eval()
    model.requires_grad_(False)
    return attach(model) if engine else model
