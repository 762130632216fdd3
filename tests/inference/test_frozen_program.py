"""The C++ inference engine (``facetpot::frozen_program``): the same energies, forces, stress and Hessians as the
Python layers, for every kind of layer the program expresses, and the Python layers wherever it cannot run."""

import gc
import os
import subprocess
import sys
import weakref

import numpy as np
import pytest
import torch
from ase.build import bulk

from facetpot.derivatives import compute_properties
from facetpot.hessian import hessian
from facetpot.inference.engine_library import load_engine
from facetpot.inference.frozen_program import (
    EDGE_FIRST_RATIO,
    OPCODES,
    channel_factors,
    compile_layers,
    run_layers,
    slot_tables,
)
from facetpot.inference.prepare import inference_model
from facetpot.structure.graph import atoms_list_to_graph
from facetpot.testing import SEVENNET_LIKE, awkward_structures, small_model

pytestmark = pytest.mark.skipif(not load_engine(), reason="the C++ engine cannot be built here")

KINDS = {
    "s2 grid, quadratic": {},
    "s2 grid, silu, parity off": dict(grid_activation="silu", parity=False),
    "gate, sigmoid, rank 3, self-connection bias": dict(nonlinearity="gate", radial_rank=3),
    # the shipped trims' options (spline radial weights, no first Linear_in, SiLU gates, ranks per layer)
    "trim-like": {
        **SEVENNET_LIKE,
        "radial": "spline",
        "radial_rank": [4, 3, 3, 3, 3],
        "first_linear_in": False,
        "self_connection_bias": False,
        "species": [1, 6, 8, 13, 14, 29],
        "cutoff": 4.0,
        "cutoff_on": 3.5,
    },
    # a SevenNet-MF port's fidelity: biases on Linear_in and the self-connection (made non-zero below)
    "linear_in bias": dict(nonlinearity="gate", linear_in_bias=True, self_connection_bias=True),
}


def _structures():
    si = bulk("Si", "diamond", a=5.43) * (2, 2, 2)  # 16 atoms
    si.rattle(0.05, seed=1)
    cu = bulk("Cu", "fcc", a=3.6, cubic=True) * (3, 3, 2)  # 72 atoms: two density chunks of 48
    cu.rattle(0.05, seed=2)
    return [si, cu] + list(awkward_structures().values())


def _both(model, graph, **options):
    """(Python layers, engine) results of one prepared model."""
    model.use_layer_runner(None)
    ref = compute_properties(model, graph, **options)
    model.use_layer_runner(run_layers)
    return ref, compute_properties(model, graph, **options)


@pytest.mark.parametrize("kind", list(KINDS))
def test_engine_equals_the_python_layers(kind):
    model = small_model(**KINDS[kind])
    with torch.no_grad():  # biases start at zero: give them values, or a dropped bias would not show
        for name, p in model.named_parameters():
            if ".biases." in name:
                p.normal_(0.0, 0.3, generator=torch.Generator().manual_seed(len(name)))
    prepared = inference_model(model)
    program = compile_layers(prepared)
    assert program is not None
    # the factored channel steps (density_group_op.cpp) are what is compared
    assert len(_couplings(program)) == sum(len(g) for layer in prepared.layers for g in layer.conv.backend.groups)
    graph = atoms_list_to_graph(_structures(), prepared.cutoff, min_distance=0.0)
    ref, out = _both(prepared, graph, forces=True, stress=None, virials=True)
    for key in ("energy", "energies", "forces", "virials"):
        torch.testing.assert_close(out[key], ref[key], rtol=1e-9, atol=1e-9, msg=key)
    assert float(ref["forces"].abs().max()) > 0.1  # forces that can disagree


