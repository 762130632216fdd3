"""Spherical-grid mixing (Facet's equivariant nonlinearity).

    y = Linear_down( [x, F . MLP( T . Lift(x) )] )

``Lift`` maps the input to U channels for every l = 0..l_max; each channel is a band-limited
function on the sphere, sampled on a quadrature grid by the fixed matrix T; one MLP (U -> H -> U)
acts on the U values at every grid point; F projects back to coefficients.

Exactness: with the default activation ``quadratic`` (the second-order Taylor polynomial of SiLU,
s(z) = z/2 + z^2/4) the grid values after the MLP are spherical polynomials of degree 2 l_max, and
the grid integrates degree 3 l_max exactly, so the layer equals its continuous counterpart and is
exactly O(3)-equivariant (float round-off only). ``silu`` reproduces the research code; then the
projection aliases and equivariance holds only to the grid's accuracy, which depends on the size
of the activations (untrained Facet-S, default 153-point grid: 4e-12 relative energy change under
rotation), a small rotation dependence of the energy.
"""

from dataclasses import dataclass
from typing import List, Sequence

import torch
from torch import nn

from .exact_buffers import ExactBuffers
from .irreps import MulIrrep, sh_parity
from .irreps_linear import IrrepsLinear
from .s2_grid import grid_matrices


def quadratic_activation(z: torch.Tensor) -> torch.Tensor:
    """s(z) = z/2 + z^2/4; eager calls take :class:`_Quadratic` (s'(z) = 1/2 + z/2 in one pass)."""
    if torch.jit.is_scripting():
        return z * (0.5 + 0.25 * z)
    return _quadratic(z)


@torch.jit.unused
def _quadratic(z: torch.Tensor) -> torch.Tensor:
    if torch.compiler.is_compiling():
        return z * (0.5 + 0.25 * z)
    return _Quadratic.apply(z)


class _Quadratic(torch.autograd.Function):
    """z/2 + z^2/4 with the backward g (1/2 + z/2): two fused multiply-adds where autograd's graph of
    z * (0.5 + 0.25 z) takes five passes. The backward is made of differentiable ops (double backward)."""

    @staticmethod
    def forward(ctx, z):
        ctx.save_for_backward(z)
        return torch.addcmul(0.5 * z, z, z, value=0.25)

    @staticmethod
    def backward(ctx, g):
        (z,) = ctx.saved_tensors
        return torch.addcmul(0.5 * g, g, z, value=0.5)


ACTIVATIONS = ("quadratic", "silu")


@dataclass(frozen=True)
class GridOptions:
    """The grid layer's size: U channels on the grid, an MLP U -> hidden -> U, its activation, and the
    quadrature degree (0: exact for ``quadratic``, 8 l_max for ``silu``)."""

    channels: int = 32
    hidden: int = 64
    activation: str = "quadratic"
    degree: int = 0


class S2GridMixing(ExactBuffers):
    def __init__(
        self,
        irreps_in: Sequence[MulIrrep],
        irreps_out: Sequence[MulIrrep],
        lmax: int,
        channels: int = 32,
        hidden: int = 64,
        activation: str = "quadratic",
        grid_degree: int = 0,
        parity: bool = True,
    ):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"grid_activation must be one of {ACTIVATIONS}, got {activation!r}")
        for mul, l, p in irreps_in:
            if p != sh_parity(l, parity):
                raise ValueError(
                    f"the grid layer needs features of spherical-harmonic parity (0e, 1o, 2e, ...); got l={l} p={p}"
                )
        self.lmax = int(lmax)
        self.channels = int(channels)
        self.activation = activation
        if grid_degree <= 0:
            grid_degree = 3 * self.lmax if activation == "quadratic" else 8 * self.lmax
        self.grid_degree = int(grid_degree)
        lifted = [(self.channels, l, sh_parity(l, parity)) for l in range(self.lmax + 1)]
        self.lift = IrrepsLinear(irreps_in, lifted)
        to_grid, from_grid = grid_matrices(self.lmax, self.grid_degree, parity)
        self.register_constant("to_grid", to_grid)
        self.register_constant("from_grid", from_grid)
        self.mlp_in = nn.Linear(self.channels, hidden)
        self.mlp_out = nn.Linear(hidden, self.channels)
        self.down = IrrepsLinear(list(irreps_in) + lifted, irreps_out, bias=True)
        #: to grid, MLP and back in one Triton kernel (``s2_grid_triton_kernels``; set with the triton backend)
        self.fused = False

    @torch.jit.unused
    def _fused_middle(self, lifted: torch.Tensor) -> torch.Tensor:
        from .s2_grid_triton_kernels import fused_grid_mlp  # lazy: needs triton, an optional dependency

        return fused_grid_mlp(
            lifted,
            self.to_grid,
            self.mlp_in.weight,
            self.mlp_in.bias,
            self.mlp_out.weight,
            self.mlp_out.bias,
            self.from_grid,
            0 if self.activation == "quadratic" else 1,
        )

    def forward(self, blocks: List[torch.Tensor]) -> List[torch.Tensor]:
        lifted = torch.cat(self.lift(blocks), dim=2)  # (N, U, d)
        if self.fused:
            coeffs = self._fused_middle(lifted)
        else:
            grid = torch.matmul(lifted, self.to_grid).transpose(1, 2)  # (N, n_grid, U)
            h = self.mlp_in(grid)
            if self.activation == "quadratic":
                h = quadratic_activation(h)
            else:
                h = torch.nn.functional.silu(h)
            grid = self.mlp_out(h).transpose(1, 2)  # (N, U, n_grid)
            coeffs = torch.matmul(grid, self.from_grid)  # (N, U, d)
        back: List[torch.Tensor] = []
        for l in range(self.lmax + 1):
            back.append(coeffs.narrow(2, l * l, 2 * l + 1))
        return self.down(blocks + back)
