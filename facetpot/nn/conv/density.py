"""Node-density backend (the default): the convolution as two dense GEMMs per atom.

Because every radial weight is linear in the spline basis, w^(p)_u(r) = sum_k b_k(r) W^(p)_ku,
the convolution factorises through an atom-centred density (as in ACE / MACE):

    D_i[u, m1, (l2 m2), k] = sum_{j in N(i)} x_j[u, m1] Y_l2m2(r_ij) b_k(r_ij)       (GEMM per atom)
    m_i^(p)[u, m3]         = sum_{m1, m2, k} D_i[u, m1, (l2 m2), k] C^(p)_{m1 m2 m3} W^(p)_ku   (GEMM per channel)

The first GEMM runs on a padded neighbour matrix, (channels x n_neigh) @ (n_neigh x (l_max+1)^2 K)
for every atom; the second contracts with M_u = C (x) W_u, one matrix per channel u built once per
call. No per-edge message is ever stored: for Si 512 (46 neighbours, 2368 message components per
edge) memory traffic falls about 5x against the edge-wise backend. Padding slots point at a zero
feature row and a zero basis row, so they add nothing.

Per-graph tables (:meth:`DensityBackend.prepare`, shared by all layers): the neighbour matrix
``src`` (N_recv, n_max) of distinct neighbours (padding index N_send; the periodic images of one pair share a
slot, their basis rows summed: a small cell's slots are its atoms, not its ~30-60 images) and the basis Y_lm b_k
laid out as
(N_recv, n_max, (l_max+1)^2, K), whole and split by degree l (one split shared by all layers
costs a single concatenation in the backward pass; a slice per layer would cost a full-size zero
tensor each). Everything here is TorchScript-compatible; with frozen weights (the calculator, MD,
relaxations) eager calls run the same sum through ``density_op`` (one GEMM per group of blocks
and a hand-written backward without layout copies; the gain is measured in
(benchmarks/RESULTS.md, "Measurements behind design choices")).
"""

from typing import List

import torch
from torch.utils.checkpoint import checkpoint

from .backend import ConvolutionBackend
from .density_op import group_messages
from .density_sum import density_messages
from ..conv_paths import ConvolutionPaths, expand_block_weights
from ..sh_radial_product import sh_radial_product
from ..edges import EdgeData
from ..flat_constants import unflatten
from ..frozen_cache import remembered


def neighbor_matrix(edges: EdgeData, merge_images: bool = True) -> List[torch.Tensor]:
    """(src (N_recv, n_max): the distinct senders of every receiving atom, N_send in padding slots, which trail each
    row; slot (E,): the flat slot (row-major in (N_recv, n_max)) each edge adds its basis row into). The periodic
    images of one pair (i, j) share a slot, their basis rows summed (the density is linear in them): n_max is the
    largest number of distinct neighbours, at most N_send however many images a small cell has. ``merge_images``
    False: one slot per edge (the engine's edge-first steps), n_max the largest number of edges of an atom."""
    dst, senders, num_edges, n_recv = edges.receivers, edges.senders, edges.num_edges(), edges.num_receivers
    order = torch.argsort(dst * (edges.num_senders + 1) + senders, stable=True)  # by receiver, then sender
    dst_sorted, send_sorted = dst[order], senders[order]
    first = torch.ones(num_edges, dtype=torch.bool, device=dst.device)  # the first edge of each (i, j)
    if num_edges > 1 and merge_images:
        first[1:] = (dst_sorted[1:] != dst_sorted[:-1]) | (send_sorted[1:] != send_sorted[:-1])
    pair_recv = dst_sorted[first]
    counts = torch.bincount(pair_recv, minlength=n_recv)
    n_max = 0
    if num_edges > 0:
        n_max = int(counts.max())
    starts = torch.cumsum(counts, 0) - counts
    pair_slot = pair_recv * n_max + torch.arange(pair_recv.shape[0], device=dst.device) - starts[pair_recv]
    src = torch.full([n_recv * n_max], edges.num_senders, dtype=torch.long, device=dst.device)
    src[pair_slot] = send_sorted[first]
    slot = torch.empty(num_edges, dtype=torch.long, device=dst.device)
    slot[order] = pair_slot[torch.cumsum(first.long(), 0) - 1]
    return [src.view(n_recv, n_max), slot]


