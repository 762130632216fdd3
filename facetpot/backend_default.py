"""Which convolution backend a model computes with when none is asked for.

* CPU: ``density`` (atom-centred GEMMs; the fastest measured on CPUs, benchmarks/RESULTS.md).
* CUDA: ``density`` too (:data:`CUDA_DEFAULT`). The fused ``triton`` kernels agree with it to float64
  round-off on an H200 but took 2.6x (1k atoms) to 11x (100k atoms) longer per Facet-S call, their
  backward kernels dominating (benchmarks/RESULTS.md, 2026-12-04), so they are opt-in (``backend="triton"``).
  Whenever :data:`CUDA_DEFAULT` names a fused backend, a model gets it only once its own kernels reproduce
  ``density`` on a small cluster of its species (energy and forces, in the model's dtype; checked once per
  model, a few ms); otherwise ``density``, with a warning that says why.

``backend=`` (``load_model``, ``resolve_model``, ``FacetCalculator``) or ``$FACETPOT_BACKEND`` override
this choice (``facetpot.io.model_file.select_backend``).
"""
from __future__ import annotations

import warnings
import weakref
from typing import Optional

import torch

from .graph import structure_graph
from .model import FacetModel
from .nn.convolution import DEFAULT_BACKEND
from .derivatives import compute_properties

#: the backend CUDA devices get by default (a fused one only after it passes :func:`fused_backend_problem`)
CUDA_DEFAULT = DEFAULT_BACKEND

# a cluster of 6 atoms, every pair between 1.7 and 3.5 Å (within any model's cutoff), no symmetry
_CLUSTER = [[0.0, 0.0, 0.0], [1.9, 0.1, -0.2], [0.2, 2.0, 0.3], [-0.3, 0.4, 1.8], [1.7, 1.9, 0.9], [0.4, 1.6, 2.3]]


def fused_backend_problem(model: FacetModel, backend: str = "triton") -> Optional[str]:
    """None when ``backend`` gives ``model``'s reference (``density``) energy and forces on a small cluster
    of the model's species, on the model's device and dtype; otherwise what went wrong. The model is
    left on the backend it came with."""
    start = model.backend
    z = [model.species[k % len(model.species)] for k in range(len(_CLUSTER))]
    graph = structure_graph(z, _CLUSTER, torch.zeros(3, 3, dtype=torch.float64), [False] * 3, model.cutoff)
    graph = graph.to(model.device, model.dtype)
    results = {}
    # frozen weights, as the calculator and relaxations run: the force pass then goes through the fused
    # backward kernels too (with weights that need gradients it takes the torch formulas)
    grads = [p.requires_grad for p in model.parameters()]
    model.requires_grad_(False)
    try:
        for name in (DEFAULT_BACKEND, backend):
            model.set_backend(name)
            out = compute_properties(model, graph, stress=False)
            results[name] = (out["energy"].detach(), out["forces"].detach())
    except Exception as exc:  # noqa: BLE001 - any failure of the kernels means: do not use them
        return f"{type(exc).__name__}: {exc}"
    finally:
        model.set_backend(start)
        for p, g in zip(model.parameters(), grads):
            p.requires_grad_(g)
    tol = 1e-4 if model.dtype == torch.float32 else 1e-9
    for (ref, new), what in zip(zip(results[DEFAULT_BACKEND], results[backend]), ("energy", "forces")):
        scale = 1.0 + float(ref.abs().max())
        err = float((new - ref).abs().max())
        if not err <= tol * scale:  # also catches NaN
            return f"{what} differ from the {DEFAULT_BACKEND} backend's by {err:.3g} (allowed {tol * scale:.3g})"
    return None


def runs_on_cuda(model: FacetModel) -> bool:
    return model.device.type == "cuda"


# per model: (device, dtype) it was last checked on -> the choice (a failing check warns only once)
_CHOSEN: "weakref.WeakKeyDictionary[FacetModel, tuple]" = weakref.WeakKeyDictionary()


def default_backend(model: FacetModel) -> str:
    """The backend ``model`` should compute with on its device when the user asked for none: on CUDA
    :data:`CUDA_DEFAULT` (a fused one only once it passed :func:`fused_backend_problem` there), unless a non-default backend was set
    on the model before (that choice stands); elsewhere the model's own."""
    if not runs_on_cuda(model) or model.backend != DEFAULT_BACKEND or CUDA_DEFAULT == DEFAULT_BACKEND:
        return model.backend
    key = (str(model.device), model.dtype)
    if model in _CHOSEN and _CHOSEN[model][0] == key:
        return _CHOSEN[model][1]
    choice = _cuda_choice(model)
    _CHOSEN[model] = (key, choice)
    return choice


def _cuda_choice(model: FacetModel) -> str:
    try:
        import triton  # noqa: F401  (CUDA builds of torch bring it)
    except ImportError:
        warnings.warn("facetpot: triton is not installed, so CUDA runs the density backend instead of the fused "
                      "kernels (pip install triton)", stacklevel=3)
        return DEFAULT_BACKEND
    problem = fused_backend_problem(model, CUDA_DEFAULT)
    if problem is not None:
        warnings.warn(f"facetpot: the fused {CUDA_DEFAULT} backend failed its check on {model.device} ({problem}); "
                      f"computing with {DEFAULT_BACKEND} instead. Please report this with your GPU and versions.",
                      stacklevel=3)
        return DEFAULT_BACKEND
    return CUDA_DEFAULT
