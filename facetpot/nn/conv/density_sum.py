"""The density sum of the density backend, written once (differentiable torch ops, TorchScript-compatible).

For C receiving atoms with neighbour matrix ``src`` (C, n) (padding slots point at a zero feature row), the
features of one or more input blocks side by side, x_ext (N_send + 1, F = sum_b u_b m1_b), their basis
columns rb (C, n, R) and each block's channel matrices M_b (u_b, m1_b R, cols_b):

    xn = x_ext[src]  (C, n, F)          D = xn^T rb  (C, F, R)              (neighbour gather, density GEMM)
    y_b[i, u] = D_b[i, u] M_b[u]        (C, u_b, cols_b)                     (one GEMM per channel u)

where D_b[i, u] (m1_b R) are block b's rows of D. The density backend runs it per block (trainable weights,
TorchScript), ``density_op`` per group of blocks (its oracle and double backward); ``density_op``'s Function
runs the same two steps with reused workspaces (:func:`channel_messages` is shared with it).
"""

from typing import List

import torch


def channel_messages(dens: torch.Tensor, ms: List[torch.Tensor]) -> List[torch.Tensor]:
    """y_b[u] = D_b[u] M_b[u] for the blocks whose rows make up ``dens`` (C, F, R), in order: (u_b, C, cols_b) each
    (channel-major, the layout the batched GEMM writes)."""
    c, r = dens.shape[0], dens.shape[2]
    out: List[torch.Tensor] = []
    row = 0
    for m in ms:
        u = m.shape[0]
        rows = u * (m.shape[1] // r)
        out.append(torch.bmm(dens.narrow(1, row, rows).reshape(c, u, -1).transpose(0, 1), m))
        row += rows
    return out


def density_messages(
    x_ext: torch.Tensor, src: torch.Tensor, rb: torch.Tensor, ms: List[torch.Tensor]
) -> List[torch.Tensor]:
    """Messages (C, u_b, cols_b) of every block: neighbour gather, density GEMM, channel GEMMs."""
    c, n = src.shape[0], src.shape[1]
    xn = x_ext.index_select(0, src.reshape(-1)).view(c, n, x_ext.shape[1])  # (C, n, F)
    dens = torch.bmm(xn.transpose(1, 2), rb)  # (C, F, R)
    return [y.transpose(0, 1) for y in channel_messages(dens, ms)]
