"""nn/sh_radial_product.py: T[e, a, k] = Y_a b_k, and its hand-written backward equals autograd's (twice)."""

import torch

from facetpot.nn.sh_radial_product import sh_radial_product


def test_product_and_its_derivatives_equal_the_broadcast_product():
    g = torch.Generator().manual_seed(0)
    sh = torch.randn(7, 9, dtype=torch.float64, generator=g, requires_grad=True)
    radial = torch.randn(7, 5, dtype=torch.float64, generator=g, requires_grad=True)
    out = sh_radial_product(sh, radial)
    torch.testing.assert_close(out, torch.einsum("ea,ek->eak", sh, radial), rtol=0, atol=0)
    assert torch.autograd.gradcheck(sh_radial_product, (sh, radial))
    assert torch.autograd.gradgradcheck(sh_radial_product, (sh, radial))


def test_one_input_without_gradient():
    sh = torch.randn(4, 4, dtype=torch.float64)
    radial = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 4, 3, dtype=torch.float64)
    (grad,) = torch.autograd.grad((sh_radial_product(sh, radial) * w).sum(), radial)
    torch.testing.assert_close(grad, torch.einsum("ea,eak->ek", sh, w))
