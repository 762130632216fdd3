"""The density convolution of a group of input blocks as one autograd Function with a hand-written backward.

Same sum as the density backend (``density``), for input blocks b that read the same spherical-harmonic
columns (a "group"; all blocks of a middle layer are one group). Per chunk of C receiving atoms, with
the blocks' features side by side, x (N_send, F = sum_b u_b m1_b), and the group's basis columns rb (C, n, R):

    forward   xn = x[src]  (C, n, F)     D = xn^T rb  (C, F, R)     y_b[., u] = D_b[., u] M_b[u]    (per channel u)
    backward  gD_b[., u] = gy_b[., u] M_b[u]^T      g rb = xn gD  (C, n, R)      g xn = rb gD^T  (C, n, F) -> g x

One GEMM serves all blocks of the group (F = 480 rows for Facet-S rather than three GEMMs of 128-192), and
every product writes its result in the layout the next one reads: autograd's own backward of the
plain formulation transposes the neighbour-feature gradient (C, F, n) -> (C, n, F) and concatenates
per-chunk and per-block basis gradients; here they go straight into one buffer each. Only the
weights' gradient is missing: the Function is for frozen weights (inference: forces, stress, MD), and
the density backend runs the plain formulation when they require gradients (training). A second
derivative (``create_graph=True``) recomputes the plain formulation and differentiates it, so double
backward is exact too, just not faster.

The same Function is the operator ``torch.ops.facetpot.density_group(src, rb, chunk, blocks, ms)``, which
TorchScript can call: a scripted model (``facet export``, ``pair_style facet``) runs it with frozen
weights. In a Python process the operator is this module's Function; the LAMMPS plugin registers the same
schema with a C++ transcription of it (``md/lammps/density_group_op.cpp``; same forward, same backward, no
double backward), so an exported archive computes the fast formulation inside LAMMPS too.
"""

from typing import List, Optional, Sequence, Tuple

import torch

from .density_sum import channel_messages, density_messages


def group_messages(
    blocks: Sequence[torch.Tensor], src: torch.Tensor, rb: torch.Tensor, ms: Sequence[torch.Tensor], chunk: int
) -> List[torch.Tensor]:
    """Messages (N_recv, u_b, cols_b) of every block: blocks[b] (N_send, u_b, m1_b); src (N_recv, n) with
    N_send in padding slots; rb (N_recv, n, R) the group's basis columns; ms[b] (u_b, m1_b R, cols_b);
    chunks of ``chunk`` receiving atoms."""
    return list(_GroupConvolution.apply(src, rb, int(chunk), len(blocks), *blocks, *ms))


#: the operator's schema; the LAMMPS plugin registers the same one (md/lammps/density_group_op.cpp)
OP_SCHEMA = "density_group(Tensor src, Tensor rb, int chunk, Tensor[] blocks, Tensor[] ms) -> Tensor[]"


def _op_impl(
    src: torch.Tensor, rb: torch.Tensor, chunk: int, blocks: List[torch.Tensor], ms: List[torch.Tensor]
) -> List[torch.Tensor]:
    return group_messages(blocks, src, rb, ms, chunk)


def _register_operator() -> Optional[torch.library.Library]:
    """Define ``facetpot::density_group`` unless this process already has it (the LAMMPS plugin's C++ version,
    loaded first: the same schema and numbers)."""
    if hasattr(torch.ops.facetpot, "density_group"):
        return None
    lib = torch.library.Library("facetpot", "FRAGMENT")
    lib.define(OP_SCHEMA)
    # below autograd: the Function records its own backward
    lib.impl("density_group", _op_impl, "CompositeImplicitAutograd")
    return lib


_LIBRARY = _register_operator()


def plain_group_messages(
    blocks: Sequence[torch.Tensor], src: torch.Tensor, rb: torch.Tensor, ms: Sequence[torch.Tensor]
) -> List[torch.Tensor]:
    """The same sum in differentiable torch ops, all atoms at once (the oracle and the double backward)."""
    return density_messages(_extended(blocks, differentiable=True), src, rb, list(ms))


