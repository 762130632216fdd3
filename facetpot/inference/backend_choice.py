"""Which convolution backend a model computes with.

    backend = asked (``backend=``)  else  $FACETPOT_BACKEND  else  the model's own

A new or loaded model is on ``density`` (``nn.convolution.DEFAULT_BACKEND``), the default on CPUs and CUDA alike:
the fused ``triton`` kernels agree with it to float64 round-off but are slower (benchmarks/RESULTS.md, GPU), so
they are opt-in (``backend="triton"``), like ``edgewise`` and ``cueq``. This module is the only one that reads
the environment variable.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from ..model import FacetModel

#: environment variable that forces a convolution backend on every model prepared for inference
BACKEND_ENV = "FACETPOT_BACKEND"


def asked_backend(backend: Optional[str] = None) -> Optional[str]:
    """``backend``, else ``$FACETPOT_BACKEND``, else None (every model then keeps its own)."""
    return backend or os.environ.get(BACKEND_ENV) or None


def chosen_backend(model: "FacetModel", backend: Optional[str] = None) -> str:
    """The backend ``model`` should compute with: ``backend``, else ``$FACETPOT_BACKEND``, else its own."""
    return asked_backend(backend) or model.backend


def select_backend(model: "FacetModel", backend: Optional[str] = None) -> "FacetModel":
    """``model`` set to :func:`chosen_backend` (in place: call it on a model of your own)."""
    name = chosen_backend(model, backend)
    if name != model.backend:
        model.set_backend(name)
    return model
