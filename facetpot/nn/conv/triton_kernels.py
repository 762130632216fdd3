"""Triton kernels of the fused convolution, one input block at a time, and the custom op around them.

For input block x (N_send, u, m1) and the block's coupling table CC[(m1, m2), c] (the CG tensors of
all its paths side by side, ``c`` running over the output columns of every path), every receiver i
sums over its edges e = (i <- j), in registers,

    out[i, u, c] = sum_e  w_e[u, c] * z_e[u, c]
    w_e[u, c]    = sum_k b_k(r_e) Wx[k, u, c]                 (radial weights, Wx = W expanded to columns)
    z_e[u, c]    = sum_{m1 m2} x_j[u, m1] Y_m2(r_e) CC[(m1 m2), c]

so that no per-edge message and no padded per-neighbour tensor ever lives in global memory. Edges
are visited in receiver order (CSR ``rowptr``, a permutation of the edges): a deterministic segment
sum, no atomics. The gradients, for G = d loss / d out:

    dx[j, u, m1] = sum_{e: j sends} sum_m2 Y_m2(r_e) sum_c (G_i w_e)[u, c] CC[(m1 m2), c]   (sender order)
    dY[e, m2]    = sum_{u m1} x_j[u, m1] sum_c (G_i w_e)[u, c] CC[(m1 m2), c]               (per edge)
    db[e, k]     = sum_{u c} Wx[k, u, c] (G_i z_e)[u, c]                                     (per edge)
    dWx[k, u, c] = sum_e b_k(r_e) (G_i z_e)[u, c]                                           (torch, chunked)

The first three are Triton kernels; dWx (needed only when training) is a chunked torch sum, and
every second derivative (training on forces) comes from the same formulas written in torch
(:func:`backward_in_torch`); the forward in torch, the tests' oracle, is ``facetpot.testing.conv_block_oracle``.
Everything runs on CUDA tensors, or on CPU tensors under
``TRITON_INTERPRET=1`` (how CI tests the kernels).
"""
from __future__ import annotations

from typing import List, Tuple

import torch
import triton
import triton.language as tl


def _pow2(n: int, lo: int = 1) -> int:
    return max(lo, triton.next_power_of_2(max(int(n), 1)))


@triton.jit
def _coupling(cc_ptr, M1: tl.constexpr, D2: tl.constexpr, C: tl.constexpr, M1P: tl.constexpr, D2P: tl.constexpr,
              CP: tl.constexpr):
    """CC padded to ((M1P D2P), CP), row a = m1 D2P + m2."""
    a = tl.arange(0, M1P * D2P)
    am1 = a // D2P
    am2 = a % D2P
    c = tl.arange(0, CP)
    mask = ((am1 < M1) & (am2 < D2))[:, None] & (c < C)[None, :]
    return tl.load(cc_ptr + (am1 * D2 + am2)[:, None] * C + c[None, :], mask=mask, other=0.0)


@triton.jit
def _edge_terms(e, j, x_ptr, sh_ptr, rad_ptr, wx_ptr, cc, offs_u, mask_u,
                U: tl.constexpr, M1: tl.constexpr, D2: tl.constexpr, SH_DIM: tl.constexpr, SH_LO: tl.constexpr,
                K: tl.constexpr, C: tl.constexpr, BU: tl.constexpr, M1P: tl.constexpr, D2P: tl.constexpr,
                CP: tl.constexpr, NEED_Z: tl.constexpr):
    """(x_j (BU, M1P), Y_e (D2P), w_e (BU, CP), z_e (BU, CP) or 0) of edge e from sender j."""
    m1 = tl.arange(0, M1P)
    m2 = tl.arange(0, D2P)
    c = tl.arange(0, CP)
    xj = tl.load(x_ptr + j * (U * M1) + offs_u[:, None] * M1 + m1[None, :],
                 mask=mask_u[:, None] & (m1 < M1)[None, :], other=0.0)
    y = tl.load(sh_ptr + e * SH_DIM + SH_LO + m2, mask=m2 < D2, other=0.0)
    wmask = mask_u[:, None] & (c < C)[None, :]
    w = tl.zeros((BU, CP), dtype=xj.dtype)
    for k in tl.static_range(K):
        bk = tl.load(rad_ptr + e * K + k)
        w += bk * tl.load(wx_ptr + k * (U * C) + offs_u[:, None] * C + c[None, :], mask=wmask, other=0.0)
    if NEED_Z:
        t = tl.reshape(xj[:, :, None] * y[None, None, :], (BU, M1P * D2P))
        z = tl.dot(t, cc, input_precision="ieee")
    else:
        z = w
    return xj, y, w, z