def _extended(blocks: Sequence[torch.Tensor], differentiable: bool = False) -> torch.Tensor:
    """(N_send + 1, F): the blocks' features side by side and a zero row for padding slots."""
    flat = [x.reshape(x.shape[0], x.shape[1] * x.shape[2]) for x in blocks]
    if differentiable:
        x = flat[0] if len(flat) == 1 else torch.cat(flat, dim=1)
        return torch.cat([x, x.new_zeros(1, x.shape[1])])
    n = blocks[0].shape[0]
    x_ext = blocks[0].new_empty(n + 1, sum(f.shape[1] for f in flat))
    x_ext[n].zero_()
    col = 0
    for f in flat:
        x_ext[:n, col : col + f.shape[1]] = f
        col += f.shape[1]
    return x_ext


def _chunks(src: torch.Tensor, pad: int, chunk: int) -> List[Tuple[int, int, int]]:
    """(first atom, end atom, width) of every chunk of ``chunk`` receiving atoms: the width is the largest
    neighbour count in the chunk. Padding slots trail every row of ``src``, so a chunk reads only its first
    ``width`` slots: a graph of mixed structures (batched single points, relaxations) pays the padding of its
    densest atom only in the chunks near that atom (benchmarks/RESULTS.md, "Measurements behind design choices")."""
    n, n_slot = src.shape[0], src.shape[1]
    chunk = max(1, chunk)
    starts = list(range(0, n, chunk))
    if len(starts) <= 1 or n_slot == 0:
        return [(a, min(a + chunk, n), n_slot) for a in starts]
    counts = (src != pad).sum(1)
    tail = (-n) % chunk
    if tail:
        counts = torch.cat([counts, counts.new_zeros(tail)])
    widths = counts.view(-1, chunk).amax(1).tolist()
    return [(a, min(a + chunk, n), int(w)) for a, w in zip(starts, widths)]


