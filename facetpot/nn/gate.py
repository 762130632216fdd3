"""Gate nonlinearity (NequIP / SevenNet): SiLU on scalars, sigmoid gates on l > 0 blocks.

    [s, g, x_1..x_k] -> [silu(s), sigmoid(g_1) x_1, ..., sigmoid(g_k) x_k]

Both activations are scaled to keep a unit second moment for unit-normal inputs (as e3nn does).
"""

from typing import List

import torch
from torch import nn

# E[f(z)^2]^(-1/2) for z ~ N(0, 1), computed by quadrature
SILU_NORM = 1.6790
SIGMOID_NORM = 1.8467


class Gate(nn.Module):
    def __init__(self, gated_muls: List[int]):
        super().__init__()
        self.gated_muls = list(gated_muls)
        self.num_gates = sum(self.gated_muls)
        self.silu_norm = SILU_NORM
        self.sigmoid_norm = SIGMOID_NORM

    def forward(self, blocks: List[torch.Tensor]) -> List[torch.Tensor]:
        """blocks = [scalars (N, s, 1), gates (N, sum mul, 1) (if any), gated blocks...]."""
        out = [torch.nn.functional.silu(blocks[0]) * self.silu_norm]
        if self.num_gates > 0:
            gates = torch.sigmoid(blocks[1]) * self.sigmoid_norm
            start = 0
            for k, mul in enumerate(self.gated_muls):
                out.append(blocks[2 + k] * gates.narrow(1, start, mul))
                start += mul
        return out
