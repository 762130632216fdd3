"""nn/exact_buffers.py: constants survive float32 round trips exactly and are not saved."""

import math

import torch

from facetpot.nn.exact_buffers import ExactBuffers


class _Holder(ExactBuffers):
    def __init__(self):
        super().__init__()
        self.register_constant("c", torch.tensor([1.0 / 3.0, math.sqrt(2.0), math.pi], dtype=torch.float64))
        self.register_constant("index", torch.tensor([3, 1, 2]))


def test_float64_after_float32_has_every_digit_back():
    m = _Holder().double()
    exact = torch.tensor([1.0 / 3.0, math.sqrt(2.0), math.pi], dtype=torch.float64)
    assert torch.equal(m.c, exact)
    m.float()
    assert m.c.dtype == torch.float32 and torch.equal(m.c, exact.float())
    m.double()
    assert torch.equal(m.c, exact)  # a plain buffer would now differ from exact by ~1e-8
    assert m.index.dtype == torch.int64 and m.index.tolist() == [3, 1, 2]


def test_constants_are_not_in_the_state_dict():
    assert "c" not in _Holder().state_dict() and "index" not in _Holder().state_dict()
