"""Channel-wise ("uvu") equivariant convolution with spline radial weights.

For a receiving atom i with neighbours j (edge vector r_ij), every path p = (l1, l2 -> l3) gives

    m_i^(p)[u, m3] = n_avg^-a * sum_j w_p,u(r_ij) sum_{m1 m2} C^(p)_{m1 m2 m3} x_j^(l1)[u, m1] Y^(l2)_m2(r_ij)

with C the Wigner-3j (Clebsch-Gordan) tensor scaled by sqrt(2 l3 + 1), Y the spherical harmonics and
the radial weights linear in the spline basis b(r): w_p,u(r) = sum_k b_k(r) W_k,(p,u).

Two backends compute the same sum: ``conv_edgewise`` (the reference: one message per edge and
path, summed with ``index_add_``) and ``conv_density`` (the radial weights' linearity moves the
tensor product from edges to atoms; see there). Paths are kept only when their output irrep is in
``irreps_out_allowed`` (pseudo-tensors are dropped when parity is tracked; the last layer keeps
only scalar outputs).
"""

import math
from typing import List, Optional, Sequence, Tuple

import torch
from e3nn import o3
from torch import nn

from .conv_density import NeighborMatrix, density_messages
from .conv_edgewise import edgewise_messages
from .exact_buffers import ExactBuffers
from .irreps import Irrep


