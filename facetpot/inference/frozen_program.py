"""A frozen model's layers as one C++ call: the model compiled into a straight-line program of tensor operations.

    e = P(h^(0), src, basis)       h^(0) the species embedding (N, u, 1); src, basis the density backend's tables

``compile_layers`` walks the model's modules (linear maps, density convolutions, gates, grid layers, readout) and
writes, for each, the ATen calls its ``forward`` makes, on numbered registers (``md/lammps/frozen_program_op.cpp``
runs them). The operator is one autograd node: its forward runs the program without autograd, keeping the
registers; its backward is a hand-written reverse pass to the basis (and, when asked for a graph, a replay under
autograd: Hessians). Forces and stress then come from the same backward pass as before, without Python's interpreter
and autograd's bookkeeping around thousands of small operations per call (benchmarks/RESULTS.md, the note of
2026-12-07 on the engine).
``attach`` makes a prepared model run its layers this way while its weights stay frozen (the program is rebuilt
after any change of a weight, dtype or device; a model that trains, or one the program cannot express: radial
MLPs, a backend other than density, LAMMPS domains with ghost atoms, a GPU (not yet measured there), runs its
Python layers). A TorchScript export keeps the program too (``export.deployed.DeployedFacetEngine``): one LAMMPS rank
maps its ghosts to their owners and runs it in one call.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import torch

from ..model import FacetModel
from ..nn.conv.density import neighbor_matrix
from ..nn.conv_paths import block_path_weights
from ..nn.edges import EdgeData
from ..nn.flat_constants import unflatten
from ..nn.frozen_cache import module_tensors, remembered
from .engine_library import load_engine

#: opcode -> its arguments (frozen_program_op.cpp's enum Op, same numbers)
OPCODES: Dict[str, int] = {
    "linear": 1,  # out, weight, bias (-1: none), n_src, src...
    "zeros": 2,  # out, like, mul, dim
    "matmul": 3,  # out, in, param
    "basis_cols": 4,  # out, basis, first, end
    "density": 5,  # chunk, src, rb, n_blocks, blocks..., matrices..., couplings (-1: none)..., outs..., rad, sh, esrc
    "split": 6,  # in, dim, n, sizes..., outs...
    "add": 7,  # out, a, b
    "silu": 8,  # out, in, scalar
    "sigmoid": 9,  # out, in, scalar
    "gated": 10,  # out, x, gates, start, mul
    "cat": 11,  # out, dim, n, regs...
    "transpose": 12,  # out, in, dim0, dim1
    "dense": 13,  # out, in, weight, bias
    "quadratic": 14,  # out, in
    "narrow": 15,  # out, in, dim, start, length
    "flatten": 16,  # out, in
}
#: the input registers: layer-0 features, neighbour matrix, basis table; for edge-first density steps
#: (:func:`slot_tables`, else undefined) a neighbour matrix of one edge per slot, its slots' radial basis and harmonics
FEATURES, SRC, BASIS, RADIAL_SLOTS, SH_SLOTS, EDGE_SRC = 0, 1, 2, 3, 4, 5
#: edges per distinct neighbour up to which the density steps run edge first: their cost grows with the edges, the
#: density's with the distinct neighbours (periodic images share one); at one edge per neighbour edge first is
#: 1.4x faster (Si 512, 2 threads, benchmarks/engine_variants.py, 2026-12-08); with this threshold 150 stressed
#: MPtrj frames one by one took less in sum than without edge first (RESULTS.md, the note of 2026-12-08 on edge
#: first; other thresholds not measured)
EDGE_FIRST_RATIO = 1.5


class Unsupported(ValueError):
    """The model has a part the program cannot express (it then runs its Python layers)."""


class Program:
    """Registers, instructions, frozen tensors and float constants being written."""

    def __init__(self):
        self.num_registers = 6
        self.code: List[int] = []
        self.params: List[torch.Tensor] = []
        self.scalars: List[float] = []

    def register(self) -> int:
        self.num_registers += 1
        return self.num_registers - 1

    def param(self, t: Optional[torch.Tensor]) -> int:
        if t is None:
            return -1
        self.params.append(t.detach().contiguous())
        return len(self.params) - 1

    def scalar(self, value: float) -> int:
        self.scalars.append(float(value))
        return len(self.scalars) - 1

    def emit(self, op: str, *args: int) -> None:
        self.code += [OPCODES[op], len(args), *[int(a) for a in args]]

    def op(self, op: str, *args: int) -> int:
        """An instruction with one output register (its first argument), returned."""
        out = self.register()
        self.emit(op, out, *args)
        return out


def _linear(p: Program, lin, regs: List[int]) -> List[int]:
    """IrrepsLinear.forward: per output irrep, its sources' channels side by side times W / sqrt(fan_in) (+ bias)."""
    out: List[int] = []
    for k, w in enumerate(lin.weights):
        src = lin.sources[k]
        mul, l = lin.irreps_out[k][0], lin.irreps_out[k][1]
        if not src:
            out.append(p.op("zeros", regs[0], mul, 2 * l + 1))
            continue
        bias = lin.biases[k] if lin.has_bias[k] else None
        out.append(p.op("linear", p.param(w * lin.norms[k]), p.param(bias), len(src), *[regs[i] for i in src]))
    return out


