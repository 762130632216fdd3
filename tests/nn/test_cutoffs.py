"""nn/cutoffs.py against its formulas: the polynomial envelope and the XPLOR switch, values and smoothness."""

import numpy as np
import pytest
import torch

from facetpot.nn.cutoffs import SmoothCutoff, polynomial_envelope, xplor_cutoff


def _derivatives(f, x0: float, order: int):
    """f(x), f'(x), ... up to ``order`` at x0 by autograd (float64)."""
    x = torch.tensor(x0, dtype=torch.float64, requires_grad=True)
    out, y = [], f(x)
    for _ in range(order + 1):
        out.append(float(y.detach()))
        if not y.requires_grad:
            out.extend([0.0] * (order + 1 - len(out)))
            break
        (y,) = torch.autograd.grad(y, x, create_graph=True)
    return out[: order + 1]


@pytest.mark.parametrize("p", [2, 5, 6])
def test_polynomial_envelope_is_its_formula_and_vanishes_to_second_order(p):
    x = np.linspace(0.0, 1.3, 27)
    ref = 1 - (p + 1) * (p + 2) / 2 * x**p + p * (p + 2) * x ** (p + 1) - p * (p + 1) / 2 * x ** (p + 2)
    ref[x >= 1] = 0.0
    got = polynomial_envelope(torch.tensor(x), p).numpy()
    np.testing.assert_allclose(got, ref, atol=1e-14)
    assert got[0] == 1.0
    value, first, second = _derivatives(lambda t: polynomial_envelope(t, p), 1.0 - 1e-9, 2)
    assert abs(value) < 1e-12 and abs(first) < 1e-6 and abs(second) < 1e-3
    assert _derivatives(lambda t: polynomial_envelope(t, p), 0.0, 1)[1] == 0.0  # flat at r = 0 (p >= 2)


def test_xplor_switch_is_one_then_the_charmm_polynomial_then_zero_and_c1():
    r_on, r_c = 4.0, 5.0
    r = np.linspace(0.5, 5.5, 51)
    ref = np.where(r < r_on, 1.0, (r_c**2 - r**2) ** 2 * (r_c**2 + 2 * r**2 - 3 * r_on**2) / (r_c**2 - r_on**2) ** 3)
    ref[r >= r_c] = 0.0
    np.testing.assert_allclose(xplor_cutoff(torch.tensor(r), r_on, r_c).numpy(), ref, atol=1e-14)
    f = lambda t: xplor_cutoff(t, r_on, r_c)  # noqa: E731
    for r0, value in ((r_on, 1.0), (r_c, 0.0)):  # continuous with a continuous first derivative at both ends
        below, above = _derivatives(f, r0 - 1e-7, 1), _derivatives(f, r0 + 1e-7, 1)
        assert below[0] == pytest.approx(value, abs=1e-6) and above[0] == pytest.approx(value, abs=1e-6)
        assert abs(below[1]) < 1e-5 and abs(above[1]) < 1e-5


def test_smooth_cutoff_module_picks_the_function_and_checks_its_arguments():
    r = torch.linspace(0.1, 6.0, 40, dtype=torch.float64)
    torch.testing.assert_close(SmoothCutoff(5.0, "polynomial", 6)(r), polynomial_envelope(r / 5.0, 6))
    torch.testing.assert_close(SmoothCutoff(5.0, "xplor", cutoff_on=4.5)(r), xplor_cutoff(r, 4.5, 5.0))
    with pytest.raises(ValueError, match="cutoff_fn"):
        SmoothCutoff(5.0, "cosine")
    with pytest.raises(ValueError, match="cutoff_on"):
        SmoothCutoff(5.0, "xplor", cutoff_on=5.0)