class SplineConvolution(ExactBuffers):
    def __init__(
        self,
        irreps_in: Sequence[Irrep],
        sh_lmax: int,
        sh_parity: bool,
        irreps_out_allowed: Sequence[Tuple[int, int]],
        num_radial: int,
        avg_num_neighbors: float,
        neighbor_norm_exponent: float,
    ):
        super().__init__()
        self.irreps_in = list(irreps_in)
        allowed = {(l, p) for l, p in irreps_out_allowed}
        self.irreps_mid: List[Irrep] = []  # output irrep of every path
        path_block: List[int] = []  # input block of every path
        path_l2: List[int] = []
        n_weights = 0
        cgs: List[torch.Tensor] = []
        cg_list: List[torch.Tensor] = []
        for b, (mul, l1, p1) in enumerate(self.irreps_in):
            for l2 in range(sh_lmax + 1):
                p2 = (-1) ** l2 if sh_parity else 1
                for l3 in range(abs(l1 - l2), l1 + l2 + 1):
                    p3 = p1 * p2
                    if (l3, p3) not in allowed:
                        continue
                    c = o3.wigner_3j(l1, l2, l3, dtype=torch.float64) * math.sqrt(2 * l3 + 1)
                    # Y^(l2) (E, 2l2+1) @ cg (2l2+1, (2l1+1)(2l3+1)) -> A (E, 2l1+1, 2l3+1)
                    cg = c.permute(1, 0, 2).reshape(2 * l2 + 1, (2 * l1 + 1) * (2 * l3 + 1))
                    cg_list.append(cg)
                    cgs.append(c)
                    self.irreps_mid.append((mul, l3, p3))
                    path_block.append(b)
                    path_l2.append(l2)
                    n_weights += mul
        self.path_block = path_block
        self.path_l2 = path_l2
        self.path_muls = [self.irreps_in[b][0] for b in path_block]
        self.sh_dims = [2 * l + 1 for l in range(sh_lmax + 1)]
        # density backend: per input block, the SH columns its paths use and the CG tensors of all
        # its paths side by side, CC[(m1, m2 - lo), col], with the path (within block) of every column
        self.block_paths = [sum(1 for bb in path_block if bb == b) for b in range(len(self.irreps_in))]
        self.block_wofs = [sum(self.path_muls[:path_block.index(b)]) if b in path_block else 0
                           for b in range(len(self.irreps_in))]
        self.block_l_range: List[Tuple[int, int]] = []
        self.block_path_dims: List[List[int]] = []
        cc_list: List[torch.Tensor] = []
        colpath_list: List[torch.Tensor] = []
        for b, (mul, l1, _) in enumerate(self.irreps_in):
            paths = [k for k, bb in enumerate(path_block) if bb == b]
            l2s = [path_l2[k] for k in paths] or [0]
            lo, hi = min(l2s) ** 2, (max(l2s) + 1) ** 2
            dims = [2 * self.irreps_mid[k][1] + 1 for k in paths]
            cc = torch.zeros(2 * l1 + 1, hi - lo, sum(dims), dtype=torch.float64)
            colpath: List[int] = []
            col = 0
            for local, k in enumerate(paths):
                l2, d3 = path_l2[k], dims[local]
                c = cgs[k]  # (m1, m2, m3)
                cc[:, l2 * l2 - lo : l2 * l2 - lo + 2 * l2 + 1, col : col + d3] = c
                colpath.extend([local] * d3)
                col += d3
            cc_list.append(cc.reshape((2 * l1 + 1) * (hi - lo), -1))
            colpath_list.append(torch.tensor(colpath, dtype=torch.long))
            self.block_l_range.append((min(l2s), max(l2s) + 1))
            self.block_path_dims.append(dims)
        # constants as one flat buffer each (TorchScript has no dynamic attribute names)
        self.cg_shapes = [list(c.shape) for c in cg_list]
        self.cc_shapes = [list(c.shape) for c in cc_list]
        self.colpath_sizes = [int(c.numel()) for c in colpath_list]
        self.register_constant("cg_flat", torch.cat([c.reshape(-1) for c in cg_list] or [torch.zeros(0, dtype=torch.float64)]))
        self.register_constant("cc_flat", torch.cat([c.reshape(-1) for c in cc_list]))
        self.register_constant("colpath_flat", torch.cat(colpath_list))
        self.n_weights = n_weights
        self.num_radial = int(num_radial)
        # radial weights are linear in the spline basis; var(w) ~ 1 since sum_k b_k^2 ~ 1/2
        self.radial_weight = nn.Parameter(torch.randn(num_radial, n_weights) * math.sqrt(2.0))
        self.norm = float(avg_num_neighbors) ** (-float(neighbor_norm_exponent))

    def forward(
        self,
        blocks: List[torch.Tensor],
        sh: torch.Tensor,
        radial: torch.Tensor,
        edge_dst: torch.Tensor,
        edge_src: torch.Tensor,
        num_receivers: int,
        neighbors: Optional[NeighborMatrix] = None,
        chunk_atoms: int = 0,
    ) -> List[torch.Tensor]:
        """blocks[b]: (N_send, u, 2l1+1); sh: (E, (lmax+1)^2); radial: (E, K). Returns one
        (N_recv, u, 2l3+1) per path; receivers are atoms 0..N_recv-1.

        With ``neighbors`` (a :class:`NeighborMatrix` of the same edges) the node-density backend
        runs; without, the edge-wise reference.
        """
        weights = self.radial_weight * self.norm
        if neighbors is not None and sh.shape[0] > 0:
            cc = _unflatten(self.cc_flat, self.cc_shapes)
            colpath = _unflatten(self.colpath_flat, [[n] for n in self.colpath_sizes])
            return density_messages(
                blocks, neighbors, weights, self.irreps_in, self.block_paths, self.block_wofs,
                self.block_l_range, self.block_path_dims, cc, colpath, chunk_atoms,
            )
        return edgewise_messages(
            blocks, sh, radial, edge_dst, edge_src, num_receivers, weights, self.irreps_in, self.irreps_mid,
            self.path_block, self.path_l2, self.path_muls, self.sh_dims, _unflatten(self.cg_flat, self.cg_shapes),
        )


def _unflatten(flat: torch.Tensor, shapes: List[List[int]]) -> List[torch.Tensor]:
    out: List[torch.Tensor] = []
    offset = 0
    for shape in shapes:
        n = 1
        for s in shape:
            n *= s
        out.append(flat.narrow(0, offset, n).view(shape))
        offset += n
    return out