@torch.jit.unused
def _compiling() -> bool:
    """Under torch.compile / torch.export, which trace the plain formulation."""
    return torch.compiler.is_compiling()


#: receiving atoms per plain chunk on CPU; keeps a chunk's density (~140 kB per atom for Facet-S) near the
#: cache (benchmarks/RESULTS.md, "Measurements behind design choices")
CACHE_ATOMS = 48


def _block_messages(x_ext: torch.Tensor, src: torch.Tensor, rb: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Messages (C, u, cols) of one block for C receiving atoms (:func:`density_sum.density_messages`)."""
    return density_messages(x_ext, src, rb, [m])[0]


@torch.jit.unused
def _checkpointed_messages(
    x_ext: torch.Tensor, srcs: List[torch.Tensor], rbs: List[torch.Tensor], m: torch.Tensor
) -> torch.Tensor:
    return torch.cat([checkpoint(_block_messages, x_ext, s, r, m, use_reentrant=False) for s, r in zip(srcs, rbs)])


class DensityBackend(ConvolutionBackend):
    """Options: ``chunk_atoms``: above this many receiving atoms, with autograd on, chunks of atoms
    recompute their intermediates in the backward pass (activation checkpointing, eager only):
    memory then grows with the chunk, not the system, at the price of one more forward per layer;
    0 = never; -1 (default) = 4096 on CPU, 32768 on GPU. ``cache_atoms``: receiving atoms per plain
    chunk (-1 (default): ``CACHE_ATOMS`` on CPU, no plain chunks on GPU, where many small GEMMs
    cost more than one large one (benchmarks/RESULTS.md, "Measurements behind design choices"))."""

    name = "density"
    tables_from_radial = True

    def __init__(self, paths: ConvolutionPaths, chunk_atoms: int = -1, cache_atoms: int = -1):
        super().__init__(paths)
        self.chunk_atoms = int(chunk_atoms)
        self.cache_atoms = int(cache_atoms)
        self.cache_atoms_cpu = CACHE_ATOMS
        self.sh_lmax = paths.sh_lmax
        # per input block: the CG tensors of all its paths side by side, CC[(m1, m2 - lo), col], with the
        # path (within block) of every column
        cc_list: List[torch.Tensor] = []
        colpath_list: List[torch.Tensor] = []
        for b in range(len(self.irreps_in)):
            cc, colpath = paths.block_coupling(b)
            cc_list.append(cc)
            colpath_list.append(torch.tensor(colpath, dtype=torch.long))
        self.cc_shapes = [list(c.shape) for c in cc_list]
        self.colpath_sizes = [[int(c.numel())] for c in colpath_list]
        self.register_constant("cc_flat", torch.cat([c.reshape(-1) for c in cc_list]))
        self.register_constant("colpath_flat", torch.cat(colpath_list))
        # groups of consecutive input blocks with paths that read the same harmonic degrees l_lo..l_hi-1:
        # one density GEMM each on the frozen-weight path (density_op)
        self.groups: List[List[int]] = []
        self.group_degrees: List[List[int]] = []
        for b in range(len(self.irreps_in)):
            if self.block_num_paths[b] == 0:
                continue
            degrees = self.block_l2_range[b]
            if self.groups and self.group_degrees[-1] == degrees:
                self.groups[-1].append(b)
            else:
                self.groups.append([b])
                self.group_degrees.append(degrees)
        # M_u of frozen weights kept for an exported module (:meth:`keep_frozen`); empty otherwise
        self.kept_ms_shapes: List[List[int]] = []
        self.register_buffer("kept_ms_flat", torch.zeros(0), persistent=False)

    def prepare(self, edges: EdgeData) -> List[torch.Tensor]:
        """[src (N_recv, n_max), basis (N_recv, n_max, d, K), basis of l = 0 .. l_max (N_recv, n_max, 2l+1, K)]:
        Y_lm b_k of every edge summed into its pair's slot (:func:`neighbor_matrix`; zero rows in padding)."""
        src, slot = neighbor_matrix(edges)
        n, n_max = src.shape[0], src.shape[1]
        k, d = edges.radial.shape[1], edges.sh.shape[1]
        basis = edges.sh.new_zeros(n * n_max, d, k).index_add(0, slot, sh_radial_product(edges.sh, edges.radial))
        return self._tables(src, basis.view(n, n_max, d, k))

    def _tables(self, src: torch.Tensor, basis: torch.Tensor) -> List[torch.Tensor]:
        return [src, basis] + list(torch.split(basis, [2 * l + 1 for l in range(self.sh_lmax + 1)], dim=2))

    def mix_radial(self, edges: EdgeData, mix: torch.Tensor) -> EdgeData:
        """b(r) -> b(r) ``mix``: the basis table contracted on its last axis (K -> R); the neighbour matrix is kept."""
        return edges.with_radial(
            torch.matmul(edges.radial, mix), self._tables(edges.tables[0], torch.matmul(edges.tables[1], mix))
        )

    def _basis_columns(self, tables: List[torch.Tensor], l_lo: int, l_hi: int) -> torch.Tensor:
        """Basis columns of degrees l_lo..l_hi-1 as (N, n_max, (l_hi^2 - l_lo^2) K)."""
        basis = tables[1]
        n, m, k = basis.shape[0], basis.shape[1], basis.shape[3]
        if l_lo == 0 and l_hi == self.sh_lmax + 1:
            return basis.reshape(n, m, basis.shape[2] * k)
        parts = tables[2 + l_lo : 2 + l_hi]
        cols = parts[0] if len(parts) == 1 else torch.cat(parts, dim=2)
        return cols.reshape(n, m, (l_hi * l_hi - l_lo * l_lo) * k)

    def forward(self, blocks: List[torch.Tensor], weights: torch.Tensor, edges: EdgeData) -> List[torch.Tensor]:
        cc = unflatten(self.cc_flat, self.cc_shapes)
        colpath = unflatten(self.colpath_flat, self.colpath_sizes)
        src = edges.tables[0]
        n_nodes = src.shape[0]
        chunk_atoms = self.chunk_atoms
        if chunk_atoms < 0:
            chunk_atoms = 32768 if src.is_cuda else 4096
        cache_atoms = self.cache_atoms
        if cache_atoms <= 0:
            cache_atoms = n_nodes if src.is_cuda else self.cache_atoms_cpu
        chunked = 0 < chunk_atoms < n_nodes and torch.is_grad_enabled() and not torch.jit.is_scripting()
        if torch.jit.is_scripting():
            if len(self.kept_ms_shapes) > 0:
                ms = unflatten(self.kept_ms_flat, self.kept_ms_shapes)
            else:
                ms = self._message_matrices(weights, cc, colpath)
            if not weights.requires_grad:  # frozen (an export): the operator (C++ inside LAMMPS)
                return self._grouped(blocks, ms, edges.tables, cache_atoms, True)
        else:  # frozen weights: the matrices are remembered between calls (frozen_cache)
            ms = self._frozen_message_matrices(weights, cc, colpath)
            if not chunked and not weights.requires_grad and not _compiling():
                return self._grouped(blocks, ms, edges.tables, cache_atoms, False)
        out: List[torch.Tensor] = []
        for b, x in enumerate(blocks):
            if self.block_num_paths[b] == 0:
                continue
            mul, l1 = self.irreps_in[b][0], self.irreps_in[b][1]
            rb = self._basis_columns(edges.tables, self.block_l2_range[b][0], self.block_l2_range[b][1])
            m = ms[b]
            x_flat = x.reshape(x.shape[0], mul * (2 * l1 + 1))
            x_ext = torch.cat([x_flat, x_flat.new_zeros(1, x_flat.shape[1])])  # padding row
            size = chunk_atoms if chunked else cache_atoms
            if n_nodes > size:
                # chunks by split (a slice would cost a full-size zero tensor each in the backward
                # pass); checkpointed chunks recompute their intermediates in the backward pass,
                # plain chunks just keep each chunk's density in cache for the second GEMM
                srcs = list(torch.split(src, size))
                rbs = list(torch.split(rb, size))
                if chunked:
                    y = _checkpointed_messages(x_ext, srcs, rbs, m)
                else:
                    y = torch.cat([_block_messages(x_ext, s, r, m) for s, r in zip(srcs, rbs)])
            else:
                y = _block_messages(x_ext, src, rb, m)
            out.extend(torch.split(y, self.block_path_dims[b], dim=2))
        return out

    def _message_matrices(
        self, weights: torch.Tensor, cc: List[torch.Tensor], colpath: List[torch.Tensor]
    ) -> List[torch.Tensor]:
        """Per input block, M_u[(m1 a k), c] = CC[(m1 a), c] W^(path(c))_ku: (u, m1 d' K, cols); empty without paths."""
        ms: List[torch.Tensor] = []
        for b in range(len(self.irreps_in)):
            n_paths = self.block_num_paths[b]
            if n_paths == 0:
                ms.append(weights.new_zeros(0))
                continue
            mul = self.irreps_in[b][0]
            wexp = expand_block_weights(weights, self.block_weight_offset[b], n_paths, mul, colpath[b])  # (K, u, cols)
            ccb = cc[b]  # (m1 d', cols)
            ms.append(
                (ccb.unsqueeze(0).unsqueeze(2) * wexp.transpose(0, 1).unsqueeze(1)).reshape(mul, -1, ccb.shape[1])
            )
        return ms

    @torch.jit.unused
    def message_matrices(self, weights: torch.Tensor) -> List[torch.Tensor]:
        """M_u of every input block for radial weights ``weights`` (scaled by the convolution's norm): (u, m1 d' K,
        cols), empty for a block without paths."""
        return self._message_matrices(
            weights, unflatten(self.cc_flat, self.cc_shapes), unflatten(self.colpath_flat, self.colpath_sizes)
        )

    @torch.jit.unused
    def _frozen_message_matrices(
        self, weights: torch.Tensor, cc: List[torch.Tensor], colpath: List[torch.Tensor]
    ) -> List[torch.Tensor]:
        return remembered(self, "ms", [weights], lambda: self._message_matrices(weights, cc, colpath))

    def keep_frozen(self, weights: torch.Tensor) -> None:
        """Keep M_u of these frozen (scaled) ``weights`` in the module, for a scripted export, which cannot use
        ``frozen_cache``: its calls then skip rebuilding them. The caller owns the promise that the weights
        do not change afterwards (``DeployedFacet`` holds its own frozen copy)."""
        with torch.no_grad():
            ms = self.message_matrices(weights)
        self.kept_ms_shapes = [list(m.shape) for m in ms]
        self.kept_ms_flat = torch.cat([m.reshape(-1) for m in ms])

    def _grouped(
        self, blocks: List[torch.Tensor], ms: List[torch.Tensor], tables: List[torch.Tensor], chunk: int, operator: bool
    ) -> List[torch.Tensor]:
        """Frozen weights: the blocks of each group share one Function (``density_op``; one GEMM for the
        group, a hand-written backward), called directly in eager mode and as the operator
        ``facetpot::density_group`` when scripted (``operator``)."""
        out: List[torch.Tensor] = []
        for group, degrees in zip(self.groups, self.group_degrees):
            rb = self._basis_columns(tables, degrees[0], degrees[1])
            xs = [blocks[b] for b in group]
            gms = [ms[b] for b in group]
            if operator:
                ys = torch.ops.facetpot.density_group(tables[0], rb, chunk, xs, gms)
            else:
                ys = self._group_function(xs, tables[0], rb, gms, chunk)
            for b, y in zip(group, ys):
                out.extend(torch.split(y, self.block_path_dims[b], dim=2))
        return out

    @torch.jit.unused
    def _group_function(
        self, xs: List[torch.Tensor], src: torch.Tensor, rb: torch.Tensor, ms: List[torch.Tensor], chunk: int
    ) -> List[torch.Tensor]:
        return group_messages(xs, src, rb, ms, chunk)
