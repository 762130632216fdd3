"""Refit a spline trim's radial weights so that every layer reproduces its original's layer *outputs*.

:func:`~facetpot.ports.spline_fit.fit_splines` fits the radial weights themselves, w(r) ~ h(b(r)) W, over pair
distances. What the rest of the network sees is the convolution's output, which is linear in the weights:
for the output channel n = (path p, channel u) of a receiving atom i,

    m_i,n[m3] = norm * sum_e w_n(r_e) t_e,n[m3],    t_e,n = (x_j,u  Y(r_e)  C^(p))[m3]

and with spline weights w_n(r) = b(r) a_n (a_n = A M[:, n], rank R):

    m_i,n = sum_k a_n[k] G_i,n[k],    G_i,n[k] = norm * sum_{e into i} b_k(r_e) t_e,n.

Given the original's inputs of the layer (teacher forcing: the exact port's features), the fit

    min_{A, M}  sum_n d_n [ sum_i,m3 (G_i,n a_n - m^orig_i,n)^2  +  lambda_n sum_r (b(r) a_n - w^orig_n(r))^2 ]

is quadratic in A for fixed M and in M for fixed A (alternating least squares, each step exact, the objective
never increases). ``d_n`` is the squared norm of the row of the layer's ``linear_out`` that reads channel n
(how much an error of the channel reaches the next layer); the second term, over pair distances that include
a uniform floor down to ``spline_start``, keeps the weights close to the original's where few structures have
edges (``lambda_n`` = ``ridge`` x the channel's data term scale). Forces are derivatives: with ``derivative``
mu > 0 the objective also holds the edge-level term of the radial derivative,

    mu_n sum_e |norm t_e,n|^2 (b'(r_e) a_n - w'^orig_n(r_e))^2,

the part of d m_i,n / d r_e that the radial weights decide (mu_n = mu x the ratio of the two terms' sizes).
Only the per-channel statistics
sum_i G^T G (K x K), sum_i G^T m^orig (K) and sum_i |m^orig|^2 are accumulated, structure batch by batch, so
memory does not grow with the number of structures.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..data.batching import pack_batches
from ..structure.graph import atoms_to_graph, batch_graphs
from ..model import FacetModel


@dataclass
class LayerStatistics:
    """Per output channel n of one convolution: gram (n, K, K), rhs (n, K), target (n,) = sum |m^orig|^2; and
    the same of the edge-level derivative term (``d*``, the module docstring) when the original has radial MLPs."""

    gram: torch.Tensor
    rhs: torch.Tensor
    target: torch.Tensor
    dgram: Optional[torch.Tensor] = None
    drhs: Optional[torch.Tensor] = None
    dtarget: Optional[torch.Tensor] = None

    def add(self, other: "LayerStatistics") -> None:
        for name in ("gram", "rhs", "target", "dgram", "drhs", "dtarget"):
            mine = getattr(self, name)
            if mine is not None:
                mine += getattr(other, name)

    @staticmethod
    def _relative(a, gram, rhs, target) -> float:
        quad = torch.einsum("kn,nkl,ln->n", a, gram, a) - 2 * torch.einsum("nk,kn->n", rhs, a)
        return float(((quad.sum() + target.sum()).clamp(min=0) / target.sum()).detach() ** 0.5)

    def error(self, a: torch.Tensor) -> float:
        """Relative RMS error of the layer outputs with per-channel spline coefficients a (K, n)."""
        return self._relative(a, self.gram, self.rhs, self.target)

    def derivative_error(self, a: torch.Tensor) -> float:
        """Relative RMS error of the messages' radial derivatives, norm w'(r_e) t_e (nan without them)."""
        if self.dgram is None:
            return float("nan")
        return self._relative(a, self.dgram, self.drhs, self.dtarget)


def _capture_conv_io(model: FacetModel):
    """Forward hooks on every layer's convolution keeping (blocks in, edges, outputs); returns (store, handles)."""
    store: List[Tuple] = []
    handles = [
        layer.conv.register_forward_hook(lambda mod, args, out: store.append((args[0], args[1], out)))
        for layer in model.layers
    ]
    return store, handles


def _by_receiver(edges, values: torch.Tensor) -> torch.Tensor:
    """(E, C) edge values -> (N_recv, D, C), zero-padded, D the largest number of edges into one atom."""
    order = torch.argsort(edges.receivers, stable=True)
    recv = edges.receivers[order]
    deg = torch.bincount(recv, minlength=edges.num_receivers)
    starts = torch.cumsum(deg, 0) - deg
    slot = torch.arange(recv.shape[0]) - starts[recv]
    out = torch.zeros(edges.num_receivers, int(deg.max()) if recv.numel() else 0, values.shape[1], dtype=values.dtype)
    out[recv, slot] = values[order]
    return out