@pytest.mark.parametrize("threads", [1, 2])
def test_engine_equals_the_python_layers_on_one_thread_and_two(threads):
    """From ATOMS_PER_THREAD (4) receiving atoms per thread the engine's backward splits the atoms between threads,
    each adding to its own copy of the senders' gradient (density_group_op.cpp fused_backward): the same forces and
    virials as the Python layers whether one thread or two run it."""
    prepared = inference_model(small_model(**KINDS["trim-like"]))
    graph = atoms_list_to_graph(_structures(), prepared.cutoff, min_distance=0.0)
    assert graph.num_atoms >= 2 * 32
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        ref, out = _both(prepared, graph, forces=True, stress=None, virials=True)
    finally:
        torch.set_num_threads(before)
    for key in ("energies", "forces", "virials"):
        torch.testing.assert_close(out[key], ref[key], rtol=1e-9, atol=1e-9, msg=key)


def _edge_first_cells():
    si = bulk("Si", "diamond", a=5.43) * (3, 3, 3)  # 54 atoms, 11.5 A wide: one edge per neighbour
    si.rattle(0.05, seed=3)
    narrow = bulk("Si", "diamond", a=5.43, cubic=True) * (2, 2, 1)  # 5.4 A high: 4/3 edges per neighbour
    narrow.rattle(0.05, seed=4)
    return {"one edge per neighbour": (si, False), "images sharing neighbours": (narrow, True)}


@pytest.mark.parametrize("kind", ["s2 grid, quadratic", "trim-like"])
@pytest.mark.parametrize("cell", list(_edge_first_cells()))
def test_edge_first_density_steps_equal_the_python_layers(kind, cell):
    """Up to EDGE_FIRST_RATIO edges per distinct neighbour the density steps run edge first (``slot_tables``: a
    neighbour matrix of one edge per slot; density_group_op.cpp, EdgeKernel): the same energies, forces and virials
    as the Python layers. A small cell, whose periodic images crowd its few neighbours, gets no slot tables."""
    prepared = inference_model(small_model(**KINDS[kind]))
    atoms, shared = _edge_first_cells()[cell]
    graph = atoms_list_to_graph([atoms], prepared.cutoff)
    edges = _edges(prepared, graph)
    tables = slot_tables(edges)
    assert [t.shape[2] for t in tables[:2]] == [edges.radial.shape[1], edges.sh.shape[1]]
    assert int((tables[2] < graph.num_atoms).sum()) == edges.num_edges()  # every edge in a slot of its own
    ratio = edges.num_edges() / int((edges.tables[0] < graph.num_atoms).sum())
    assert (1.0 < ratio <= EDGE_FIRST_RATIO) if shared else ratio == 1.0
    assert slot_tables(_edges(prepared, atoms_list_to_graph([bulk("Cu", "fcc", a=3.6)], prepared.cutoff))) == []
    ref, out = _both(prepared, graph, forces=True, stress=None, virials=True)
    for key in ("energy", "energies", "forces", "virials"):
        torch.testing.assert_close(out[key], ref[key], rtol=1e-9, atol=1e-9, msg=key)
    assert float(ref["forces"].abs().max()) > 0.1


def _couplings(program):
    """The coupling tables (factored channel steps) the program's density instructions pass."""
    code, pc, out = program.code, 2, []
    while pc < len(code):
        op, args = code[pc], code[pc + 2 : pc + 2 + code[pc + 1]]
        if op == OPCODES["density"]:
            nb = args[3]
            out += [program.params[k] for k in args[4 + 2 * nb : 4 + 3 * nb] if k >= 0]
        pc += 2 + code[pc + 1]
    return out


def factored_matrix(w: torch.Tensor, coupling: torch.Tensor) -> torch.Tensor:
    """M_u (u, rows K, cols) of a factored form (``channel_factors``), by its formula, entry by entry."""
    rows, _, cols = (int(v) for v in coupling[0, :3])
    m = w.new_zeros(w.shape[0], rows, w.shape[2], cols)
    for r, p, c, v in coupling[1:].tolist():
        m[:, int(r), :, int(c)] += v * w[:, int(p), :]
    return m.reshape(w.shape[0], rows * w.shape[2], cols)


