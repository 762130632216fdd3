"""Radial MLP (NequIP / SevenNet): the hidden layers of the network that maps a radial basis to weights.

    h_0 = b(r),   h_{k+1} = c * silu( h_k W_k / sqrt(dim h_k) ),   k = 0 .. len(hidden) - 1

no biases, c the SiLU's second-moment normalisation. The last layer, linear, is the convolution's
own weight matrix: w(r) = h(r) W / sqrt(dim h), so the convolution treats h(r) as a per-layer basis
(the spline model's weights are linear in b(r) directly, with no MLP).
"""

import math
from typing import List

import torch
from torch import nn


class RadialMLP(nn.Module):
    """(E, K) -> (E, hidden[-1])."""

    def __init__(self, num_basis: int, hidden: List[int], silu_norm: float):
        super().__init__()
        dims = [int(num_basis)] + [int(h) for h in hidden]
        self.weights = nn.ParameterList([nn.Parameter(torch.randn(a, b)) for a, b in zip(dims[:-1], dims[1:])])
        self.norms = [1.0 / math.sqrt(a) for a in dims[:-1]]
        self.silu_norm = float(silu_norm)

    def forward(self, basis: torch.Tensor) -> torch.Tensor:
        h = basis
        for k, w in enumerate(self.weights):
            h = torch.nn.functional.silu(torch.matmul(h, w) * self.norms[k]) * self.silu_norm
        return h
