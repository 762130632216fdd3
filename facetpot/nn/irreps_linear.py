"""Equivariant linear map between lists of irrep blocks.

For every output irrep (mul_out, l, p) the inputs of the same (l, p) are stacked along the channel
axis and mixed by one weight matrix, normalised by fan-in:

    y_v^(l) = 1/sqrt(sum_u 1) * sum_u W_uv x_u^(l)  (+ b_v for scalar outputs, when enabled)

An output with no input of its (l, p) is zero (``allow_missing``: the first layer's
self-connection, whose input is scalars only). Weights never mix m components, so the map commutes with every rotation and with inversion.
"""

import math
from typing import List, Sequence

import torch
from torch import nn

from .irreps import MulIrrep, irreps_str


class IrrepsLinear(nn.Module):
    sources: List[List[int]]

    def __init__(
        self,
        irreps_in: Sequence[MulIrrep],
        irreps_out: Sequence[MulIrrep],
        bias: bool = False,
        allow_missing: bool = False,
    ):
        super().__init__()
        self.irreps_in = list(irreps_in)
        self.irreps_out = list(irreps_out)
        sources: List[List[int]] = []
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        norms: List[float] = []
        has_bias: List[bool] = []
        for mul_out, l, p in self.irreps_out:
            src = [i for i, (m, li, pi) in enumerate(self.irreps_in) if li == l and pi == p and m > 0]
            if not src and not allow_missing:
                raise ValueError(f"no input irrep can produce {mul_out}x{l}{'e' if p == 1 else 'o'}")
            fan_in = sum(self.irreps_in[i][0] for i in src)  # 0: the output block is zero
            sources.append(src)
            self.weights.append(nn.Parameter(torch.randn(fan_in, mul_out)))
            norms.append(1.0 / math.sqrt(max(fan_in, 1)))
            use_bias = bias and l == 0 and p == 1
            has_bias.append(use_bias)
            self.biases.append(nn.Parameter(torch.zeros(mul_out if use_bias else 0)))
        self.sources = sources
        self.norms = norms
        self.has_bias = has_bias

    def forward(self, blocks: List[torch.Tensor]) -> List[torch.Tensor]:
        out: List[torch.Tensor] = []
        for k, w in enumerate(self.weights):
            src = self.sources[k]
            if len(src) == 0:
                mul_out, l = self.irreps_out[k][0], self.irreps_out[k][1]
                x0 = blocks[0]
                out.append(torch.zeros(x0.shape[0], mul_out, 2 * l + 1, dtype=x0.dtype, device=x0.device))
            else:
                if len(src) == 1:
                    x = blocks[src[0]]
                else:
                    x = torch.cat([blocks[i] for i in src], dim=1)
                # (N, u, m) x (u, v) -> (N, v, m) as one GEMM over the N m rows (a batched matmul
                # over N would run N tiny GEMMs)
                n, u, m = x.shape[0], x.shape[1], x.shape[2]
                if m == 1:
                    y = torch.mm(x.reshape(n, u), w * self.norms[k]).unsqueeze(-1)
                else:
                    rows = x.transpose(1, 2).reshape(n * m, u)
                    y = torch.mm(rows, w * self.norms[k]).view(n, m, -1).transpose(1, 2)
                out.append(y)
        for k, bias in enumerate(self.biases):  # (TorchScript indexes a ParameterList only in a loop)
            if self.has_bias[k]:
                out[k] = out[k] + bias.unsqueeze(-1)
        return out

    def extra_repr(self) -> str:
        return f"{irreps_str(self.irreps_in)} -> {irreps_str(self.irreps_out)}"
