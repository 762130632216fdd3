"""nn/bessel_radial.py against its formula b_n(r) = (2 / r_c) sin(n pi r / r_c) / r u(r)."""

import numpy as np
import torch

from facetpot.nn.bessel_radial import BesselRadialBasis
from facetpot.nn.cutoffs import polynomial_envelope, xplor_cutoff


def test_bessel_basis_is_its_formula_with_either_cutoff():
    rc, n = 5.0, 8
    r = np.linspace(0.05, 5.5, 111)
    basis = BesselRadialBasis(rc, n, envelope_p=6).double()
    freq = basis.frequencies.detach().numpy()  # initialised in the default dtype (float32 here) to n pi / r_c
    np.testing.assert_allclose(freq, np.arange(1, n + 1) * np.pi / rc, rtol=1e-6)
    sines = np.sin(freq[None, :] * r[:, None]) / r[:, None] * (2.0 / rc)
    poly = basis(torch.tensor(r)).detach().numpy()
    np.testing.assert_allclose(poly, sines * polynomial_envelope(torch.tensor(r / rc), 6).numpy()[:, None], atol=1e-13)
    xplor = BesselRadialBasis(rc, n, cutoff_fn="xplor", cutoff_on=4.0).double()(torch.tensor(r)).detach().numpy()
    np.testing.assert_allclose(xplor, sines * xplor_cutoff(torch.tensor(r), 4.0, rc).numpy()[:, None], atol=1e-13)
    assert (poly[r >= rc] == 0).all()


def test_trained_frequencies_enter_the_formula_and_get_gradients():
    basis = BesselRadialBasis(4.0, 3).double()
    with torch.no_grad():
        basis.frequencies.copy_(torch.tensor([1.0, 2.5, 4.0]))
    r = torch.tensor([0.7, 1.9], dtype=torch.float64)
    ref = 0.5 * torch.sin(r[:, None] * basis.frequencies) / r[:, None] * polynomial_envelope(r / 4.0, 6)[:, None]
    torch.testing.assert_close(basis(r), ref)
    basis(r).sum().backward()
    assert basis.frequencies.grad is not None and bool((basis.frequencies.grad != 0).all())
