"""Edge-wise reference backend of :class:`SplineConvolution`.

    msg_e^(p) = (w^(p)(r_e) * x_j) @ A^(p)_e,   A^(p)_e = Y^(l2)(r_e) . C^(p)   (2l1+1, 2l3+1)
    m_i^(p)   = sum_{e: i receives} msg_e^(p)

Memory and traffic grow with edges x paths x channels; simple and the definition of the result.
"""
from __future__ import annotations

from typing import List

import torch


def edgewise_messages(
    conv, blocks: List[torch.Tensor], sh: torch.Tensor, radial: torch.Tensor,
    edge_dst: torch.Tensor, edge_src: torch.Tensor, num_nodes: int,
) -> List[torch.Tensor]:
    w_all = torch.matmul(radial, conv.radial_weight * conv.norm)  # (E, n_weights)
    # split (not narrow): one backward concatenation instead of a zero-filled copy per slice
    weights = torch.split(w_all, conv.path_muls, dim=1)
    sh_l = torch.split(sh, conv.sh_dims, dim=1)
    num_edges = sh.shape[0]
    gathered = [x.index_select(0, edge_src) for x in blocks]  # (E, u, 2l1+1)
    out: List[torch.Tensor] = []
    for k, (b, l2) in enumerate(zip(conv.path_block, conv.path_l2)):
        mul, l1, _ = conv.irreps_in[b]
        l3 = conv.irreps_mid[k][1]
        xw = gathered[b] * weights[k].unsqueeze(-1)  # (E, u, 2l1+1)
        if l1 == 0:  # C^(0, l2 -> l2) is the identity: an outer product
            a = sh_l[l2].unsqueeze(1)
        else:
            a = torch.matmul(sh_l[l2], getattr(conv, f"cg_{k}")).view(num_edges, 2 * l1 + 1, 2 * l3 + 1)
        msg = torch.bmm(xw, a)
        agg = torch.zeros(num_nodes, mul, 2 * l3 + 1, dtype=msg.dtype, device=msg.device)
        out.append(agg.index_add_(0, edge_dst, msg))
    return out
