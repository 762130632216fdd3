"""Triton kernel of the spherical-grid layer's middle: to the grid, the per-point MLP, back, in one pass.

For every atom, with lifted coefficients L (U, d), grid matrices T (d, G) and F (G, d), and the MLP
(W1 (H, U), b1, W2 (U, H), b2) acting on the U values at every grid point:

    X = T^T L^T (G, U),  P = X W1^T + b1,  A = act(P),  O = A W2^T + b2,  out = O^T F (U, d)

One program per atom walks the grid in tiles of points; X, P, A and O exist only per tile, in
registers, so the (atoms x grid points x channels) tensors never reach global memory. The gradient
to L (forces) is a second kernel of the same shape:

    dO = F G^T,  dP = (dO W2) act'(P),  dX = dP W1,  dL = (T dX)^T

The weights' gradients and second derivatives (training) use the same formulas in torch
(:func:`backward_in_torch`); the forward in torch, the tests' oracle, is
``facetpot.testing.grid_mlp_oracle``.
``act``: 0 = quadratic (z/2 + z^2/4), 1 = SiLU.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl


def _pow2(n: int, lo: int = 16) -> int:
    return max(lo, triton.next_power_of_2(max(int(n), 1)))


@triton.jit
def _act(p, ACT: tl.constexpr):
    if ACT == 0:
        return p * (0.5 + 0.25 * p)
    else:
        return p / (1.0 + tl.exp(-p))


@triton.jit
def _act_grad(p, ACT: tl.constexpr):
    if ACT == 0:
        return 0.5 + 0.5 * p
    else:
        s = 1.0 / (1.0 + tl.exp(-p))
        return s * (1.0 + p * (1.0 - s))


@triton.jit
def _weights(w1_ptr, b1_ptr, w2_ptr, U: tl.constexpr, H: tl.constexpr, UP: tl.constexpr, HP: tl.constexpr):
    """W1^T (UP, HP), b1 (HP), W2^T (HP, UP), zero-padded."""
    u = tl.arange(0, UP)
    h = tl.arange(0, HP)
    m = (u < U)[:, None] & (h < H)[None, :]
    w1t = tl.load(w1_ptr + h[None, :] * U + u[:, None], mask=m, other=0.0)
    b1 = tl.load(b1_ptr + h, mask=h < H, other=0.0)
    w2t = tl.load(w2_ptr + u[None, :] * H + h[:, None], mask=(h < H)[:, None] & (u < U)[None, :], other=0.0)
    return w1t, b1, w2t


@triton.jit
def _grid_tile(t_ptr, f_ptr, g0, G: tl.constexpr, D: tl.constexpr, DP: tl.constexpr, BG: tl.constexpr):
    """T[:, tile] as (DP, BG), F[tile, :] as (BG, DP), and the tile's mask (BG,)."""
    d = tl.arange(0, DP)
    g = g0 + tl.arange(0, BG)
    gm = g < G
    tt = tl.load(t_ptr + d[:, None] * G + g[None, :], mask=(d < D)[:, None] & gm[None, :], other=0.0)
    ft = tl.load(f_ptr + g[:, None] * D + d[None, :], mask=gm[:, None] & (d < D)[None, :], other=0.0)
    return tt, ft, gm


@triton.jit
def _atom_coeffs(ptr, i, U: tl.constexpr, D: tl.constexpr, UP: tl.constexpr, DP: tl.constexpr):
    """Atom i's (U, d) coefficients at ``ptr`` as a zero-padded (DP, UP) tile (transposed)."""
    u = tl.arange(0, UP)
    d = tl.arange(0, DP)
    m = (u < U)[:, None] & (d < D)[None, :]
    return tl.trans(tl.load(ptr + i * (U * D) + u[:, None] * D + d[None, :], mask=m, other=0.0))


@triton.jit
def _store_coeffs(ptr, i, acc, U: tl.constexpr, D: tl.constexpr, UP: tl.constexpr, DP: tl.constexpr):
    """Write the (UP, DP) tile ``acc`` as atom i's (U, d) coefficients at ``ptr``."""
    u = tl.arange(0, UP)
    d = tl.arange(0, DP)
    tl.store(ptr + i * (U * D) + u[:, None] * D + d[None, :], acc, mask=(u < U)[:, None] & (d < D)[None, :])


