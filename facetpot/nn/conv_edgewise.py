"""Edge-wise reference backend of :class:`SplineConvolution`.

    msg_e^(p) = (w^(p)(r_e) * x_j) @ A^(p)_e,   A^(p)_e = Y^(l2)(r_e) . C^(p)   (2l1+1, 2l3+1)
    m_i^(p)   = sum_{e: i receives} msg_e^(p)

Memory and traffic grow with edges x paths x channels; simple and the definition of the result.
TorchScript-compatible, and free of data-dependent shapes (the backend ``torch.export`` uses).
"""

from typing import List, Tuple

import torch


def edgewise_messages(
    blocks: List[torch.Tensor],
    sh: torch.Tensor,
    radial: torch.Tensor,
    edge_dst: torch.Tensor,
    edge_src: torch.Tensor,
    num_receivers: int,
    weights: torch.Tensor,
    irreps_in: List[Tuple[int, int, int]],
    irreps_mid: List[Tuple[int, int, int]],
    path_block: List[int],
    path_l2: List[int],
    path_muls: List[int],
    sh_dims: List[int],
    cg: List[torch.Tensor],
) -> List[torch.Tensor]:
    """Messages of every path; ``weights`` = W (K, n_weights), normalised; ``cg[k]``: (2l2+1, (2l1+1)(2l3+1))."""
    w_all = torch.matmul(radial, weights)  # (E, n_weights)
    # split (not narrow): one backward concatenation instead of a zero-filled copy per slice
    w_paths = torch.split(w_all, path_muls, dim=1)
    sh_l = torch.split(sh, sh_dims, dim=1)
    num_edges = sh.shape[0]
    gathered = [x.index_select(0, edge_src) for x in blocks]  # (E, u, 2l1+1)
    out: List[torch.Tensor] = []
    for k in range(len(path_block)):
        b, l2 = path_block[k], path_l2[k]
        mul, l1 = irreps_in[b][0], irreps_in[b][1]
        l3 = irreps_mid[k][1]
        xw = gathered[b] * w_paths[k].unsqueeze(-1)  # (E, u, 2l1+1)
        if l1 == 0:  # C^(0, l2 -> l2) is the identity: an outer product
            a = sh_l[l2].unsqueeze(1)
        else:
            a = torch.matmul(sh_l[l2], cg[k]).view(num_edges, 2 * l1 + 1, 2 * l3 + 1)
        msg = torch.bmm(xw, a)
        agg = torch.zeros(num_receivers, mul, 2 * l3 + 1, dtype=msg.dtype, device=msg.device)
        out.append(agg.index_add_(0, edge_dst, msg))
    return out
