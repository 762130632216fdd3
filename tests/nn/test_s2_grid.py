"""The spherical grid integrates exactly what it must, and the grid layer is exactly equivariant."""

import math

import pytest
import torch
from e3nn import o3

from facetpot.nn.s2_grid import gauss_legendre_grid, grid_matrices
from facetpot.nn.s2_grid_mixing import S2GridMixing


@pytest.mark.parametrize("degree", [2, 6, 9])
def test_quadrature_is_exact_up_to_its_degree(degree):
    pts, w = gauss_legendre_grid(degree)
    assert w.sum().item() == pytest.approx(4 * math.pi, rel=1e-14)
    lmax = degree // 2  # products Y_l Y_l' with l + l' <= degree
    y = o3.spherical_harmonics(list(range(lmax + 1)), pts, normalize=True, normalization="component")
    gram = (w[:, None] * y).T @ y / (4 * math.pi)
    assert torch.allclose(gram, torch.eye(y.shape[1], dtype=gram.dtype), atol=1e-13)


def test_grid_round_trip_is_identity():
    to_grid, from_grid = grid_matrices(2, 6)
    assert torch.allclose(to_grid @ from_grid, torch.eye(9, dtype=torch.float64), atol=1e-13)


def test_grid_layer_is_exactly_equivariant():
    torch.manual_seed(0)
    irreps = [(5, 0, 1), (3, 1, -1), (2, 2, 1)]
    layer = S2GridMixing(irreps, irreps, lmax=2, channels=4, hidden=6).double()
    x = [torch.randn(7, m, 2 * l + 1, dtype=torch.float64) for m, l, _ in irreps]
    rot = o3.rand_matrix(dtype=torch.float64)
    for sign in (1.0, -1.0):  # rotation, then rotation-reflection
        r = sign * rot
        d = {l: o3.Irrep(l, p).D_from_matrix(r) for _, l, p in irreps for p in [(-1) ** l]}
        xr = [b @ d[l].T for b, (_, l, _) in zip(x, irreps)]
        y, yr = layer(x), layer(xr)
        for a, b, (_, l, _) in zip(y, yr, irreps):
            assert torch.allclose(a @ d[l].T, b, atol=1e-12)