@triton.jit
def _conv_fwd_kernel(x_ptr, sh_ptr, rad_ptr, wx_ptr, cc_ptr, snd_ptr, perm_ptr, rowptr_ptr, out_ptr,
                     U: tl.constexpr, M1: tl.constexpr, D2: tl.constexpr, SH_DIM: tl.constexpr,
                     SH_LO: tl.constexpr, K: tl.constexpr, C: tl.constexpr, BU: tl.constexpr,
                     M1P: tl.constexpr, D2P: tl.constexpr, CP: tl.constexpr):
    i = tl.program_id(0).to(tl.int64)
    offs_u = tl.program_id(1) * BU + tl.arange(0, BU)
    mask_u = offs_u < U
    c = tl.arange(0, CP)
    cc = _coupling(cc_ptr, M1, D2, C, M1P, D2P, CP)
    acc = tl.zeros((BU, CP), dtype=cc.dtype)
    start = tl.load(rowptr_ptr + i)
    end = tl.load(rowptr_ptr + i + 1)
    for t in range(start, end):
        e = tl.load(perm_ptr + t)
        j = tl.load(snd_ptr + e)
        xj, y, w, z = _edge_terms(e, j, x_ptr, sh_ptr, rad_ptr, wx_ptr, cc, offs_u, mask_u,
                                  U, M1, D2, SH_DIM, SH_LO, K, C, BU, M1P, D2P, CP, True)
        acc += w * z
    tl.store(out_ptr + i * (U * C) + offs_u[:, None] * C + c[None, :], acc,
             mask=mask_u[:, None] & (c < C)[None, :])


@triton.jit
def _conv_bwd_edge_kernel(g_ptr, x_ptr, sh_ptr, rad_ptr, wx_ptr, cc_ptr, snd_ptr, perm_ptr, rowptr_ptr,
                          gy_ptr, gb_ptr, E,
                          U: tl.constexpr, M1: tl.constexpr, D2: tl.constexpr, SH_DIM: tl.constexpr,
                          SH_LO: tl.constexpr, K: tl.constexpr, C: tl.constexpr, BU: tl.constexpr,
                          M1P: tl.constexpr, D2P: tl.constexpr, CP: tl.constexpr):
    """Per edge of receiver i, this channel tile's parts of dY (D2) and db (K)."""
    i = tl.program_id(0).to(tl.int64)
    tile = tl.program_id(1)
    offs_u = tile * BU + tl.arange(0, BU)
    mask_u = offs_u < U
    c = tl.arange(0, CP)
    m2 = tl.arange(0, D2P)
    cc = _coupling(cc_ptr, M1, D2, C, M1P, D2P, CP)
    g = tl.load(g_ptr + i * (U * C) + offs_u[:, None] * C + c[None, :], mask=mask_u[:, None] & (c < C)[None, :],
                other=0.0)
    start = tl.load(rowptr_ptr + i)
    end = tl.load(rowptr_ptr + i + 1)
    for t in range(start, end):
        e = tl.load(perm_ptr + t)
        j = tl.load(snd_ptr + e)
        xj, y, w, z = _edge_terms(e, j, x_ptr, sh_ptr, rad_ptr, wx_ptr, cc, offs_u, mask_u,
                                  U, M1, D2, SH_DIM, SH_LO, K, C, BU, M1P, D2P, CP, True)
        gz = g * z
        for k in tl.static_range(K):
            wk = tl.load(wx_ptr + k * (U * C) + offs_u[:, None] * C + c[None, :],
                         mask=mask_u[:, None] & (c < C)[None, :], other=0.0)
            tl.store(gb_ptr + (tile * E + e) * K + k, tl.sum(tl.sum(wk * gz, axis=1), axis=0))
        s = tl.dot(g * w, tl.trans(cc), input_precision="ieee")  # (BU, M1P D2P)
        s3 = tl.reshape(s, (BU, M1P, D2P))
        gy = tl.sum(tl.sum(s3 * xj[:, :, None], axis=1), axis=0)  # (D2P,)
        tl.store(gy_ptr + (tile * E + e) * D2 + m2, gy, mask=m2 < D2)


