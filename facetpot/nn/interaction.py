"""One message-passing layer.

    x' = Nonlin( Linear_out( Conv( Linear_in(x), Y, b(r) ) ) + SelfConnection(x) )

(without Linear_in when ``linear_in=False``: a first layer whose input is a learned per-species table).

Nonlin is ``gate`` (SevenNet-style: linear self-connection + gate) or ``s2_mlp`` (Facet: the
spherical-grid mixing layer). A layer whose output is scalars only (the last one) uses SiLU.
"""

from typing import List, Optional, Sequence

import torch
from torch import nn

from .convolution import ChannelwiseConvolution
from .edges import EdgeData
from .gate import SILU_NORM, Gate
from .irreps import MulIrrep
from .irreps_linear import IrrepsLinear
from .s2_grid_mixing import GridOptions, S2GridMixing

NONLINEARITIES = ("gate", "s2_mlp")


def gate_inputs(irreps_out: Sequence[MulIrrep]) -> List[MulIrrep]:
    """What a gate producing ``irreps_out`` takes: the scalars, one gate per gated channel, the gated blocks."""
    scalars = [ir for ir in irreps_out if ir[1] == 0]
    gated = [ir for ir in irreps_out if ir[1] > 0]
    if len(scalars) != 1:
        raise ValueError("the gate needs exactly one block of 0e scalars")
    return scalars + [(sum(m for m, _, _ in gated), 0, 1)] + gated


def grid_mixing(
    pre: Sequence[MulIrrep], irreps_out: Sequence[MulIrrep], grid: GridOptions, parity: bool
) -> S2GridMixing:
    """The S2 grid layer from the pre-activation blocks ``pre`` to ``irreps_out`` (band limit: ``pre``'s)."""
    return S2GridMixing(
        list(pre),
        list(irreps_out),
        max(l for _, l, _ in pre),
        channels=grid.channels,
        hidden=grid.hidden,
        activation=grid.activation,
        grid_degree=grid.degree,
        parity=parity,
    )


class InteractionBlock(nn.Module):
    def __init__(
        self,
        irreps_in: Sequence[MulIrrep],
        irreps_out: Sequence[MulIrrep],
        sh_lmax: int,
        parity: bool,
        num_radial: int,
        avg_num_neighbors: float,
        neighbor_norm_exponent: float,
        nonlinearity: str = "s2_mlp",
        grid: GridOptions = GridOptions(),
        radial_hidden: Optional[List[int]] = None,
        gate_activation: str = "sigmoid",
        silu_norm: float = SILU_NORM,
        radial_rank: int = 0,
        self_connection_bias: bool = True,
        linear_in: bool = True,
        linear_in_bias: bool = False,
    ):
        super().__init__()
        if nonlinearity not in NONLINEARITIES:
            raise ValueError(f"nonlinearity must be one of {NONLINEARITIES}, got {nonlinearity!r}")
        self.irreps_in, self.irreps_out = list(irreps_in), list(irreps_out)
        self.scalars_only = all(l == 0 for _, l, _ in self.irreps_out)
        # linear_in=False: the convolution reads the input as it is (a first layer fed by a learned embedding);
        # linear_in_bias: a bias on its scalars (SevenNet-MF's one-hot of the fidelity, fixed at conversion)
        self.linear_in: Optional[IrrepsLinear] = (
            IrrepsLinear(self.irreps_in, self.irreps_in, bias=linear_in_bias) if linear_in else None
        )
        self.conv = ChannelwiseConvolution(
            self.irreps_in,
            sh_lmax,
            parity,
            [(l, p) for _, l, p in self.irreps_out],
            num_radial,
            avg_num_neighbors,
            neighbor_norm_exponent,
            radial_hidden,
            silu_norm,
            radial_rank,
        )
        self.mode = "silu" if self.scalars_only else nonlinearity
        self.silu_norm = float(silu_norm)
        if self.mode == "gate":
            pre = gate_inputs(self.irreps_out)
            self.gate = Gate([m for m, l, _ in self.irreps_out if l > 0], gate_activation, silu_norm)
        else:
            pre = self.irreps_out
            self.gate = None
        self.linear_out = IrrepsLinear(self.conv.irreps_mid, pre)
        self.self_connection = IrrepsLinear(self.irreps_in, pre, bias=self_connection_bias, allow_missing=True)
        self.mixing = grid_mixing(pre, self.irreps_out, grid, parity) if self.mode == "s2_mlp" else None

    def forward(self, blocks: List[torch.Tensor], edges: EdgeData) -> List[torch.Tensor]:
        """blocks: features of the N sending atoms; returns those of the receiving atoms
        0..edges.num_receivers-1 (all N of an ASE graph; the local atoms of a LAMMPS domain)."""
        num_receivers = edges.num_receivers
        mixed = blocks
        if self.linear_in is not None:
            mixed = self.linear_in(blocks)
        msg = self.linear_out(self.conv(mixed, edges))
        receivers = blocks
        if num_receivers != blocks[0].shape[0]:
            receivers = [x.narrow(0, 0, num_receivers) for x in blocks]
        sc = self.self_connection(receivers)
        y = [a + b for a, b in zip(msg, sc)]
        if self.gate is not None:
            return self.gate(y)
        if self.mixing is not None:
            return self.mixing(y)
        return [torch.nn.functional.silu(y[0]) * self.silu_norm]
