"""Values derived from frozen weights, computed once and remembered.

With frozen weights (the calculator, MD, relaxations: ``facetpot.inference.prepare.inference_model``) some
per-call work depends on the weights alone: the scaled radial weights of a convolution, the density
backend's per-channel matrices M_u = C (x) W_u (a few MB per layer for the shipped model, rebuilt on
every call otherwise). :func:`remembered` returns ``compute()`` from a cache on the module while every
source tensor is unchanged (same storage, in-place version, dtype and device) and none requires a
gradient; training, TorchScript and torch.compile never reach it (callers check first).
"""

from typing import Callable, List, Optional, TypeVar

import torch

T = TypeVar("T")


@torch.jit.unused
def remembered(owner: torch.nn.Module, name: str, sources: List[torch.Tensor], compute: Callable[[], T]) -> T:
    """``compute()``, remembered on ``owner`` under ``name`` for as long as ``sources`` are unchanged and
    frozen; recomputed (not remembered) when one requires a gradient or under torch.compile."""
    if torch.compiler.is_compiling() or any(s.requires_grad for s in sources):
        return compute()
    # storage address, in-place version and shape: the entry keeps every source's storage alive, so an address
    # names one storage (its dtype and device too) for as long as the entry lives
    key = tuple((s.data_ptr(), s._version, s.shape) for s in sources)
    cache = owner.__dict__.setdefault("_frozen_cache", {})
    hit = cache.get(name)
    if hit is None or hit[0] != key:
        with torch.no_grad():
            # the entry keeps the sources' storage alive, so no other tensor can take their address while
            # it is remembered (a temporary freed and reallocated at the same address would match the key)
            hit = (key, compute(), [s.detach() for s in sources])
        cache[name] = hit
    return hit[1]


@torch.jit.unused
def module_tensors(module: torch.nn.Module, out: Optional[List[torch.Tensor]] = None) -> List[torch.Tensor]:
    """The parameters and buffers of ``module`` and its submodules, by a direct walk of their dictionaries: the
    sources of a remembered value that depends on a whole model, listed per call (~0.04 ms for the shipped model,
    against ~0.2 ms for ``parameters()`` and ``buffers()``; a tensor shared by two modules is listed twice)."""
    out = [] if out is None else out
    out += [t for t in module._parameters.values() if t is not None]
    out += [t for t in module._buffers.values() if t is not None]
    for child in module._modules.values():
        if child is not None:
            module_tensors(child, out)
    return out
