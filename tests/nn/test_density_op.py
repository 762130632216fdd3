"""The density backend's Function (hand-written backward, frozen weights) against the plain formulation:
values, first derivatives for every chunk size, gradcheck, and the second derivative it delegates."""

import pytest
import torch

from facetpot.nn.conv.density_op import group_messages, plain_group_messages

from facetpot.testing import model_outputs, small_model, awkward_structures


def random_group(seed=0, n_send=9, n_recv=7, n_slot=11, r=12):
    """Three blocks (u, m1) = (4, 1), (3, 3), (2, 5); a neighbour matrix with padding (index n_send), an
    atom with no neighbours, repeated senders and one receiver with every slot filled."""
    g = torch.Generator().manual_seed(seed)
    dims = [(4, 1), (3, 3), (2, 5)]
    blocks = [torch.randn(n_send, u, m, generator=g, dtype=torch.float64) for u, m in dims]
    src = torch.randint(0, n_send, (n_recv, n_slot), generator=g)
    src[0, 5:] = n_send  # padding
    src[1] = n_send  # isolated receiver
    src[2, :4] = 3  # the same neighbour four times
    rb = torch.randn(n_recv, n_slot, r, generator=g, dtype=torch.float64)
    ms = [torch.randn(u, m * r, cols, generator=g, dtype=torch.float64) for (u, m), cols in zip(dims, (5, 7, 3))]
    return blocks, src, rb, ms


@pytest.mark.parametrize("chunk", [1, 3, 7, 100])
def test_values_and_gradients_match_the_plain_formulation(chunk):
    blocks, src, rb, ms = random_group()
    leaves = [b.clone().requires_grad_(True) for b in blocks] + [rb.clone().requires_grad_(True)]
    ref_leaves = [t.detach().clone().requires_grad_(True) for t in leaves]
    ys = group_messages(leaves[:3], src, leaves[3], ms, chunk)
    ref = plain_group_messages(ref_leaves[:3], src, ref_leaves[3], ms)
    g = torch.Generator().manual_seed(1)
    cot = [torch.randn(y.shape, generator=g, dtype=y.dtype) for y in ref]
    for y, y_ref in zip(ys, ref):
        assert torch.allclose(y, y_ref, atol=1e-12)
    grads = torch.autograd.grad(ys, leaves, cot)
    grads_ref = torch.autograd.grad(ref, ref_leaves, cot)
    for a, b in zip(grads, grads_ref):
        assert torch.allclose(a, b, atol=1e-12)
    # padding slots see a zero feature row: no message, no basis gradient; filled slots have both
    assert all(y[1].abs().max() == 0 for y in ys) and grads[3][1].abs().max() == 0 and grads[3][0, 5:].abs().max() == 0
    assert grads[3][2].abs().min() > 0


def test_gradcheck_and_gradgradcheck():
    blocks, src, rb, ms = random_group(seed=2, n_send=5, n_recv=4, n_slot=6, r=6)
    leaves = [b.requires_grad_(True) for b in blocks] + [rb.requires_grad_(True)]

    def f(*t):
        return tuple(group_messages(list(t[:3]), src, t[3], ms, 2))

    assert torch.autograd.gradcheck(f, leaves)
    assert torch.autograd.gradgradcheck(f, leaves)


def test_trainable_weights_take_the_plain_path():
    """The Function has no weight gradient: a model whose weights require gradients (training) must not use it,
    and its weight gradients equal those of the edge-wise reference."""
    model = small_model()
    atoms = awkward_structures()["triclinic"]
    from facetpot.structure.graph import atoms_to_graph
    from facetpot.derivatives import compute_properties

    grads = {}
    for name in ("density", "edgewise"):
        model.set_backend(name)
        model.zero_grad()
        out = compute_properties(model, atoms_to_graph(atoms, model.cutoff, dtype=model.dtype), create_graph=True)
        (out["energy"].sum() + out["forces"].pow(2).sum()).backward()
        grads[name] = [p.grad.clone() for p in model.parameters() if p.grad is not None]
    for a, b in zip(grads["density"], grads["edgewise"]):
        assert torch.allclose(a, b, atol=1e-10, rtol=1e-9)


def test_frozen_model_matches_edgewise_for_every_chunk_size():
    """Frozen weights (the calculator, MD, relaxation) run the Function: energies, forces, stress and
    per-atom virials equal the edge-wise reference's, whatever the chunk."""
    model = small_model()
    model.requires_grad_(False)
    for name, atoms in awkward_structures().items():
        model.set_backend("edgewise")
        ref = model_outputs(model, atoms)
        for chunk in (1, 5, 1000):
            model.set_backend("density", cache_atoms=chunk)
            out = model_outputs(model, atoms)
            for k in ref:
                assert torch.allclose(out[k], ref[k], atol=1e-11, rtol=1e-11), (name, chunk, k)


