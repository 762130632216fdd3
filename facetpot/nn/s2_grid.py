"""Quadrature grids on the sphere and the fixed matrices that move between coefficients and grid.

Grid: Gauss-Legendre nodes in z = cos(beta) times equispaced alpha,

    integral over S^2 of f  =  sum_i w_i f(x_i)   exactly for spherical polynomials of degree <= D

when n_beta >= (D + 1) / 2 and n_alpha >= D + 1. With Y the spherical harmonics in 'component'
normalisation (mean of Y_lm^2 over the sphere = 1) and d = (l_max + 1)^2:

    to_grid   T = Y(x_i)^T / sqrt(d)                 f(x_i) = sum_lm c_lm T_lm,i
    from_grid F = sqrt(d) w_i Y(x_i) / (4 pi)         c_lm  = sum_i f(x_i) F_i,lm

so F T = identity on band-limited functions; the 1/sqrt(d) keeps grid values at unit variance.
"""

import math
from typing import Tuple

import numpy as np
import torch
from e3nn import o3


def gauss_legendre_grid(degree: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Points (n, 3) and weights (n,) integrating spherical polynomials of degree <= ``degree``."""
    n_beta = (degree + 2) // 2
    n_alpha = degree + 1
    z, wz = np.polynomial.legendre.leggauss(n_beta)
    alpha = 2 * math.pi * np.arange(n_alpha) / n_alpha
    s = np.sqrt(1 - z**2)
    pts = np.stack(
        [
            (s[:, None] * np.cos(alpha)[None, :]).ravel(),
            (s[:, None] * np.sin(alpha)[None, :]).ravel(),
            np.repeat(z, n_alpha),
        ],
        axis=1,
    )
    w = np.repeat(wz, n_alpha) * (2 * math.pi / n_alpha)
    return torch.from_numpy(pts), torch.from_numpy(w)


def grid_matrices(lmax: int, degree: int, parity: bool = True) -> Tuple[torch.Tensor, torch.Tensor]:
    """(to_grid (d, n), from_grid (n, d)) in float64 for coefficients l = 0..lmax."""
    pts, w = gauss_legendre_grid(degree)
    irreps = o3.Irreps.spherical_harmonics(lmax, p=-1 if parity else 1)
    y = o3.spherical_harmonics(irreps, pts, normalize=True, normalization="component")  # (n, d)
    d = (lmax + 1) ** 2
    to_grid = y.T / math.sqrt(d)
    from_grid = math.sqrt(d) * w[:, None] * y / (4 * math.pi)
    return to_grid, from_grid