def channel_factors(backend, weights: torch.Tensor, b: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Block b's M_u in factored form, as the engine's channel step takes it (density_group_op.cpp, Coupling):

        M_u[r K + k, c] = sum_{(r, p, c, v)} v W[u, p, k]

    W (u, P, K) the block's radial weights per path (``weights`` scaled by the convolution's norm), and the coupling
    table (1 + n, 4) float64: a header (rows, P, cols, 0), then one row (r, p, c, v) per non-zero v = CC[r, c] of the
    block's CG tensors side by side (``ConvolutionPaths.block_coupling``), r = m1 d' + a, p the path of column c."""
    mul, n_paths = backend.irreps_in[b][0], backend.block_num_paths[b]
    w = block_path_weights(weights, backend.block_weight_offset[b], n_paths, mul)
    cc = unflatten(backend.cc_flat, backend.cc_shapes)[b].to(torch.float64)
    colpath = unflatten(backend.colpath_flat, backend.colpath_sizes)[b]
    rows, cols = torch.nonzero(cc, as_tuple=True)
    entries = torch.stack([rows.double(), colpath[cols].double(), cols.double(), cc[rows, cols]], dim=1)
    header = torch.tensor([[cc.shape[0], n_paths, cc.shape[1], 0.0]], dtype=torch.float64)
    return w.contiguous(), torch.cat([header, entries])


def _convolution(p: Program, conv, regs: List[int], factored: bool, chunk: Optional[int]) -> List[int]:
    """ChannelwiseConvolution with the density backend's grouped Function (DensityBackend._grouped), each block's
    channel step in factored form (:func:`channel_factors`) unless ``factored`` is False (M_u as it is)."""
    backend = conv.backend
    if conv.radial_mlp is not None or backend.name != "density":
        raise Unsupported(f"a convolution with {'radial MLPs' if conv.radial_mlp is not None else backend.name}")
    mix = p.param(conv.radial_mix) if conv.radial_rank > 0 else -1
    rb_all = p.op("matmul", BASIS, mix) if mix >= 0 else BASIS
    rad = p.op("matmul", RADIAL_SLOTS, mix) if mix >= 0 else RADIAL_SLOTS  # undefined where slots are not given
    weights = conv.radial_weight.detach() * conv.norm
    ms = None if factored else backend.message_matrices(weights)
    # receiving atoms per chunk: the backend's CPU choice (the engine runs on the CPU: run_layers)
    chunk = chunk or (backend.cache_atoms if backend.cache_atoms > 0 else backend.cache_atoms_cpu)
    mid: List[int] = []
    for group, degrees in zip(backend.groups, backend.group_degrees):
        cols = p.op("basis_cols", rb_all, degrees[0] ** 2, degrees[1] ** 2)
        outs = [p.register() for _ in group]
        blocks = [regs[b] for b in group]
        if factored:
            forms = [channel_factors(backend, weights, b) for b in group]
            matrices, couplings = [p.param(w) for w, _ in forms], [p.param(c) for _, c in forms]
            sh = p.op("narrow", SH_SLOTS, 2, degrees[0] ** 2, degrees[1] ** 2 - degrees[0] ** 2)
            edge = [rad, sh, EDGE_SRC]
        else:
            matrices, couplings, edge = [p.param(ms[b]) for b in group], [-1] * len(group), [-1, -1, -1]
        p.emit("density", chunk, SRC, cols, len(group), *blocks, *matrices, *couplings, *outs, *edge)
        for b, y in zip(group, outs):
            dims = backend.block_path_dims[b]
            pieces = [p.register() for _ in dims]
            p.emit("split", y, 2, len(dims), *dims, *pieces)
            mid += pieces
    return mid


def _gate(p: Program, gate, regs: List[int]) -> List[int]:
    out = [p.op("silu", regs[0], p.scalar(gate.silu_norm))]
    if gate.num_gates > 0:
        if gate.activation == "silu":
            gates = p.op("silu", regs[1], p.scalar(gate.silu_norm))
        else:
            gates = p.op("sigmoid", regs[1], p.scalar(gate.sigmoid_norm))
        start = 0
        for k, mul in enumerate(gate.gated_muls):
            out.append(p.op("gated", regs[2 + k], gates, start, mul))
            start += mul
    return out


def _grid_mixing(p: Program, mixing, regs: List[int]) -> List[int]:
    """S2GridMixing.forward (unfused): lift, to the grid, MLP per grid point, back, down."""
    lifted = _linear(p, mixing.lift, regs)
    lifted = p.op("cat", 2, len(lifted), *lifted)
    grid = p.op("transpose", p.op("matmul", lifted, p.param(mixing.to_grid)), 1, 2)
    h = p.op("dense", grid, p.param(mixing.mlp_in.weight), p.param(mixing.mlp_in.bias))
    h = p.op("quadratic", h) if mixing.activation == "quadratic" else p.op("silu", h, p.scalar(1.0))
    grid = p.op("transpose", p.op("dense", h, p.param(mixing.mlp_out.weight), p.param(mixing.mlp_out.bias)), 1, 2)
    coeffs = p.op("matmul", grid, p.param(mixing.from_grid))
    back = [p.op("narrow", coeffs, 2, l * l, 2 * l + 1) for l in range(mixing.lmax + 1)]
    return _linear(p, mixing.down, regs + back)


def _interaction(p: Program, layer, regs: List[int], factored: bool, chunk: Optional[int]) -> List[int]:
    """InteractionBlock.forward, every atom receiving."""
    mixed = _linear(p, layer.linear_in, regs) if layer.linear_in is not None else regs
    msg = _linear(p, layer.linear_out, _convolution(p, layer.conv, mixed, factored, chunk))
    sc = _linear(p, layer.self_connection, regs)
    y = [p.op("add", a, b) for a, b in zip(msg, sc)]
    if layer.gate is not None:
        return _gate(p, layer.gate, y)
    if layer.mixing is not None:
        if layer.mixing.fused:
            raise Unsupported("the fused (Triton) grid layer")
        return _grid_mixing(p, layer.mixing, y)
    return [p.op("silu", y[0], p.scalar(layer.silu_norm))]


def compile_layers(model: FacetModel, factored: bool = True, chunk: Optional[int] = None) -> Program:
    """The program of ``model.readouts``: embedding features in, e(h^(T)) (N,) out. Unsupported if it cannot.
    ``factored``: channel steps in :func:`channel_factors`' form (else M_u); ``chunk``: receiving atoms per density
    chunk (None: the backend's CPU choice). Both change the speed only (benchmarks/engine_variants.py)."""
    with torch.no_grad():
        p = Program()
        regs = [FEATURES]
        for layer in model.layers:
            regs = _interaction(p, layer, regs, factored, chunk)
        result = p.op("flatten", _linear(p, model.readout, regs)[0])
        p.code = [p.num_registers, result] + p.code
    return p


def _program_of(model: FacetModel) -> Optional[Program]:
    try:
        return compile_layers(model)
    except Unsupported:
        return None


def run_layers(model: FacetModel, features: torch.Tensor, edges) -> Optional[torch.Tensor]:
    """e(h^(T)) by the compiled program, or None where the Python layers must run (weights that train, a model the
    program cannot express, ghost atoms, no edges, a GPU)."""
    sources = module_tensors(model)  # parameters and buffers (a new backend brings new buffers, same weights)
    if torch.compiler.is_compiling() or any(t.requires_grad for t in sources):
        return None
    if features.device.type != "cpu" or edges.num_receivers != edges.num_senders or edges.num_edges() == 0:
        return None  # GPUs: not yet measured there
    program = remembered(model, "frozen_program", sources, lambda: _program_of(model))
    if program is None:
        return None
    return run_program(program, features, edges)


def run_program(program: Program, features: torch.Tensor, edges, edge_first: bool = True) -> torch.Tensor:
    """e(h^(T)) (N,) of ``program`` (:func:`compile_layers`) on the layer-0 features and the density tables of
    ``edges``, by the C++ operator (autograd through its hand-written reverse pass); its density steps edge first
    where the graph has few edges per distinct neighbour (:func:`slot_tables`) unless ``edge_first`` is False (the
    same numbers: benchmarks/engine_variants.py)."""
    slots = slot_tables(edges) if edge_first else []
    return torch.ops.facetpot.frozen_program(
        features, edges.tables[0], edges.tables[1], program.params, program.code, program.scalars, slots
    )


def slot_tables(edges: EdgeData, ratio: float = EDGE_FIRST_RATIO) -> List[torch.Tensor]:
    """[radial basis (N, n, K), harmonics (N, n, d), senders (N, n)] of a neighbour matrix with one edge per slot, for
    the edge-first density steps, where the graph has at most ``ratio`` edges per distinct neighbour; []
    otherwise (the density steps then sum periodic images into one slot). Those steps' gradients flow through
    these, not through the basis table."""
    src = edges.tables[0]
    pairs, num_edges = int((src < edges.num_senders).sum()), edges.num_edges()
    if num_edges == 0 or num_edges > ratio * pairs:
        return []
    src, slot = neighbor_matrix(edges, merge_images=False)
    n, rad, sh = src.numel(), edges.radial, edges.sh
    rad = rad.new_zeros([n, rad.shape[1]]).index_copy(0, slot, rad)
    sh = sh.new_zeros([n, sh.shape[1]]).index_copy(0, slot, sh)
    return [rad.view([src.shape[0], src.shape[1], -1]), sh.view([src.shape[0], src.shape[1], -1]), src]


def attach(model: FacetModel) -> FacetModel:
    """Let ``model`` (prepared, frozen) run its layers by the C++ engine where it can (``engine_library``:
    ``FACETPOT_ENGINE``); unchanged where the engine is unavailable."""
    if load_engine():
        model.use_layer_runner(run_layers)
    return model