@triton.jit
def _grid_fwd_kernel(l_ptr, t_ptr, w1_ptr, b1_ptr, w2_ptr, b2_ptr, f_ptr, out_ptr,
                     U: tl.constexpr, D: tl.constexpr, G: tl.constexpr, H: tl.constexpr,
                     UP: tl.constexpr, DP: tl.constexpr, HP: tl.constexpr, BG: tl.constexpr, ACT: tl.constexpr):
    i = tl.program_id(0).to(tl.int64)
    u = tl.arange(0, UP)
    lt = _atom_coeffs(l_ptr, i, U, D, UP, DP)  # (DP, UP)
    w1t, b1, w2t = _weights(w1_ptr, b1_ptr, w2_ptr, U, H, UP, HP)
    b2 = tl.load(b2_ptr + u, mask=u < U, other=0.0)
    acc = tl.zeros((UP, DP), dtype=lt.dtype)
    for g0 in range(0, G, BG):
        tt, ft, gm = _grid_tile(t_ptr, f_ptr, g0, G, D, DP, BG)
        x = tl.dot(tl.trans(tt), lt, input_precision="ieee")  # (BG, UP)
        a = _act(tl.dot(x, w1t, input_precision="ieee") + b1[None, :], ACT)  # (BG, HP)
        o = tl.dot(a, w2t, input_precision="ieee") + b2[None, :]  # (BG, UP)
        o = tl.where(gm[:, None], o, 0.0)
        acc += tl.dot(tl.trans(o), ft, input_precision="ieee")  # (UP, DP)
    _store_coeffs(out_ptr, i, acc, U, D, UP, DP)


@triton.jit
def _grid_bwd_kernel(gout_ptr, l_ptr, t_ptr, w1_ptr, b1_ptr, w2_ptr, f_ptr, gl_ptr,
                     U: tl.constexpr, D: tl.constexpr, G: tl.constexpr, H: tl.constexpr,
                     UP: tl.constexpr, DP: tl.constexpr, HP: tl.constexpr, BG: tl.constexpr, ACT: tl.constexpr):
    i = tl.program_id(0).to(tl.int64)
    lt = _atom_coeffs(l_ptr, i, U, D, UP, DP)  # (DP, UP)
    gt = _atom_coeffs(gout_ptr, i, U, D, UP, DP)  # (DP, UP)
    w1t, b1, w2t = _weights(w1_ptr, b1_ptr, w2_ptr, U, H, UP, HP)
    acc = tl.zeros((UP, DP), dtype=lt.dtype)
    for g0 in range(0, G, BG):
        tt, ft, gm = _grid_tile(t_ptr, f_ptr, g0, G, D, DP, BG)
        x = tl.dot(tl.trans(tt), lt, input_precision="ieee")  # (BG, UP)
        p = tl.dot(x, w1t, input_precision="ieee") + b1[None, :]  # (BG, HP)
        do = tl.dot(ft, gt, input_precision="ieee")  # (BG, UP); zero on padded points (F rows are 0)
        dp = tl.dot(do, tl.trans(w2t), input_precision="ieee") * _act_grad(p, ACT)  # (BG, HP)
        dx = tl.dot(dp, tl.trans(w1t), input_precision="ieee")  # (BG, UP)
        acc += tl.dot(tl.trans(dx), tl.trans(tt), input_precision="ieee")  # (UP, DP)
    _store_coeffs(gl_ptr, i, acc, U, D, UP, DP)


def _meta(lifted, to_grid, w1, act):
    u, d = lifted.shape[1], lifted.shape[2]
    g, h = to_grid.shape[1], w1.shape[0]
    return dict(U=u, D=d, G=g, H=h, UP=_pow2(u), DP=_pow2(d), HP=_pow2(h), BG=16, ACT=int(act))


