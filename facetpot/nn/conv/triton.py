"""Triton backend: each input block's convolution as one fused kernel (``facetpot::fused_conv_block``).

Per receiving atom and tile of channels, the kernel walks the atom's edges (receiver order, from a
CSR table built once per graph in :meth:`TritonBackend.prepare`), evaluates the radial weights
w = b(r) W and the channel-wise products with the spherical harmonics in registers, and accumulates:

    m_i[u, c] = sum_{e: i receives} (sum_k b_k(r_e) W[k, u, c]) (sum_{m1 m2} x_j[u, m1] Y_m2(r_e) CC[(m1 m2), c])

with CC the CG tensors of the block's paths side by side (:meth:`ConvolutionPaths.block_coupling`),
so no per-edge message, per-edge weight or padded neighbour tensor is written to global memory.
Forces and stress (the first backward pass) run as two more kernels (receiver order for the
per-edge gradients, sender order for the features' gradient); the weights' gradient and second
derivatives (training on forces) use the same sums in torch (see ``triton_kernels``).

Needs ``triton`` and CUDA tensors; on the CPU it runs only under ``TRITON_INTERPRET=1`` (the tests).
Eager and ``torch.compile``; the TorchScript and LAMMPS exports use the density or edgewise backend.
"""

import os
from typing import List

import torch

from .backend import ConvolutionBackend
from ..conv_paths import ConvolutionPaths, expand_block_weights
from ..edges import EdgeData


def _kernels():
    try:
        from . import triton_kernels  # lazy: needs triton, an optional dependency
    except ImportError as exc:
        raise ImportError(
            "the triton convolution backend needs the triton package (pip install triton; it comes "
            f"with CUDA builds of torch): {exc}"
        ) from exc
    return triton_kernels


class TritonBackend(ConvolutionBackend):
    name = "triton"
    scriptable = False

    def __init__(self, paths: ConvolutionPaths):
        super().__init__(paths)
        _kernels()  # fail here, with the message, when triton is missing
        for b in range(len(self.irreps_in)):
            cc, colpath = paths.block_coupling(b)
            self.register_constant(f"cc_{b}", cc)
            self.register_constant(f"colpath_{b}", torch.tensor(colpath, dtype=torch.long))

    def prepare(self, edges: EdgeData) -> List[torch.Tensor]:
        """[perm_r, rowptr, perm_s, sendptr]: the edges in receiver order and in sender order."""
        return _kernels().csr_tables(edges.receivers, edges.senders, edges.num_receivers, edges.num_senders)

    def mix_radial(self, edges: EdgeData, mix: torch.Tensor) -> EdgeData:
        """b(r) -> b(r) ``mix``; the CSR tables do not depend on the basis and are kept."""
        return edges.with_radial(torch.matmul(edges.radial, mix), edges.tables)

    def forward(self, blocks: List[torch.Tensor], weights: torch.Tensor, edges: EdgeData) -> List[torch.Tensor]:
        if not edges.sh.is_cuda and os.environ.get("TRITON_INTERPRET", "0") != "1":
            raise RuntimeError(
                "the triton backend runs on CUDA tensors (on the CPU only under TRITON_INTERPRET=1, "
                "for testing): use model.set_backend('density') on the CPU"
            )
        perm_r, rowptr, perm_s, sendptr = edges.tables
        out: List[torch.Tensor] = []
        for b, x in enumerate(blocks):
            n_paths = self.block_num_paths[b]
            if n_paths == 0:
                continue
            wx = expand_block_weights(
                weights, self.block_weight_offset[b], n_paths, self.irreps_in[b][0], getattr(self, f"colpath_{b}")
            ).contiguous()
            l_lo, l_hi = self.block_l2_range[b]  # the block reads Y's columns l_lo^2 .. l_hi^2 - 1
            y = _kernels().fused_conv_block(
                x.contiguous(),
                edges.sh,
                edges.radial,
                wx,
                getattr(self, f"cc_{b}"),
                edges.senders,
                edges.receivers,
                perm_r,
                rowptr,
                perm_s,
                sendptr,
                l_lo * l_lo,
                l_hi * l_hi - l_lo * l_lo,
            )
            out.extend(torch.split(y, self.block_path_dims[b], dim=2))
        return out
