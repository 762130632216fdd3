"""Spherical harmonics of edge directions (e3nn's real basis, 'component' normalisation).

    Y(r) = Y_lm(r / sqrt(|r|^2 + eps)),  l = 0..l_max,  sum_m Y_lm^2 = 2l+1 on the unit sphere

The polynomials are evaluated on r / sqrt(|r|^2 + eps) instead of r / |r|, so two atoms on top of
each other give finite values (Y_l>0 -> 0) and finite gradients; for any real bond the difference
is below 1e-20 relative. The map stays exactly rotation equivariant.
"""

import torch
from e3nn import o3
from torch import nn


class EdgeSphericalHarmonics(nn.Module):
    def __init__(self, lmax: int, parity: bool = True, eps: float = 1e-24):
        super().__init__()
        self.lmax = int(lmax)
        p = -1 if parity else 1
        self.irreps = o3.Irreps.spherical_harmonics(self.lmax, p=p)
        self.eps = float(eps)
        self.sh = o3.SphericalHarmonics(self.irreps, normalize=False, normalization="component")

    def forward(self, edge_vec: torch.Tensor) -> torch.Tensor:
        unit = edge_vec * torch.rsqrt((edge_vec * edge_vec).sum(-1, keepdim=True) + self.eps)
        return self.sh(unit)