def _channel_basis(
    conv, blocks: List[torch.Tensor], edges, basis: torch.Tensor, norm: float
) -> Tuple[List[torch.Tensor], torch.Tensor]:
    """(G per path: (N_recv, K, u, 2l3+1) = norm * sum_{e into i} b(r_e) t_e (the module docstring);
    |norm t_e,n|^2 (E, n))."""
    paths = conv.paths
    sh_dims = [2 * l + 1 for l in range(paths.sh_lmax + 1)]
    sh_l = torch.split(edges.sh, sh_dims, dim=1)
    messages, shapes = [], []
    for p, cg in zip(paths.paths, paths.cg):
        x = blocks[p.block].index_select(0, edges.senders)  # (E, u, 2l1+1)
        a = torch.einsum("em,lmn->eln", sh_l[p.l2], cg.to(basis.dtype))  # (E, 2l1+1, 2l3+1)
        messages.append(torch.bmm(x, a).reshape(x.shape[0], -1))  # t_e: (E, u (2l3+1))
        shapes.append((p.mul, 2 * p.l3 + 1))
    sizes = torch.cat([(m.view(m.shape[0], mul, dim) ** 2).sum(-1) for m, (mul, dim) in zip(messages, shapes)], 1)
    t = _by_receiver(edges, torch.cat(messages, 1))  # (N, D, C)
    b = _by_receiver(edges, norm * basis)  # (N, D, K)
    g = torch.bmm(b.transpose(1, 2), t)  # (N, K, C)
    out, off = [], 0
    for mul, dim in shapes:
        out.append(g[:, :, off : off + mul * dim].reshape(g.shape[0], g.shape[1], mul, dim))
        off += mul * dim
    return out, norm * norm * sizes


@torch.no_grad()
def layer_statistics(
    original: FacetModel,
    spline: FacetModel,
    structures: Sequence,
    batch_atoms: int = 256,
    progress=None,
    derivatives: bool = True,
) -> List[LayerStatistics]:
    """The statistics of every layer over ``structures`` (ASE Atoms), with the original's layer inputs."""
    original = original.double().eval()
    store, handles = _capture_conv_io(original)
    stats: List[Optional[LayerStatistics]] = [None] * len(original.layers)
    try:
        for chunk in pack_batches(list(structures), len, int(batch_atoms)):
            g = batch_graphs([atoms_to_graph(a, original.cutoff, min_distance=0.0) for a in chunk])
            store.clear()
            original(original.species_index(g.numbers), g.edge_index, g.edge_vectors())
            for t, (blocks, edges, outputs) in enumerate(store[: len(original.layers)]):
                r = torch.sqrt((edges.vectors * edges.vectors).sum(-1))
                basis = spline.radial(r.to(torch.float64))
                conv = spline.layers[t].conv
                gs, sizes = _channel_basis(conv, blocks, edges, basis, conv.norm)
                gram = torch.cat([torch.einsum("ikum,ilum->ukl", g, g) for g in gs])
                rhs = torch.cat([torch.einsum("ikum,ium->uk", g, o) for g, o in zip(gs, outputs)])
                target = torch.cat([(o * o).sum(dim=(0, 2)) for o in outputs])
                s = LayerStatistics(gram, rhs, target)
                if derivatives and original.layers[t].conv.radial_mlp is not None:
                    s.dgram, s.drhs, s.dtarget = _derivative_terms(original, spline, t, r.to(torch.float64), sizes)
                if stats[t] is None:
                    stats[t] = s
                else:
                    stats[t].add(s)
            if progress is not None:
                progress(len(chunk))
    finally:
        for h in handles:
            h.remove()
    return stats  # type: ignore[return-value]


def original_radial_weights(original: FacetModel, spline: FacetModel, t: int, r: torch.Tensor) -> torch.Tensor:
    """w^orig(r) (E, n) of layer t, the radial MLP's weights, in the spline layer's units (w = norm * b(r) A M)."""
    conv = original.layers[t].conv
    return conv.radial_mlp(original.radial(r)) @ conv.radial_weight.double() * conv.norm / spline.layers[t].conv.norm


