"""Edge-wise backend (the reference): one message per edge and path, summed with ``index_add_``.

    msg_e^(p) = (w^(p)(r_e) * x_j) @ A^(p)_e,   A^(p)_e = Y^(l2)(r_e) . C^(p)   (2l1+1, 2l3+1)
    m_i^(p)   = sum_{e: i receives} msg_e^(p)

Memory and traffic grow with edges x paths x channels; simple and the definition of the result.
TorchScript-compatible, and free of data-dependent shapes (the backend ``torch.export`` uses).
"""

from typing import List

import torch

from .backend import ConvolutionBackend
from ..conv_paths import ConvolutionPaths
from ..edges import EdgeData
from ..flat_constants import unflatten


class EdgewiseBackend(ConvolutionBackend):
    name = "edgewise"

    def __init__(self, paths: ConvolutionPaths):
        super().__init__(paths)
        self.path_block = [p.block for p in paths.paths]
        self.path_l2 = [p.l2 for p in paths.paths]
        self.path_muls = [p.mul for p in paths.paths]
        self.sh_dims = [2 * l + 1 for l in range(paths.sh_lmax + 1)]
        # Y^(l2) (E, 2l2+1) @ cg (2l2+1, (2l1+1)(2l3+1)) -> A (E, 2l1+1, 2l3+1)
        cg = [c.permute(1, 0, 2).reshape(c.shape[1], c.shape[0] * c.shape[2]) for c in paths.cg]
        self.cg_shapes = [list(c.shape) for c in cg]
        self.register_constant(
            "cg_flat", torch.cat([c.reshape(-1) for c in cg] or [torch.zeros(0, dtype=torch.float64)])
        )

    def forward(self, blocks: List[torch.Tensor], weights: torch.Tensor, edges: EdgeData) -> List[torch.Tensor]:
        cg = unflatten(self.cg_flat, self.cg_shapes)
        w_all = torch.matmul(edges.radial, weights)  # (E, n_weights)
        # split (not narrow): one backward concatenation instead of a zero-filled copy per slice
        w_paths = torch.split(w_all, self.path_muls, dim=1)
        sh_l = torch.split(edges.sh, self.sh_dims, dim=1)
        num_edges = edges.sh.shape[0]
        gathered = [x.index_select(0, edges.senders) for x in blocks]  # (E, u, 2l1+1)
        out: List[torch.Tensor] = []
        for k in range(len(self.path_block)):
            b, l2 = self.path_block[k], self.path_l2[k]
            mul, l1 = self.irreps_in[b][0], self.irreps_in[b][1]
            l3 = self.irreps_mid[k][1]
            xw = gathered[b] * w_paths[k].unsqueeze(-1)  # (E, u, 2l1+1)
            if l1 == 0:  # C^(0, l2 -> l2) is the identity: an outer product
                a = sh_l[l2].unsqueeze(1)
            else:
                a = torch.matmul(sh_l[l2], cg[k]).view(num_edges, 2 * l1 + 1, 2 * l3 + 1)
            msg = torch.bmm(xw, a)
            agg = torch.zeros(edges.num_receivers, mul, 2 * l3 + 1, dtype=msg.dtype, device=msg.device)
            out.append(agg.index_add_(0, edges.receivers, msg))
        return out
