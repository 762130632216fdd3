"""Constant tensors (Clebsch-Gordan, grid matrices) kept exact under dtype changes.

Buffers built in float64 and cast to float32 lose digits; casting them back to float64 does not
bring the digits back, and the equivariance of a float64 model would then hold only to ~1e-8.
Modules that derive from :class:`ExactBuffers` keep a float64 master of every constant and
re-derive the buffer from it whenever the module is moved (``.to``, ``.double``, ``.cuda`` ...).
The buffers are not saved in model files: they are a function of the config.
"""

import torch
from torch import nn


class ExactBuffers(nn.Module):
    def register_constant(self, name: str, value: torch.Tensor) -> None:
        if not hasattr(self, "_masters"):
            self._masters = {}
        master = value.detach().to(torch.float64 if value.is_floating_point() else value.dtype).cpu()
        self._masters[name] = master
        dtype = torch.get_default_dtype() if value.is_floating_point() else value.dtype
        self.register_buffer(name, master.to(dtype), persistent=False)

    def _apply(self, fn, recurse=True):
        super()._apply(fn, recurse)
        for name, master in getattr(self, "_masters", {}).items():
            cur = getattr(self, name)
            setattr(self, name, master.to(device=cur.device, dtype=cur.dtype))
        return self
