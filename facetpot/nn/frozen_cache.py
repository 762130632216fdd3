"""Values derived from frozen weights, computed once and remembered.

With frozen weights (the calculator, MD, relaxations: ``facetpot.inference.prepare.inference_model``) some
per-call work depends on the weights alone: the scaled radial weights of a convolution, the density
backend's per-channel matrices M_u = C (x) W_u (a few MB per layer for the shipped model, rebuilt on
every call otherwise). :func:`remembered` returns ``compute()`` from a cache on the module while every
source tensor is unchanged (same storage, in-place version, dtype and device) and none requires a
gradient; training, TorchScript and torch.compile never reach it (callers check first).
"""

from typing import Callable, List, TypeVar

import torch

T = TypeVar("T")


@torch.jit.unused
def remembered(owner: torch.nn.Module, name: str, sources: List[torch.Tensor], compute: Callable[[], T]) -> T:
    """``compute()``, remembered on ``owner`` under ``name`` for as long as ``sources`` are unchanged and
    frozen; recomputed (not remembered) when one requires a gradient or under torch.compile."""
    if torch.compiler.is_compiling() or any(s.requires_grad for s in sources):
        return compute()
    key = tuple((s.data_ptr(), s._version, s.dtype, s.device, tuple(s.shape)) for s in sources)
    cache = owner.__dict__.setdefault("_frozen_cache", {})
    hit = cache.get(name)
    if hit is None or hit[0] != key:
        with torch.no_grad():
            # the entry keeps the sources' storage alive, so no other tensor can take their address while
            # it is remembered (a temporary freed and reallocated at the same address would match the key)
            hit = (key, compute(), [s.detach() for s in sources])
        cache[name] = hit
    return hit[1]