def test_channel_factors_rebuild_the_message_matrices():
    """Every block's factored form (W per path, the CG non-zeros) gives back the backend's M_u, and holds the CG
    tensors' non-zeros only (a tenth of M_u's entries for l > 0)."""
    model = inference_model(small_model(**KINDS["trim-like"]))
    checked = 0
    for layer in model.layers:
        conv = layer.conv
        weights = conv.radial_weight.detach() * conv.norm
        ms = conv.backend.message_matrices(weights)
        for b, m in enumerate(ms):
            if conv.backend.block_num_paths[b] == 0:
                continue
            w, coupling = channel_factors(conv.backend, weights, b)
            torch.testing.assert_close(factored_matrix(w, coupling), m, rtol=1e-12, atol=1e-15)
            assert coupling.shape[0] - 1 == int(
                (m.reshape(m.shape[0], -1, w.shape[2], m.shape[2])[0].abs().sum(1) > 0).sum()
            )
            checked += 1
    assert checked >= 10


def test_engine_runs_and_is_used():
    """The engine's result is the engine's: a weight changed behind the program's back (same storage, a new
    version) is seen, and a runner that returns nonsense would show."""
    prepared = inference_model(small_model())
    graph = atoms_list_to_graph(_structures()[:1], prepared.cutoff)
    before = compute_properties(prepared, graph)["energy"].detach()
    with torch.no_grad():
        prepared.layers[0].conv.radial_weight.mul_(1.5)
    ref, out = _both(prepared, graph)
    torch.testing.assert_close(out["energy"], ref["energy"], rtol=1e-10, atol=1e-10)
    assert abs(float(out["energy"].detach() - before)) > 1e-3
    prepared.use_layer_runner(lambda model, features, edges: run_layers(model, features, edges) + 1.0)
    shifted = compute_properties(prepared, graph)["energy"].detach()
    assert abs(float(shifted - ref["energy"].detach())) > 1e-3


def test_hessian_through_the_engine_equals_the_python_layers():
    """Second derivatives: the engine's backward replays the program under autograd when asked for a graph."""
    prepared = inference_model(small_model(nonlinearity="gate", radial_rank=3))
    atoms = bulk("Si", "diamond", a=5.43)
    atoms.rattle(0.1, seed=3)
    graph = atoms_list_to_graph([atoms], prepared.cutoff)
    prepared.use_layer_runner(None)
    ref = hessian(prepared, graph)
    prepared.use_layer_runner(run_layers)
    torch.testing.assert_close(hessian(prepared, graph), ref, rtol=1e-8, atol=1e-8)
    assert float(ref.abs().max()) > 0.1


def test_float32_engine_within_round_off_of_float64():
    model = small_model(nonlinearity="gate", radial_rank=3)
    graph = atoms_list_to_graph(_structures()[:2], model.cutoff)
    exact = compute_properties(inference_model(model, dtype="float64"), graph)
    single = compute_properties(inference_model(model, dtype="float32"), graph)
    np.testing.assert_allclose(single["forces"].double().numpy(), exact["forces"].numpy(), atol=2e-4)


def test_a_call_leaves_nothing_alive():
    """The engine's autograd node must not hold its own output: that cycle kept every call's registers alive
    (~4 MB per MD step of 16 atoms in float64, 19 GB after a few thousand steps)."""
    prepared = inference_model(small_model())
    graph = atoms_list_to_graph(_structures()[:1], prepared.cutoff)
    features = prepared.embed(prepared.species_index(graph.numbers))[0]
    vectors = graph.edge_vectors().to(prepared.dtype).requires_grad_(True)
    with torch.enable_grad():
        n = graph.num_atoms
        out = run_layers(prepared, features, prepared.edges(graph.edge_index, vectors, n, n))
        assert out is not None and out.grad_fn is not None
    alive = weakref.ref(out)
    del out
    gc.collect()
    assert alive() is None


