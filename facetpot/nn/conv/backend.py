"""What a convolution backend is: one way to compute the messages of :class:`ChannelwiseConvolution`.

Every backend computes, for each path p = (b, l2 -> l3) of a :class:`ConvolutionPaths`,

    m_i^(p)[u, m3] = sum_{e: i receives} w_p,u(r_e) sum_{m1 m2} C^(p)_{m1 m2 m3} x_{j(e)}^(b)[u, m1] Y^(l2)_m2(r_e)

with radial weights w_p,u(r) = sum_k b_k(r) W[k, offset_p + u] linear in the spline basis.
A backend

* is built from the paths and owns the constant tables it derives from them (float64 masters,
  see :class:`ExactBuffers`), plus its own options;
* may precompute per-graph tables once in :meth:`prepare` (stored in ``EdgeData.tables`` and
  shared by all layers, which run the same backend);
* computes the messages in :meth:`forward`: ``blocks[b]`` (N_send, mul_b, 2l1+1), ``weights`` W
  (K, num_weights), ``edges`` -> one (N_recv, mul, 2l3+1) tensor per path;
* for a layer of rank R (W = A M, ``radial_rank``), :meth:`mix_radial` turns the edges' basis b(r) (and
  the tables built from it) into b(r) A, so that :meth:`forward` runs with R radial functions and
  weights M (R, num_weights): the same sum, w(r) = (b(r) A) M, at R/K of the cost.

Backends are siblings registered by name in ``convolution.BACKENDS``; ``edgewise`` is the reference.
"""

from typing import List

import torch

from ..conv_paths import ConvolutionPaths
from ..edges import EdgeData
from ..exact_buffers import ExactBuffers


class ConvolutionBackend(ExactBuffers):
    #: the name the registry and ``FacetModel.set_backend`` know it by
    name: str = ""
    #: True when :meth:`prepare` builds tables from ``edges.radial``: every layer must then read that
    #: shared basis as is, which a convolution with a radial MLP (per-layer features) does not
    tables_from_radial: bool = False
    #: False for backends that call kernels TorchScript cannot script (Triton, cuEquivariance): the
    #: TorchScript/LAMMPS export then computes with the default backend (same numbers)
    scriptable: bool = True

    def __init__(self, paths: ConvolutionPaths):
        super().__init__()
        self.irreps_in = [(int(m), int(l), int(p)) for m, l, p in paths.irreps_in]
        self.irreps_mid = [(int(m), int(l), int(p)) for m, l, p in paths.irreps_mid]
        # the block layout of :attr:`ConvolutionPaths.blocks` as plain int lists (TorchScript reads these),
        # for backends that sum one input block at once
        self.block_num_paths: List[int] = [layout.num_paths for layout in paths.blocks]
        self.block_weight_offset: List[int] = [layout.weight_offset for layout in paths.blocks]
        self.block_path_dims: List[List[int]] = [list(layout.path_dims) for layout in paths.blocks]
        self.block_l2_range: List[List[int]] = [[layout.l2_lo, layout.l2_hi] for layout in paths.blocks]

    def prepare(self, edges: EdgeData) -> List[torch.Tensor]:
        """Per-graph tables, computed once and shared by every layer (none by default)."""
        return []

    def mix_radial(self, edges: EdgeData, mix: torch.Tensor) -> EdgeData:
        """``edges`` with the radial basis b(r) (E, K) replaced by b(r) ``mix`` (E, R), tables included
        (by default rebuilt with :meth:`prepare`)."""
        mixed = edges.with_radial(torch.matmul(edges.radial, mix), edges.tables)
        return mixed.with_radial(mixed.radial, self.prepare(mixed))

    def keep_frozen(self, weights: torch.Tensor) -> None:
        """Keep in the module what :meth:`forward` derives from these frozen ``weights`` alone, for scripted
        calls (an export); nothing by default."""

    def forward(self, blocks: List[torch.Tensor], weights: torch.Tensor, edges: EdgeData) -> List[torch.Tensor]:
        raise NotImplementedError