def backward_in_torch(g, lifted, to_grid, w1, b1, w2, b2, from_grid, act: int):
    """(dL, dW1, db1, dW2, db2) of the module docstring in torch, differentiable in g and the inputs."""
    x = torch.matmul(lifted, to_grid).transpose(1, 2)  # (N, G, U)
    p = torch.nn.functional.linear(x, w1, b1)  # (N, G, H)
    if act == 0:
        a, da_dp = p * (0.5 + 0.25 * p), 0.5 + 0.5 * p
    else:
        s = torch.sigmoid(p)
        a, da_dp = p * s, s * (1 + p * (1 - s))
    do = torch.matmul(from_grid, g.transpose(1, 2))  # (N, G, U)
    dp = torch.matmul(do, w2) * da_dp  # (N, G, H)
    dx = torch.matmul(dp, w1)  # (N, G, U)
    dl = torch.matmul(to_grid, dx).transpose(1, 2)  # (N, U, d)
    return (dl, torch.einsum("ngh,ngu->hu", dp, x), dp.sum((0, 1)), torch.einsum("ngu,ngh->uh", do, a),
            do.sum((0, 1)))


@torch.library.custom_op("facetpot::fused_grid_mlp", mutates_args=())
def fused_grid_mlp(lifted: torch.Tensor, to_grid: torch.Tensor, w1: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor,
                   b2: torch.Tensor, from_grid: torch.Tensor, act: int) -> torch.Tensor:
    """out (N, U, d) = the grid layer's middle (module docstring) for lifted coefficients (N, U, d)."""
    lifted = lifted.contiguous()
    out = torch.empty_like(lifted)
    if lifted.shape[0] > 0:
        _grid_fwd_kernel[(lifted.shape[0],)](lifted, to_grid.contiguous(), w1.contiguous(), b1.contiguous(),
                                             w2.contiguous(), b2.contiguous(), from_grid.contiguous(), out,
                                             **_meta(lifted, to_grid, w1, act))
    return out


@fused_grid_mlp.register_fake
def _(lifted, to_grid, w1, b1, w2, b2, from_grid, act):
    return torch.empty_like(lifted)


@torch.library.custom_op("facetpot::fused_grid_mlp_backward", mutates_args=())
def fused_grid_mlp_backward(g: torch.Tensor, lifted: torch.Tensor, to_grid: torch.Tensor, w1: torch.Tensor,
                            b1: torch.Tensor, w2: torch.Tensor, from_grid: torch.Tensor, act: int) -> torch.Tensor:
    """dL for the output gradient ``g`` (module docstring), an op of its own so that compiled and exported
    graphs, which trace the backward, see an opaque kernel call."""
    lifted = lifted.contiguous()
    gl = torch.empty_like(lifted)
    if lifted.shape[0] > 0:
        _grid_bwd_kernel[(lifted.shape[0],)](g.contiguous(), lifted, to_grid.contiguous(), w1.contiguous(),
                                             b1.contiguous(), w2.contiguous(), from_grid.contiguous(), gl,
                                             **_meta(lifted, to_grid, w1, act))
    return gl


@fused_grid_mlp_backward.register_fake
def _(g, lifted, to_grid, w1, b1, w2, from_grid, act):
    return torch.empty_like(lifted)


def _setup(ctx, inputs, output):
    ctx.save_for_backward(*inputs[:7])
    ctx.act = inputs[7]


def _backward(ctx, g):
    lifted, to_grid, w1, b1, w2, b2, from_grid = ctx.saved_tensors
    need = ctx.needs_input_grad
    if torch.is_grad_enabled() or any(need[k] for k in (2, 3, 4, 5)):
        # training: gradients of the weights and/or a graph of the gradient, in torch
        dl, dw1, db1, dw2, db2 = backward_in_torch(g, lifted, to_grid, w1, b1, w2, b2, from_grid, ctx.act)
        grads = (dl, None, dw1, db1, dw2, db2)
        return tuple(t if need[k] else None for k, t in enumerate(grads)) + (None, None)
    return fused_grid_mlp_backward(g, lifted, to_grid, w1, b1, w2, from_grid, ctx.act), *(None,) * 7


fused_grid_mlp.register_autograd(_backward, setup_context=_setup)
