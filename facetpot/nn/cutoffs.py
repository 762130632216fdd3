"""Smooth cutoff functions u(r) that take radial features to zero at the cutoff r_c.

    polynomial (degree p, x = r / r_c):  u = 1 - (p+1)(p+2)/2 x^p + p(p+2) x^(p+1) - p(p+1)/2 x^(p+2)   (x < 1)
    XPLOR (switch on from r_on):         u = 1 for r < r_on,
                                         u = (r_c^2 - r^2)^2 (r_c^2 + 2 r^2 - 3 r_on^2) / (r_c^2 - r_on^2)^3 for r_on <= r < r_c

Both are 0 for r >= r_c. The polynomial's value, first and second derivatives vanish at r_c; the
XPLOR switch (SevenNet-0, CHARMM) is C^1 at r_on and r_c.
"""

from typing import Optional

import torch
from torch import nn


def polynomial_envelope(x: torch.Tensor, p: int) -> torch.Tensor:
    """u(x) for x = r / r_c (see the module docstring); 0 for x >= 1."""
    xc = x.clamp(max=1.0)
    u = 1.0 - (p + 1.0) * (p + 2.0) / 2.0 * xc**p + p * (p + 2.0) * xc ** (p + 1) - p * (p + 1.0) / 2.0 * xc ** (p + 2)
    return torch.where(x < 1.0, u, torch.zeros_like(u))


def xplor_cutoff(r: torch.Tensor, r_on: float, r_c: float) -> torch.Tensor:
    """The XPLOR switching function of r (Å); 1 below r_on, 0 from r_c on."""
    r2, on2, c2 = r * r, r_on * r_on, r_c * r_c
    switch = (c2 - r2) ** 2 * (c2 + 2.0 * r2 - 3.0 * on2) / (c2 - on2) ** 3
    return torch.where(r < r_on, torch.ones_like(r), torch.where(r < r_c, switch, torch.zeros_like(r)))


CUTOFF_FUNCTIONS = ("polynomial", "xplor")


class SmoothCutoff(nn.Module):
    """r (E,) -> u(r) (E,): the polynomial envelope of degree ``envelope_p`` or the XPLOR switch from ``cutoff_on``."""

    def __init__(self, cutoff: float, kind: str = "polynomial", envelope_p: int = 6, cutoff_on: Optional[float] = None):
        super().__init__()
        if kind not in CUTOFF_FUNCTIONS:
            raise ValueError(f"cutoff_fn must be one of {CUTOFF_FUNCTIONS}, got {kind!r}")
        if kind == "xplor" and (cutoff_on is None or not 0 < float(cutoff_on) < float(cutoff)):
            raise ValueError(f"the xplor cutoff needs 0 < cutoff_on < cutoff, got cutoff_on={cutoff_on}")
        self.cutoff = float(cutoff)
        self.kind = kind
        self.envelope_p = int(envelope_p)
        self.cutoff_on = float(cutoff_on) if cutoff_on is not None else 0.0

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        if self.kind == "xplor":
            return xplor_cutoff(r, self.cutoff_on, self.cutoff)
        return polynomial_envelope(r / self.cutoff, self.envelope_p)

    def extra_repr(self) -> str:
        extra = f", r_on={self.cutoff_on}" if self.kind == "xplor" else f", p={self.envelope_p}"
        return f"{self.kind}, cutoff={self.cutoff}{extra}"
