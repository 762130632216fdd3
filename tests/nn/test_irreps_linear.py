"""nn/irreps_linear.py: y_v^(l) = sum_u W_uv x_u^(l) / sqrt(fan_in) (+ b_v for 0e), equivariant under O(3)."""

import math

import pytest
import torch
from e3nn import o3

from facetpot.nn.irreps_linear import IrrepsLinear

IN = [(3, 0, 1), (2, 1, -1), (4, 0, 1), (2, 2, 1)]
OUT = [(5, 0, 1), (3, 1, -1), (2, 2, 1)]


def _blocks(n, irreps, dtype=torch.float64):
    g = torch.Generator().manual_seed(1)
    return [torch.randn(n, mul, 2 * l + 1, dtype=dtype, generator=g) for mul, l, _ in irreps]


def test_linear_map_is_its_formula():
    lin = IrrepsLinear(IN, OUT, bias=True).double()
    with torch.no_grad():
        for b in lin.biases:
            b.normal_()
    x = _blocks(4, IN)
    y = lin(x)
    scalars = torch.cat([x[0], x[2]], dim=1)  # the two 0e inputs, stacked in order
    ref0 = torch.einsum("num,uv->nvm", scalars, lin.weights[0]) / math.sqrt(7) + lin.biases[0][None, :, None]
    torch.testing.assert_close(y[0], ref0)
    torch.testing.assert_close(y[1], torch.einsum("num,uv->nvm", x[1], lin.weights[1]) / math.sqrt(2))
    torch.testing.assert_close(y[2], torch.einsum("num,uv->nvm", x[3], lin.weights[2]) / math.sqrt(2))
    assert lin.biases[1].numel() == 0 and lin.biases[2].numel() == 0  # biases on scalars only


def test_equivariant_under_rotations_and_inversion():
    lin = IrrepsLinear(IN, OUT).double()
    x = _blocks(5, IN)
    rot = o3.rand_matrix(dtype=torch.float64)
    for inversion in (False, True):

        def act(blocks, irreps):
            out = []
            for b, (_, l, p) in zip(blocks, irreps):
                d = o3.Irrep(l, p).D_from_matrix(-rot if inversion else rot)
                out.append(torch.einsum("mk,nuk->num", d, b))
            return out

        for a, b in zip(lin(act(x, IN)), act(lin(x), OUT)):
            torch.testing.assert_close(a, b)


def test_missing_input_gives_zeros_only_when_allowed():
    with pytest.raises(ValueError, match="no input irrep"):
        IrrepsLinear([(4, 0, 1)], [(2, 1, -1)])
    lin = IrrepsLinear([(4, 0, 1)], [(3, 0, 1), (2, 1, -1)], allow_missing=True).double()
    y = lin(_blocks(3, [(4, 0, 1)]))
    assert y[1].shape == (3, 2, 3) and bool((y[1] == 0).all())
