"""Bessel radial basis times a cutoff (NequIP, SevenNet): the input of a radial MLP.

    b_n(r) = (2 / r_c) sin(c_n r) / r * u(r),   n = 1 .. K,   c_n initialised to n pi / r_c

The frequencies c_n are parameters (SevenNet trains them). u is the polynomial envelope of degree
p or the XPLOR switch from r_on (``cutoffs``). Unlike the spline basis, these functions are not
local: every one of them is non-zero almost everywhere, and the weights built from them by a radial
MLP are not linear in them (so the density backend does not apply to such a model).
"""
import math
from typing import Optional

import torch
from torch import nn

from .cutoffs import polynomial_envelope, xplor_cutoff

CUTOFF_FUNCTIONS = ("polynomial", "xplor")


class BesselRadialBasis(nn.Module):
    """r (E,) -> b (E, K)."""

    def __init__(self, cutoff: float, num_basis: int = 8, cutoff_fn: str = "polynomial", envelope_p: int = 6,
                 cutoff_on: Optional[float] = None):
        super().__init__()
        if cutoff_fn not in CUTOFF_FUNCTIONS:
            raise ValueError(f"cutoff_fn must be one of {CUTOFF_FUNCTIONS}, got {cutoff_fn!r}")
        if cutoff_fn == "xplor" and (cutoff_on is None or not 0 < float(cutoff_on) < float(cutoff)):
            raise ValueError(f"the xplor cutoff needs 0 < cutoff_on < cutoff, got cutoff_on={cutoff_on}")
        self.cutoff = float(cutoff)
        self.num_basis = int(num_basis)
        self.cutoff_fn = cutoff_fn
        self.envelope_p = int(envelope_p)
        self.cutoff_on = float(cutoff_on) if cutoff_on is not None else 0.0
        self.frequencies = nn.Parameter(torch.arange(1, self.num_basis + 1) * math.pi / self.cutoff)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        bessel = (2.0 / self.cutoff) * torch.sin(r.unsqueeze(-1) * self.frequencies) / r.unsqueeze(-1)
        if self.cutoff_fn == "xplor":
            u = xplor_cutoff(r, self.cutoff_on, self.cutoff)
        else:
            u = polynomial_envelope(r / self.cutoff, self.envelope_p)
        return bessel * u.unsqueeze(-1)

    def extra_repr(self) -> str:
        return f"cutoff={self.cutoff}, num_basis={self.num_basis}, cutoff_fn={self.cutoff_fn}"
