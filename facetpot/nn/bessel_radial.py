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

from .cutoffs import SmoothCutoff


class BesselRadialBasis(nn.Module):
    """r (E,) -> b (E, K)."""

    def __init__(
        self,
        cutoff: float,
        num_basis: int = 8,
        envelope_p: int = 6,
        cutoff_fn: str = "polynomial",
        cutoff_on: Optional[float] = None,
    ):
        super().__init__()
        self.cutoff = float(cutoff)
        self.num_basis = int(num_basis)
        self.envelope = SmoothCutoff(cutoff, cutoff_fn, envelope_p, cutoff_on)
        self.frequencies = nn.Parameter(torch.arange(1, self.num_basis + 1) * math.pi / self.cutoff)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        bessel = (2.0 / self.cutoff) * torch.sin(r.unsqueeze(-1) * self.frequencies) / r.unsqueeze(-1)
        return bessel * self.envelope(r).unsqueeze(-1)

    def extra_repr(self) -> str:
        return f"cutoff={self.cutoff}, num_basis={self.num_basis}"