def test_chunks_read_only_their_own_neighbour_width():
    """In a graph of mixed structures a chunk reads only as many neighbour slots as its densest atom has: the
    widths are the chunks' largest neighbour counts, and the batch still equals the edge-wise reference
    (with gradients of zero in the slots a chunk skips)."""
    from facetpot.structure.graph import atoms_list_to_graph
    from facetpot.nn.conv.density_op import _chunks
    from facetpot.derivatives import compute_properties

    model = small_model()
    model.requires_grad_(False)
    parts = list(awkward_structures().values())
    graph = atoms_list_to_graph(parts, model.cutoff, dtype=model.dtype)
    counts = torch.bincount(graph.edge_index[0], minlength=graph.num_atoms)
    src = torch.full((graph.num_atoms, int(counts.max())), graph.num_atoms)
    for i, c in enumerate(counts.tolist()):
        src[i, :c] = 0
    chunks = _chunks(src, graph.num_atoms, 5)
    assert [w for _, _, w in chunks] == [int(counts[a:b].max()) for a, b, _ in chunks]
    assert min(w for _, _, w in chunks) < src.shape[1]  # some chunk is narrower than the graph's widest atom
    model.set_backend("edgewise")
    ref = compute_properties(model, graph, virials=True)
    model.set_backend("density", cache_atoms=5)
    out = compute_properties(model, graph, virials=True)
    for k in ref:  # (the molecule's stress is NaN in both)
        assert torch.allclose(out[k], ref[k], atol=1e-11, rtol=1e-11, equal_nan=True), k


def test_remembered_matrices_follow_weight_changes():
    """With frozen weights the scaled weights and the per-channel matrices are remembered between calls; an
    in-place change of a weight, a dtype change, or unfreezing recomputes them (results equal a fresh model)."""
    import copy

    model = small_model(radial_rank=3)
    model.requires_grad_(False)
    atoms = awkward_structures()["triclinic"]
    first = model_outputs(model, atoms)
    assert torch.equal(model_outputs(model, atoms)["energy"], first["energy"])  # second call: remembered matrices
    assert "ms" in model.layers[1].conv.backend.__dict__["_frozen_cache"]
    with torch.no_grad():
        model.layers[1].conv.radial_weight.mul_(1.5)
        model.layers[0].conv.radial_mix.add_(0.1)
    changed = model_outputs(model, atoms)
    fresh = model_outputs(copy.deepcopy(model), atoms)
    assert not torch.allclose(changed["energy"], first["energy"])
    for k in fresh:
        assert torch.allclose(changed[k], fresh[k], atol=1e-12), k
    model.requires_grad_(True)  # training again: nothing remembered is used
    with torch.no_grad():
        model.layers[1].conv.radial_weight.mul_(2.0)
    model.requires_grad_(False)
    fresh = model_outputs(copy.deepcopy(model), atoms)
    again = model_outputs(model, atoms)
    for k in fresh:
        assert torch.allclose(again[k], fresh[k], atol=1e-12), k


CPP_CHECK = r"""
import sys
import torch
torch.ops.load_library(sys.argv[1])  # before facetpot: its own registration then stands aside
import facetpot.nn.conv.density_op as op
from test_density_op import random_group
assert op._LIBRARY is None, "facetpot registered its Python operator over the C++ one"
worst = 0.0
for seed, chunk, dims in ((0, 1, None), (0, 3, None), (0, 100, None), (3, 2, 1)):
    blocks, src, rb, ms = random_group(seed=seed)
    if dims:  # one block of scalars alone: the backward's short cut
        blocks, ms = blocks[:1], ms[:1]
    leaves = [b.clone().requires_grad_(True) for b in blocks] + [rb.clone().requires_grad_(True)]
    ys = torch.ops.facetpot.density_group(src, leaves[-1], chunk, leaves[:-1], ms)
    assert "CppFunction" in type(ys[0].grad_fn).__name__, type(ys[0].grad_fn)
    ref_leaves = [t.detach().clone().requires_grad_(True) for t in leaves]
    ref = op.plain_group_messages(ref_leaves[:-1], src, ref_leaves[-1], ms)
    cot = [torch.randn_like(y) for y in ref]
    got, want = torch.autograd.grad(ys, leaves, cot), torch.autograd.grad(ref, ref_leaves, cot)
    worst = max([worst] + [float((a - b).abs().max()) for a, b in zip(list(ys) + list(got), list(ref) + list(want))])
    assert float(got[-1].abs().max()) > 0 and float(got[0].abs().max()) > 0
# only the features need a gradient (layer 0 in LAMMPS has none: then only the basis)
blocks, src, rb, ms = random_group(seed=1)
x = [b.clone().requires_grad_(i == 1) for i, b in enumerate(blocks)]
g = torch.autograd.grad(torch.ops.facetpot.density_group(src, rb, 3, x, ms)[1].sum(), x[1])[0]
g_ref = torch.autograd.grad(op.plain_group_messages(x, src, rb, ms)[1].sum(), x[1])[0]
worst = max(worst, float((g - g_ref).abs().max()))
print("WORST", worst)
"""


def test_cpp_operator_matches_the_python_one(tmp_path):
    """The LAMMPS plugin's C++ transcription of the Function (md/lammps/density_group_op.cpp), compiled alone and
    loaded before facetpot in a fresh process: values and first derivatives equal the plain formulation for
    every chunk size (trimmed widths, an isolated receiver, a lone scalar block, inputs without gradients)."""
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    from facetpot.lammps.build import build_operator_library

    if shutil.which("g++") is None:
        pytest.skip("no C++ compiler")
    lib = build_operator_library(tmp_path / "libfacet_density_group.so")
    script = tmp_path / "check.py"
    script.write_text(CPP_CHECK)
    here = Path(__file__).resolve().parent  # test_density_op itself, tests/ for conftest, the package under test
    path = os.pathsep.join([str(here), str(here.parent), str(here.parents[1])])
    proc = subprocess.run(
        [sys.executable, str(script), str(lib)],
        capture_output=True,
        text=True,
        cwd=here,
        env={**os.environ, "PYTHONPATH": path},
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    worst = float(proc.stdout.split("WORST")[1])
    assert worst < 1e-12
