"""Channel-wise ("uvu") equivariant convolution, radial weights linear in a radial basis (splines) or an MLP's features.

For a receiving atom i with neighbours j (edge vector r_ij), every path p = (l1, l2 -> l3) gives

    m_i^(p)[u, m3] = n_avg^-a * sum_j w_p,u(r_ij) sum_{m1 m2} C^(p)_{m1 m2 m3} x_j^(l1)[u, m1] Y^(l2)_m2(r_ij)

with C the Wigner-3j (Clebsch-Gordan) tensor scaled by sqrt(2 l3 + 1), Y the spherical harmonics and
the radial weights linear in the spline basis b(r): w_p,u(r) = sum_k b_k(r) W_k,(p,u), W = ``radial_weight``
(with ``radial_rank`` R > 0, W = A M of rank R, A = ``radial_mix`` (K, R) and M = ``radial_weight`` (R, n):
the backend computes with the R radial functions b(r) A and the weights M, at about R/K of the
full-rank cost). With a radial
MLP (``radial_hidden``; the SevenNet port) the weights are linear in the MLP's last hidden features
h(b(r)) instead, computed per layer: w_p,u(r) = sum_k h_k(r) W_k,(p,u) / sqrt(dim h).
Paths (``conv_paths``) are kept only when their output irrep is in ``irreps_out_allowed``
(pseudo-tensors are dropped when parity is tracked; the last layer keeps only scalar outputs).

The module holds the math (paths) and the parameters (W); a backend computes the sum. Backends
are siblings behind :class:`~facetpot.nn.conv.backend.ConvolutionBackend`, registered by name in
``BACKENDS`` (``edgewise``: the reference, one message per edge; ``density``: the default, atom-
centred GEMMs). Adding one means one module and one line here.
"""

import math
from typing import Dict, List, Optional, Sequence, Tuple, Type

import torch
from torch import nn

from .conv.backend import ConvolutionBackend
from .conv.cueq import CueqBackend
from .conv.density import DensityBackend
from .conv.edgewise import EdgewiseBackend
from .conv.triton import TritonBackend
from .conv_paths import ConvolutionPaths
from .edges import EdgeData
from .frozen_cache import remembered
from .irreps import MulIrrep
from .radial_mlp import RadialMLP

#: convolution backends by name
BACKENDS: Dict[str, Type[ConvolutionBackend]] = {
    "edgewise": EdgewiseBackend,
    "density": DensityBackend,
    "triton": TritonBackend,
    "cueq": CueqBackend,
}
DEFAULT_BACKEND = "density"


def make_backend(name: str, paths: ConvolutionPaths, **options) -> ConvolutionBackend:
    if name not in BACKENDS:
        raise ValueError(f"unknown convolution backend {name!r}; known: {', '.join(sorted(BACKENDS))}")
    return BACKENDS[name](paths, **options)


class ChannelwiseConvolution(nn.Module):
    """The channel-wise convolution above, with weights linear in the spline basis (Facet) or in a radial MLP's
    last hidden features (``radial_hidden``: the SevenNet port); a backend computes the sum."""

    __jit_ignored_attributes__ = ["paths"]

    def __init__(
        self,
        irreps_in: Sequence[MulIrrep],
        sh_lmax: int,
        sh_parity: bool,
        irreps_out_allowed: Sequence[Tuple[int, int]],
        num_radial: int,
        avg_num_neighbors: float,
        neighbor_norm_exponent: float,
        radial_hidden: Optional[List[int]] = None,
        silu_norm: float = 1.0,
        radial_rank: int = 0,
    ):
        super().__init__()
        self.paths = ConvolutionPaths(irreps_in, sh_lmax, sh_parity, irreps_out_allowed)
        self.irreps_in: List[MulIrrep] = list(irreps_in)
        self.irreps_mid: List[MulIrrep] = self.paths.irreps_mid  # output irrep of every path
        self.num_radial = int(num_radial)
        self.norm = float(avg_num_neighbors) ** (-float(neighbor_norm_exponent))
        if radial_hidden:
            self.radial_mlp: Optional[RadialMLP] = RadialMLP(num_radial, radial_hidden, silu_norm)
            dim = int(radial_hidden[-1])
            # the MLP's last linear layer, normalised by its fan-in (e3nn's FullyConnectedNet)
            self.radial_weight = nn.Parameter(torch.randn(dim, self.paths.num_weights))
            self.norm /= math.sqrt(dim)
            default = "edgewise"
        else:
            self.radial_mlp = None
            default = DEFAULT_BACKEND
            if radial_rank > 0:
                # W = A M: the spline basis mixed into R radial functions (``radial_mix`` A (K, R)), whose
                # weights are ``radial_weight`` M (R, n_weights); A registered first (the optimizer's order)
                self.radial_mix = nn.Parameter(torch.randn(num_radial, int(radial_rank)) * math.sqrt(2.0))
                self.radial_weight = nn.Parameter(
                    torch.randn(int(radial_rank), self.paths.num_weights) / math.sqrt(radial_rank)
                )
            else:
                # radial weights are linear in the spline basis; var(w) ~ 1 since sum_k b_k^2 ~ 1/2
                self.radial_weight = nn.Parameter(torch.randn(num_radial, self.paths.num_weights) * math.sqrt(2.0))
        if radial_rank <= 0 or radial_hidden:
            self.register_buffer("radial_mix", torch.zeros(0), persistent=False)  # full rank: no mixing matrix
        self.radial_rank = int(radial_rank) if not radial_hidden else 0
        self.backend: ConvolutionBackend = make_backend(default, self.paths)

    def set_backend(self, name: str, **options) -> None:
        """Compute with backend ``name`` (``BACKENDS``) from now on; parameters are untouched."""
        backend = make_backend(name, self.paths, **options)
        if self.radial_mlp is not None and backend.tables_from_radial:
            raise ValueError(
                f"the {name} backend needs radial weights linear in the shared radial basis (spline "
                "models); this model has radial MLPs (a SevenNet port): use the edgewise backend"
            )
        w = self.radial_weight
        self.backend = backend.to(device=w.device, dtype=w.dtype)

    def keep_frozen_tables(self) -> None:
        """The backend keeps what it derives from these frozen weights (:meth:`ConvolutionBackend.keep_frozen`)."""
        self.backend.keep_frozen(self.radial_weight.detach() * self.norm)

    def forward(self, blocks: List[torch.Tensor], edges: EdgeData) -> List[torch.Tensor]:
        """blocks[b]: (N_send, u, 2l1+1). Returns one (N_recv, u, 2l3+1) per path; receivers are
        atoms 0..edges.num_receivers-1."""
        if self.radial_mlp is not None:
            features = self.radial_mlp(edges.radial)
            edges = edges.with_radial(features, edges.tables)
        weights = self.radial_weight
        if self.radial_rank > 0:
            # w(r) = (b(r) A) M: the backend runs with the R mixed radial functions b(r) A
            edges = self.backend.mix_radial(edges, self.radial_mix)
        if torch.jit.is_scripting():
            return self.backend(blocks, weights * self.norm, edges)
        # frozen weights: the same scaled tensor every call, so backends can remember what they derive from it
        return self.backend(blocks, self._frozen_scaled(weights), edges)

    @torch.jit.unused
    def _frozen_scaled(self, weights: torch.Tensor) -> torch.Tensor:
        return remembered(self, "scaled_weights", [weights], lambda: weights * self.norm)