@triton.jit
def _conv_bwd_x_kernel(g_ptr, sh_ptr, rad_ptr, wx_ptr, cc_ptr, rcv_ptr, perm_ptr, sendptr_ptr, gx_ptr,
                       U: tl.constexpr, M1: tl.constexpr, D2: tl.constexpr, SH_DIM: tl.constexpr,
                       SH_LO: tl.constexpr, K: tl.constexpr, C: tl.constexpr, BU: tl.constexpr,
                       M1P: tl.constexpr, D2P: tl.constexpr, CP: tl.constexpr):
    """dx of sender j: a segment sum over the edges j sends (sender order)."""
    j = tl.program_id(0).to(tl.int64)
    offs_u = tl.program_id(1) * BU + tl.arange(0, BU)
    mask_u = offs_u < U
    c = tl.arange(0, CP)
    m1 = tl.arange(0, M1P)
    m2 = tl.arange(0, D2P)
    cct = tl.trans(_coupling(cc_ptr, M1, D2, C, M1P, D2P, CP))
    acc = tl.zeros((BU, M1P), dtype=cct.dtype)
    start = tl.load(sendptr_ptr + j)
    end = tl.load(sendptr_ptr + j + 1)
    for t in range(start, end):
        e = tl.load(perm_ptr + t)
        i = tl.load(rcv_ptr + e)
        y = tl.load(sh_ptr + e * SH_DIM + SH_LO + m2, mask=m2 < D2, other=0.0)
        w = tl.zeros((BU, CP), dtype=cct.dtype)
        for k in tl.static_range(K):
            bk = tl.load(rad_ptr + e * K + k)
            w += bk * tl.load(wx_ptr + k * (U * C) + offs_u[:, None] * C + c[None, :],
                              mask=mask_u[:, None] & (c < C)[None, :], other=0.0)
        g = tl.load(g_ptr + i * (U * C) + offs_u[:, None] * C + c[None, :], mask=mask_u[:, None] & (c < C)[None, :],
                    other=0.0)
        s3 = tl.reshape(tl.dot(g * w, cct, input_precision="ieee"), (BU, M1P, D2P))
        acc += tl.sum(s3 * y[None, None, :], axis=2)
    tl.store(gx_ptr + j * (U * M1) + offs_u[:, None] * M1 + m1[None, :], acc,
             mask=mask_u[:, None] & (m1 < M1)[None, :])


# --------------------------------------------------------------------------------------- launchers
def _meta(x: torch.Tensor, sh: torch.Tensor, radial: torch.Tensor, wx: torch.Tensor, sh_lo: int, d2: int,
          backward: bool = False):
    mul, m1 = x.shape[1], x.shape[2]
    k, c = radial.shape[1], wx.shape[2]
    # tl.dot wants every dimension >= 16 on a GPU; padded rows and columns are masked zeros
    d2p = _pow2(d2)
    m1p = _pow2(m1)
    if m1p * d2p < 16:
        d2p = 16 // m1p
    cp = _pow2(c, 16)
    # per edge a program holds a (BU, M1P D2P) tile and three (BU, CP) ones; at BU = 32 the backward spilled
    # registers on sm_80/sm_90 above 4096 such values (Facet-S's l=2 block: 32 x (128 + 48); facet-7net0-
    # spline's l=1 block: 32 x (64 + 96)) and the forward above 6144 (facet-7net-l3i5-spline's l=1 block:
    # 32 x (64 + 192)) (tests/nn/test_triton_compile.py), so such blocks take 16 channels per program
    # (tl.dot needs BU >= 16); where 16 channels are still too many (facet-7net-l3i5-spline's l=3 block,
    # 16 x (128 + 192)), the program gets 8 warps, twice the registers.
    # The compiler also hoists the K radial weight tiles (BU, CP) out of the edge loop (they do not depend
    # on the edge): with K = 23 (the refitted facet-7net-l3i5-spline) that is 23 x 16 x 64 values, and the
    # l=1..3 blocks spilled 8-24 B on sm_80/sm_90 at 4 warps (forward: 216 and 224 such values per thread;
    # backward: 124 and 216) until the count below took them in (facet-7net0-spline's l=1 forward holds
    # 168 per thread and does not spill); above it, the program gets 8 warps
    limit = 4096 if backward else 6144
    per_thread = 112 if backward else 192
    values = 32 * (m1p * d2p + 3 * cp)
    bu = min(16 if values > limit else 32, _pow2(mul, 16))
    tiles_held = bu * (m1p * d2p + 3 * cp)
    warps = 8 if tiles_held > limit or tiles_held + k * bu * cp > per_thread * 128 else 4
    return dict(U=mul, M1=m1, D2=d2, SH_DIM=sh.shape[1], SH_LO=sh_lo, K=k, C=c, BU=bu, M1P=m1p, D2P=d2p,
                CP=cp, num_warps=warps), triton.cdiv(mul, bu)


