"""Gate nonlinearity (NequIP / SevenNet): SiLU on scalars, activated gates on l > 0 blocks.

    [s, g, x_1..x_k] -> [c silu(s), c_g a(g_1) x_1, ..., c_g a(g_k) x_k]

with a = sigmoid (facetpot's default) or silu (SevenNet). Both activations are scaled to keep a unit
second moment for unit-normal inputs (as e3nn does); the SiLU constant c is a model option, since
e3nn estimates it by sampling (1.67918 in e3nn 0.6) and a port must use the same number.
"""

from typing import List

import torch
from torch import nn

# E[f(z)^2]^(-1/2) for z ~ N(0, 1)
SILU_NORM = 1.6790
SIGMOID_NORM = 1.8467
GATE_ACTIVATIONS = ("sigmoid", "silu")


class Gate(nn.Module):
    def __init__(self, gated_muls: List[int], activation: str = "sigmoid", silu_norm: float = SILU_NORM):
        super().__init__()
        if activation not in GATE_ACTIVATIONS:
            raise ValueError(f"gate_activation must be one of {GATE_ACTIVATIONS}, got {activation!r}")
        self.gated_muls = list(gated_muls)
        self.num_gates = sum(self.gated_muls)
        self.activation = activation
        self.silu_norm = float(silu_norm)
        self.sigmoid_norm = SIGMOID_NORM

    def forward(self, blocks: List[torch.Tensor]) -> List[torch.Tensor]:
        """blocks = [scalars (N, s, 1), gates (N, sum mul, 1) (if any), gated blocks...]."""
        out = [torch.nn.functional.silu(blocks[0]) * self.silu_norm]
        if self.num_gates > 0:
            if self.activation == "silu":
                gates = torch.nn.functional.silu(blocks[1]) * self.silu_norm
            else:
                gates = torch.sigmoid(blocks[1]) * self.sigmoid_norm
            start = 0
            for k, mul in enumerate(self.gated_muls):
                out.append(blocks[2 + k] * gates.narrow(1, start, mul))
                start += mul
        return out