def _derivative_terms(
    original: FacetModel, spline: FacetModel, t: int, r: torch.Tensor, sizes: torch.Tensor, step: float = 1e-5
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """sum_e |norm t_e,n|^2 (b'(r_e) b'(r_e)^T, b'(r_e) w'_n(r_e), w'_n(r_e)^2): the edge-level derivative
    term, w' the original's radial weights' derivative in the spline layer's units (central differences)."""
    db = (spline.radial(r + step) - spline.radial(r - step)) / (2 * step)  # (E, K)
    dw = (
        original_radial_weights(original, spline, t, r + step) - original_radial_weights(original, spline, t, r - step)
    ) / (2 * step)  # (E, n)
    # b' of a distance is nonzero on at most four consecutive splines k0..k0+3: a banded K x K Gram per channel
    k = db.shape[1]
    basis = spline.radial
    k0 = (torch.floor((r - basis.start) / basis.spacing).long() - 1).clamp(0, k - 4)
    window = db.gather(1, k0.unsqueeze(1) + torch.arange(4))  # (E, 4)
    dgram = torch.zeros(k * k, sizes.shape[1], dtype=sizes.dtype)
    for p in range(4):
        for q in range(4):
            dgram.index_add_(0, (k0 + p) * k + k0 + q, sizes * (window[:, p] * window[:, q]).unsqueeze(1))
    dgram = dgram.T.reshape(-1, k, k)
    return dgram, ((sizes * dw).T @ db), (sizes * dw * dw).sum(0)


def downstream_weights(layer) -> torch.Tensor:
    """d_n: the squared norm (with its fan-in normalisation) of the ``linear_out`` rows reading channel n."""
    lin = layer.linear_out
    sizes = [mul for mul, _, _ in lin.irreps_in]
    d = [torch.zeros(m, dtype=torch.float64) for m in sizes]
    for o, src in enumerate(lin.sources):
        w = lin.weights[o].detach().double()
        off = 0
        for b in src:
            d[b] += (w[off : off + sizes[b]] ** 2).sum(1) * lin.norms[o] ** 2
            off += sizes[b]
    d = torch.cat(d)
    return d / d.mean()


def weight_space_terms(
    original: FacetModel, spline: FacetModel, t: int, distances: torch.Tensor
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(sum_r b^T b (K, K), sum_r b^T w^orig / norm (K, n), sum_r |w^orig / norm|^2 (n,)) of layer t over
    ``distances``, in the spline layer's units (w = norm * b(r) A M)."""
    r = distances.to(torch.float64)
    w = original_radial_weights(original, spline, t, r)
    b = spline.radial(r)
    return b.T @ b, b.T @ w, (w * w).sum(0)


def alternating_fit(
    stats: LayerStatistics,
    a: torch.Tensor,
    m: torch.Tensor,
    ws: Tuple[torch.Tensor, ...],
    col_weights: torch.Tensor,
    ridge: float,
    iterations: int = 30,
    derivative: float = 0.0,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Alternating least squares for A (K, R), M (R, n) (the module docstring); returns the new (A, M).
    ``derivative`` > 0 adds the edge-level derivative term with that weight relative to the output term."""
    gws, rws, _ = ws
    size = stats.gram.diagonal(dim1=1, dim2=2).sum(1)  # data term size per channel
    lam = ridge * size / gws.diagonal().sum()  # (n,)
    h = stats.gram + lam[:, None, None] * gws  # (n, K, K)
    c = stats.rhs + lam[:, None] * rws.T  # (n, K)
    if derivative > 0 and stats.dgram is not None:
        mu = derivative * size / stats.dgram.diagonal(dim1=1, dim2=2).sum(1).clamp(min=1e-300)
        h = h + mu[:, None, None] * stats.dgram
        c = c + mu[:, None] * stats.drhs
    k, rank = a.shape
    for _ in range(iterations):
        # M step: per channel, (A^T H_n A) m_n = A^T c_n
        lhs = torch.einsum("kr,nkl,ls->nrs", a, h, a)
        m = torch.linalg.solve(lhs + 1e-12 * torch.eye(rank, dtype=a.dtype), (c @ a).unsqueeze(-1)).squeeze(-1).T
        # A step: sum_n d_n H_n A m_n m_n^T = sum_n d_n c_n m_n^T, one (K R) system
        q = torch.einsum("n,nkl,rn,sn->krls", col_weights, h, m, m).reshape(k * rank, k * rank)
        rhs = torch.einsum("n,nk,rn->kr", col_weights, c, m).reshape(-1)
        a = torch.linalg.solve(q + 1e-12 * q.diagonal().mean() * torch.eye(k * rank, dtype=a.dtype), rhs).view(k, rank)
        # keep the factors balanced (A's columns of unit RMS): the product is unchanged
        norms = a.norm(dim=0, keepdim=True) / np.sqrt(k)
        a, m = a / norms, m * norms.T
    return a, m


@torch.no_grad()
def refit_to_outputs(
    original: FacetModel,
    spline: FacetModel,
    stats: List[LayerStatistics],
    distances: torch.Tensor,
    ridge: float = 1e-2,
    iterations: int = 30,
    derivative: float = 0.0,
) -> Dict[str, List[float]]:
    """Refit ``spline``'s radial weights (in place) from the statistics; returns the relative RMS error of every
    layer's outputs, and of its messages' radial derivatives, before and after (on the statistics' structures)."""
    before, after, dbefore, dafter = [], [], [], []
    for t, (layer, s) in enumerate(zip(spline.layers, stats)):
        conv = layer.conv
        if conv.radial_rank <= 0:
            raise ValueError("refit_to_outputs needs a rank-R spline model (radial_rank > 0)")
        a, m = conv.radial_mix.detach().double(), conv.radial_weight.detach().double()  # W = A M
        before.append(s.error(a @ m))
        dbefore.append(s.derivative_error(a @ m))
        ws = weight_space_terms(original, spline, t, distances)
        a, m = alternating_fit(s, a, m, ws, downstream_weights(layer), ridge, iterations, derivative)
        after.append(s.error(a @ m))
        dafter.append(s.derivative_error(a @ m))
        conv.radial_mix.copy_(a.to(conv.radial_mix.dtype))
        conv.radial_weight.copy_(m.to(conv.radial_weight.dtype))
    return {"before": before, "after": after, "derivative_before": dbefore, "derivative_after": dafter}