def conv_forward(x, sh, radial, wx, cc, senders, perm_r, rowptr, sh_lo: int, d2: int) -> torch.Tensor:
    meta, tiles = _meta(x, sh, radial, wx, sh_lo, d2)
    n_recv = rowptr.shape[0] - 1
    out = x.new_empty(n_recv, x.shape[1], wx.shape[2])
    if n_recv > 0:
        _conv_fwd_kernel[(n_recv, tiles)](x, sh, radial, wx, cc, senders, perm_r, rowptr, out, **meta)
    return out


def conv_backward(g, x, sh, radial, wx, cc, senders, receivers, perm_r, rowptr, perm_s, sendptr, sh_lo: int,
                  d2: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(dx, dY (E, SH_DIM), db (E, K)) for G = ``g``."""
    meta, tiles = _meta(x, sh, radial, wx, sh_lo, d2, backward=True)
    n_recv, n_send, n_edges = rowptr.shape[0] - 1, sendptr.shape[0] - 1, sh.shape[0]
    g = g.contiguous()
    gx = torch.zeros_like(x)
    gy_part = x.new_zeros(tiles, n_edges, d2)
    gb_part = x.new_zeros(tiles, n_edges, radial.shape[1])
    if n_recv > 0 and n_edges > 0:
        _conv_bwd_edge_kernel[(n_recv, tiles)](g, x, sh, radial, wx, cc, senders, perm_r, rowptr, gy_part, gb_part,
                                               n_edges, **meta)
    if n_send > 0 and n_edges > 0:
        _conv_bwd_x_kernel[(n_send, tiles)](g, sh, radial, wx, cc, receivers, perm_s, sendptr, gx, **meta)
    gy = sh.new_zeros(sh.shape)
    gy[:, sh_lo : sh_lo + d2] = gy_part.sum(0)
    return gx, gy, gb_part.sum(0)


# ------------------------------------------------------------------------------ torch reference
def backward_in_torch(g, x, sh, radial, wx, cc, senders, receivers, sh_lo: int, d2: int):
    """(dx, dY, db, dWx) of the module docstring in torch, differentiable in g and the inputs (per-edge
    intermediates (E, u, cols): the training path, not the fast one)."""
    m1 = x.shape[2]
    cc3 = cc.view(m1, d2, -1)
    xs = x.index_select(0, senders)
    y = sh[:, sh_lo : sh_lo + d2]
    gi = g.index_select(0, receivers)
    q = gi * torch.einsum("ek,kuc->euc", radial, wx)
    gz = gi * torch.einsum("eum,ed,mdc->euc", xs, y, cc3)
    gx = torch.zeros_like(x).index_add(0, senders, torch.einsum("euc,mdc,ed->eum", q, cc3, y))
    gy_cols = torch.einsum("euc,mdc,eum->ed", q, cc3, xs)
    gy = torch.cat([sh.new_zeros(sh.shape[0], sh_lo), gy_cols, sh.new_zeros(sh.shape[0], sh.shape[1] - sh_lo - d2)], 1)
    return gx, gy, torch.einsum("euc,kuc->ek", gz, wx), torch.einsum("ek,euc->kuc", radial, gz)


def _wx_grad(g, x, sh, radial, cc, senders, receivers, sh_lo: int, d2: int, chunk: int = 65536) -> torch.Tensor:
    """dWx[k, u, c] = sum_e b_k(r_e) (G_i z_e)[u, c], over chunks of edges (per-edge z lives per chunk only)."""
    m1 = x.shape[2]
    cc3 = cc.view(m1, d2, -1)
    out = x.new_zeros(radial.shape[1], x.shape[1], cc.shape[1])
    for s in range(0, sh.shape[0], chunk):
        snd, rcv = senders[s : s + chunk], receivers[s : s + chunk]
        z = torch.einsum("eum,ed,mdc->euc", x.index_select(0, snd), sh[s : s + chunk, sh_lo : sh_lo + d2], cc3)
        out += torch.einsum("ek,euc->kuc", radial[s : s + chunk], g.index_select(0, rcv) * z)
    return out


# --------------------------------------------------------------------------------------- custom op
@torch.library.custom_op("facetpot::fused_conv_block", mutates_args=())
def fused_conv_block(x: torch.Tensor, sh: torch.Tensor, radial: torch.Tensor, wx: torch.Tensor, cc: torch.Tensor,
                     senders: torch.Tensor, receivers: torch.Tensor, perm_r: torch.Tensor, rowptr: torch.Tensor,
                     perm_s: torch.Tensor, sendptr: torch.Tensor, sh_lo: int, d2: int) -> torch.Tensor:
    """out (N_recv, u, cols) of one input block (see the module docstring); N_recv = len(rowptr) - 1."""
    return conv_forward(x.contiguous(), sh.contiguous(), radial.contiguous(), wx.contiguous(), cc.contiguous(),
                        senders, perm_r, rowptr, sh_lo, d2)


@fused_conv_block.register_fake
def _(x, sh, radial, wx, cc, senders, receivers, perm_r, rowptr, perm_s, sendptr, sh_lo, d2):
    return x.new_empty(rowptr.shape[0] - 1, x.shape[1], wx.shape[2])


@torch.library.custom_op("facetpot::fused_conv_block_backward", mutates_args=())
def fused_conv_block_backward(g: torch.Tensor, x: torch.Tensor, sh: torch.Tensor, radial: torch.Tensor,
                              wx: torch.Tensor, cc: torch.Tensor, senders: torch.Tensor, receivers: torch.Tensor,
                              perm_r: torch.Tensor, rowptr: torch.Tensor, perm_s: torch.Tensor, sendptr: torch.Tensor,
                              sh_lo: int, d2: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(dx, dY, db) of :func:`conv_backward` as an op of its own, so that compiled and exported graphs
    (which trace the backward) see an opaque kernel call rather than Triton's launch."""
    return conv_backward(g, x.contiguous(), sh.contiguous(), radial.contiguous(), wx.contiguous(), cc.contiguous(),
                         senders, receivers, perm_r, rowptr, perm_s, sendptr, sh_lo, d2)


@fused_conv_block_backward.register_fake
def _(g, x, sh, radial, wx, cc, senders, receivers, perm_r, rowptr, perm_s, sendptr, sh_lo, d2):
    return torch.empty_like(x), torch.empty_like(sh), torch.empty_like(radial)


def _setup(ctx, inputs, output):
    ctx.save_for_backward(*inputs[:11])
    ctx.sh_lo, ctx.d2 = inputs[11], inputs[12]


def _backward(ctx, g):
    x, sh, radial, wx, cc, senders, receivers, perm_r, rowptr, perm_s, sendptr = ctx.saved_tensors
    sh_lo, d2 = ctx.sh_lo, ctx.d2
    need = ctx.needs_input_grad
    if torch.is_grad_enabled():
        # a graph of the gradient is wanted (training on forces): the torch formulas, differentiable
        # in the inputs and in g
        grads = backward_in_torch(g, x, sh, radial, wx, cc, senders, receivers, sh_lo, d2)
        return tuple(t if n else None for t, n in zip(grads, need[:4])) + (None,) * 9
    gx, gy, gb = fused_conv_block_backward(g, x, sh, radial, wx, cc, senders, receivers, perm_r, rowptr, perm_s,
                                           sendptr, sh_lo, d2)
    gwx = _wx_grad(g, x, sh, radial, cc, senders, receivers, sh_lo, d2) if need[3] else None
    return (gx if need[0] else None, gy if need[1] else None, gb if need[2] else None, gwx) + (None,) * 9


fused_conv_block.register_autograd(_backward, setup_context=_setup)


def csr_tables(receivers: torch.Tensor, senders: torch.Tensor, n_recv: int, n_send: int) -> List[torch.Tensor]:
    """[perm_r, rowptr, perm_s, sendptr]: the edges in receiver order and in sender order (stable sorts)."""
    perm_r = torch.argsort(receivers, stable=True)
    rowptr = torch.zeros(n_recv + 1, dtype=torch.long, device=receivers.device)
    rowptr[1:] = torch.cumsum(torch.bincount(receivers, minlength=n_recv), 0)
    perm_s = torch.argsort(senders, stable=True)
    sendptr = torch.zeros(n_send + 1, dtype=torch.long, device=senders.device)
    sendptr[1:] = torch.cumsum(torch.bincount(senders, minlength=n_send), 0)
    return [perm_r, rowptr, perm_s, sendptr]