@pytest.mark.parametrize("cell", ["one atom", "two atoms"])
def test_calls_leave_the_weights_as_they_were(cell):
    """A structure of one or two atoms runs the linear maps as loops (a few rows): they must write into buffers of
    their own, never into a weight (the bias of a one-row map was once the output buffer: the first call of a
    one-atom cell changed the model, every later call went wrong). Same results call after call, weights unchanged."""
    prepared = inference_model(small_model(**KINDS["linear_in bias"]))
    with torch.no_grad():
        for name, p in prepared.named_parameters():
            if ".biases." in name:
                p.normal_(0.0, 0.3, generator=torch.Generator().manual_seed(len(name)))
    before = {k: v.clone() for k, v in prepared.state_dict().items()}
    atoms = bulk("Cu", "fcc", a=3.6) if cell == "one atom" else bulk("Si", "diamond", a=5.43)
    prepared.use_layer_runner(run_layers)
    results = []
    for strain in (0.0, 0.01, 0.0):
        a = atoms.copy()
        a.set_cell(a.cell * (1 + strain), scale_atoms=True)
        graph = atoms_list_to_graph([a], prepared.cutoff)
        results.append(compute_properties(prepared, graph, stress=True))
    for k, v in prepared.state_dict().items():
        assert torch.equal(v, before[k]), k
    torch.testing.assert_close(results[2]["stress"], results[0]["stress"], rtol=0, atol=0)
    prepared.use_layer_runner(None)
    ref = compute_properties(prepared, atoms_list_to_graph([atoms], prepared.cutoff), stress=True)
    torch.testing.assert_close(results[0]["stress"], ref["stress"], rtol=1e-9, atol=1e-12)


def test_python_layers_where_the_program_cannot_run():
    # radial MLPs (a SevenNet port) are not expressed: no program, the Python layers
    port = inference_model(small_model(**SEVENNET_LIKE, species=[14]))
    assert port.backend == "edgewise"
    graph = atoms_list_to_graph([bulk("Si", "diamond", a=5.43)], port.cutoff)
    assert run_layers(port, port.embed(port.species_index(graph.numbers))[0], _edges(port, graph)) is None
    # weights that train: the Python layers (the program has no weight gradients)
    model = small_model()
    model.use_layer_runner(run_layers)
    assert run_layers(model, model.embed(model.species_index(graph.numbers))[0], _edges(model, graph)) is None


def _edges(model, graph):
    n = graph.num_atoms
    return model.edges(graph.edge_index, graph.edge_vectors().to(model.dtype), n, n)


def test_engine_choice_from_the_environment():
    """FACETPOT_ENGINE=python never builds; a failing compiler falls back with one warning (auto) or stops (cpp)."""
    code = (
        "import warnings, facetpot.inference.engine_library as e\n"
        "with warnings.catch_warnings(record=True) as w:\n"
        "    warnings.simplefilter('always')\n"
        "    ok = e.load_engine()\n"
        "print(ok, len(w), str(w[0].message)[:60] if w else '')\n"
    )

    def run(**env):
        full = {**os.environ, **env}
        return subprocess.run([sys.executable, "-c", code], env=full, capture_output=True, text=True)

    assert run(FACETPOT_ENGINE="python").stdout.startswith("False 0")
    no_compiler = dict(CXX="/nonexistent/g++", FACETPOT_CACHE=os.environ.get("TMPDIR", "/tmp") + "/facetpot-no-cxx")
    out = run(FACETPOT_ENGINE="auto", **no_compiler)
    assert out.stdout.startswith("False 1 facetpot: the C++ inference engine is unavailable"), out.stdout + out.stderr
    out = run(FACETPOT_ENGINE="cpp", **no_compiler)
    assert out.returncode != 0 and "no C++ compiler" in out.stderr


def test_engine_cache_is_kept_per_kind_of_cpu(monkeypatch):
    """The engine is built for this machine's instruction set (-march=native): a cache shared with a machine of
    another CPU (another model or flags) must give it a build of its own, not ours."""
    from facetpot.inference import engine_library

    src = engine_library.source_dir()
    assert "-march=native" in engine_library.compiler_flags(src)
    here = engine_library.build_key(src)
    assert engine_library.build_key(src) == here
    monkeypatch.setattr(engine_library, "cpu_signature", lambda: "model name : another CPU\nflags : sse2")
    assert engine_library.build_key(src) != here
