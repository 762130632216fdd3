"""nn/spline_radial.py against its formula: cardinal cubic B-splines (scipy's) on uniform knots times the envelope."""

import numpy as np
import pytest
import torch
from scipy.interpolate import BSpline

from facetpot.nn.cutoffs import polynomial_envelope
from facetpot.nn.spline_radial import SplineRadialBasis, cubic_bspline


def test_cubic_bspline_is_scipys_cardinal_cubic_bspline():
    x = np.linspace(-3.0, 3.0, 121)
    ref = BSpline.basis_element([-2.0, -1.0, 0.0, 1.0, 2.0], extrapolate=False)(x)
    np.testing.assert_allclose(cubic_bspline(torch.tensor(x)).numpy(), np.nan_to_num(ref), atol=1e-14)


@pytest.mark.parametrize("start", [0.0, 0.6])
def test_basis_is_shifted_bsplines_times_the_envelope(start):
    cutoff, k_basis = 5.0, 10
    basis = SplineRadialBasis(cutoff, k_basis, envelope_p=6, start=start)
    h = (cutoff - start) / (k_basis - 1)
    r = np.linspace(0.05, 5.4, 200)
    got = basis(torch.tensor(r)).numpy()
    u = polynomial_envelope(torch.tensor(r / cutoff), 6).numpy()
    for k in range(k_basis):
        knots = start + h * (k + np.arange(-2, 3))
        ref = np.nan_to_num(BSpline.basis_element(knots, extrapolate=False)(r))
        np.testing.assert_allclose(got[:, k], ref * u, atol=1e-13)
    assert (np.count_nonzero(got, axis=1) <= 4).all()  # local: every distance touches at most four functions


def test_interior_partition_of_unity_and_c2_smoothness():
    cutoff, k_basis = 5.0, 12
    basis = SplineRadialBasis(cutoff, k_basis, envelope_p=6)
    h = cutoff / (k_basis - 1)
    r = torch.linspace(h, cutoff - 2 * h, 50, dtype=torch.float64)
    torch.testing.assert_close(basis(r).sum(-1), polynomial_envelope(r / cutoff, 6))  # sum_k N3(s - k) = 1
    for knot in (2 * h, 3 * h):  # second derivatives continuous across a knot
        second = []
        for r0 in (knot - 1e-6, knot + 1e-6):
            x = torch.tensor(r0, dtype=torch.float64, requires_grad=True)
            (g,) = torch.autograd.grad(basis(x.view(1)).sum(), x, create_graph=True)
            (g2,) = torch.autograd.grad(g, x)
            second.append(float(g2))
        assert second[0] == pytest.approx(second[1], abs=1e-4)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="at least 4"):
        SplineRadialBasis(5.0, 3)
    with pytest.raises(ValueError, match="spline_start"):
        SplineRadialBasis(5.0, 8, start=5.0)
