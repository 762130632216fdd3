"""Spline radial basis: local cubic B-splines on [0, r_c] times a smooth cutoff envelope.

    b_k(r) = N3((r - r_0 - k h) / h) * u(r),   k = 0 .. K-1,   h = (r_c - r_0) / (K - 1)

with N3 the centred cardinal cubic B-spline (support [-2, 2], C^2) and u a smooth cutoff (``cutoffs``:
the polynomial envelope of degree p by default, whose value, first and second derivatives vanish at
r_c; or the XPLOR switch, for splines fitted to a SevenNet-0 model). Every radial weight of the model
is *linear* in these K functions (Facet's replacement of the radial MLP); each r touches at most
four of them. The basis is computed once per edge and shared by all layers.
"""

from typing import Optional

import torch
from torch import nn

from .cutoffs import SmoothCutoff


def cubic_bspline(x: torch.Tensor) -> torch.Tensor:
    """Centred cardinal cubic B-spline N3(x)."""
    ax = x.abs()
    inner = (4.0 - 6.0 * ax**2 + 3.0 * ax**3) / 6.0
    outer = (2.0 - ax).clamp(min=0.0) ** 3 / 6.0
    return torch.where(ax < 1.0, inner, outer)


class SplineRadialBasis(nn.Module):
    """r (E,) -> b (E, K): cubic B-splines with uniform knots on [0, r_c], times the envelope."""

    def __init__(
        self,
        cutoff: float,
        num_basis: int = 8,
        envelope_p: int = 6,
        cutoff_fn: str = "polynomial",
        cutoff_on: Optional[float] = None,
        start: float = 0.0,
    ):
        super().__init__()
        if num_basis < 4:
            raise ValueError(f"num_radial must be at least 4 (cubic B-splines), got {num_basis}")
        if not 0.0 <= float(start) < float(cutoff):
            raise ValueError(f"spline_start must be in [0, cutoff), got {start}")
        self.cutoff = float(cutoff)
        self.num_basis = int(num_basis)
        self.start = float(start)  # r_0: the first knot (distances below r_0 - 2h get zero weights)
        self.spacing = (self.cutoff - self.start) / (self.num_basis - 1)
        self.envelope = SmoothCutoff(cutoff, cutoff_fn, envelope_p, cutoff_on)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        k = torch.arange(self.num_basis, device=r.device, dtype=r.dtype)
        t = (r.unsqueeze(-1) - self.start) / self.spacing - k
        return cubic_bspline(t) * self.envelope(r).unsqueeze(-1)

    def extra_repr(self) -> str:
        return f"cutoff={self.cutoff}, num_basis={self.num_basis}"