class _GroupConvolution(torch.autograd.Function):
    @staticmethod
    def forward(ctx, src, rb, chunk, n_blocks, *tensors):
        blocks, ms = tensors[:n_blocks], tensors[n_blocks:]
        x_ext = _extended(blocks)
        n_recv, n_slot = src.shape[0], src.shape[1]
        f = x_ext.shape[1]
        pieces: List[List[torch.Tensor]] = [[] for _ in blocks]
        # workspaces reused by every chunk (a fresh multi-MB tensor per chunk costs page faults)
        width = min(chunk, n_recv)
        xn_buf = x_ext.new_empty(width * n_slot, f)
        dens_buf = x_ext.new_empty(width, f, rb.shape[2])
        chunks = _chunks(src, x_ext.shape[0] - 1, chunk)
        for a, b, w in chunks:
            c = b - a
            # density_sum.density_messages, with the gather and the density GEMM written into the reused
            # workspaces, and the channel-major pieces concatenated once at the end
            xn = torch.index_select(x_ext, 0, src[a:b, :w].reshape(-1), out=xn_buf[: c * w]).view(c, w, f)
            dens = torch.bmm(xn.transpose(1, 2), rb[a:b, :w], out=dens_buf[:c])  # (C, F, R)
            for piece, y in zip(pieces, channel_messages(dens, list(ms))):
                piece.append(y)  # (u, C, cols)
        ctx.save_for_backward(src, rb, *blocks, *ms)
        ctx.chunk, ctx.n_blocks, ctx.chunks = chunk, n_blocks, chunks
        return tuple((p[0] if len(p) == 1 else torch.cat(p, dim=1)).transpose(0, 1) for p in pieces)

    @staticmethod
    def backward(ctx, *grads):
        saved = ctx.saved_tensors
        src, rb = saved[0], saved[1]
        blocks, ms = saved[2 : 2 + ctx.n_blocks], saved[2 + ctx.n_blocks :]
        if any(m.requires_grad for m in ms):
            raise RuntimeError("the density Function has no weight gradients; use the plain formulation for training")
        need_rb = ctx.needs_input_grad[1]
        need_x = any(ctx.needs_input_grad[4 : 4 + ctx.n_blocks])
        if torch.is_grad_enabled():  # create_graph: differentiate the plain formulation instead
            g_rb, g_blocks = _plain_gradients(
                src, rb, blocks, ms, grads, [need_rb] + list(ctx.needs_input_grad[4 : 4 + ctx.n_blocks])
            )
            return (None, g_rb, None, None, *g_blocks, *[None] * len(ms))
        x_ext = _extended(blocks)
        n_recv, n_slot, r = src.shape[0], src.shape[1], rb.shape[2]
        f = x_ext.shape[1]
        chunks = ctx.chunks
        trimmed = any(w < n_slot for _, _, w in chunks)
        g_rb = None
        if need_rb:  # slots a chunk does not read are padding: zero gradient
            g_rb = rb.new_zeros(n_recv, n_slot, r) if trimmed else rb.new_empty(n_recv, n_slot, r)
        g_x = x_ext.new_zeros(x_ext.shape) if need_x else None
        width = min(ctx.chunk, n_recv)
        g_dens_buf = rb.new_empty(width, f, r)
        xn_buf = rb.new_empty(width * n_slot, f)
        g_rb_buf = rb.new_empty(width * n_slot * r) if trimmed and need_rb else None
        t_bufs = [rb.new_empty(x.shape[1] * width * m.shape[1]) for x, m in zip(blocks, ms)]
        for a, b, w in chunks:
            c = b - a
            g_dens = g_dens_buf[:c]
            row = 0
            for x, m, g, t_buf in zip(blocks, ms, grads, t_bufs):
                u, rows = x.shape[1], x.shape[1] * x.shape[2]
                gu = g[a:b].transpose(0, 1)  # (u, C, cols)
                if gu.stride(-1) != 1:
                    gu = gu.contiguous()
                t = torch.bmm(gu, m.transpose(1, 2), out=t_buf[: u * c * m.shape[1]].view(u, c, m.shape[1]))
                if len(blocks) == 1 and rows == u:  # one block of scalars: (u, C, R) serves as (C, u, R) as is
                    g_dens = t.transpose(0, 1)
                else:
                    g_dens[:, row : row + rows].view(c, u, -1).copy_(t.transpose(0, 1))  # (u, C, m1 R) -> (C, u m1, R)
                row += rows
            s = src[a:b, :w].reshape(-1)
            if g_rb is not None:
                xn = torch.index_select(x_ext, 0, s, out=xn_buf[: c * w]).view(c, w, f)
                if w == n_slot:
                    torch.bmm(xn, g_dens, out=g_rb[a:b])
                else:
                    g_rb[a:b, :w].copy_(torch.bmm(xn, g_dens, out=g_rb_buf[: c * w * r].view(c, w, r)))
            if g_x is not None:
                g_xn = torch.bmm(rb[a:b, :w], g_dens.transpose(1, 2), out=xn_buf[: c * w].view(c, w, f))  # (C, n, F)
                g_x.index_add_(0, s, g_xn.view(c * w, f))
        g_blocks = _split_blocks(g_x, blocks, ctx.needs_input_grad[4 : 4 + ctx.n_blocks])
        return (None, g_rb, None, None, *g_blocks, *[None] * len(ms))


def _plain_gradients(src, rb, blocks, ms, grads, needs):
    """(d rb, [d block]) by autograd through ``plain_group_messages``, keeping the graph (double backward);
    ``needs``: whether rb and each block want a gradient."""
    inputs = [t for t, need in zip([rb, *blocks], needs) if need]
    with torch.enable_grad():
        ys = plain_group_messages(blocks, src, rb, ms)
        got = iter(torch.autograd.grad(ys, inputs, grads, create_graph=True, allow_unused=True))
    return (next(got) if needs[0] else None), [next(got) if need else None for need in needs[1:]]


def _split_blocks(g_x, blocks, needs) -> List[Optional[torch.Tensor]]:
    """The gradient of the extended (N + 1, F) sender features cut back into the blocks' shapes."""
    out: List[Optional[torch.Tensor]] = []
    col = 0
    n_send = g_x.shape[0] - 1 if g_x is not None else 0
    for x, need in zip(blocks, needs):
        width = x.shape[1] * x.shape[2]
        out.append(g_x[:n_send, col : col + width].view(x.shape) if need and g_x is not None else None)
        col += width
    return out
