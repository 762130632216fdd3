"""The spline trim of a radial-MLP model: the exact fold of the first Linear_in, per-layer ranks, and the
layer-output least squares (``facetpot.ports.spline_fit``, ``facetpot.ports.spline_output_fit``)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from facetpot.testing import SEVENNET_LIKE, model_outputs, small_model, awkward_structures
from facetpot.structure.graph import atoms_to_graph, batch_graphs
from facetpot.ports.spline_fit import fit_splines, fold_first_linear, pair_distances
from facetpot.ports.spline_output_fit import alternating_fit, layer_statistics, refit_to_outputs

PORT_LIKE = dict(SEVENNET_LIKE, num_layers=3, self_connection_bias=False)


def _atoms():
    return [a for name, a in awkward_structures().items() if name != "molecule"]


@pytest.mark.parametrize("multi_fidelity", [False, True])
def test_fold_first_linear_is_exact_and_saves_its_numbers(multi_fidelity):
    """Also with Linear_in's bias (a SevenNet-MF port's fidelity): the fold carries it into the embedding."""
    options = dict(linear_in_bias=True, self_connection_bias=True) if multi_fidelity else {}
    port = small_model(**{**PORT_LIKE, **options})
    if multi_fidelity:
        with torch.no_grad():
            for layer in port.layers:
                for bias in layer.linear_in.biases:
                    bias.normal_(0.0, 0.5, generator=torch.Generator().manual_seed(5))
    folded = fold_first_linear(port)
    assert not folded.config["first_linear_in"] and folded.layers[0].linear_in is None
    mul0 = port.embedding.weight.shape[1]
    assert port.num_parameters() - folded.num_parameters() == mul0 * mul0 + (mul0 if multi_fidelity else 0)
    for atoms in _atoms():
        a, b = model_outputs(port, atoms), model_outputs(folded, atoms)
        assert abs(float(a["energy"] - b["energy"])) < 1e-10
        assert torch.allclose(a["forces"], b["forces"], atol=1e-10)


def test_fold_refuses_a_singular_first_linear():
    port = small_model(**PORT_LIKE)
    with torch.no_grad():
        port.layers[0].linear_in.weights[0][:, 1:] = 0.0  # rank 1: the species can no longer be told apart
    with pytest.raises(ValueError, match="singular"):
        fold_first_linear(port)


def test_per_layer_ranks_set_the_parameter_count():
    port = fold_first_linear(small_model(**PORT_LIKE))
    distances = pair_distances(_atoms(), port.cutoff)
    ranks = [4, 2, 3]
    spline, errors = fit_splines(port, distances, 10, 0.4, rank=ranks)
    assert spline.config["radial_rank"] == ranks
    assert [layer.conv.radial_mix.shape[1] for layer in spline.layers] == ranks
    expected = sum(10 * r + r * layer.conv.paths.num_weights for r, layer in zip(ranks, spline.layers))
    radial = sum(p.numel() for n, p in spline.named_parameters() if ".conv.radial_" in n)
    assert radial == expected and len(errors) == 3
    with pytest.raises(ValueError, match="ranks given"):
        fit_splines(port, distances, 10, 0.4, rank=[4, 2])


def _spline_teacher():
    """A rank-3 spline model as the 'original': its own spline coefficients reproduce it exactly."""
    cfg = dict(PORT_LIKE, radial="spline", num_radial=8, spline_start=0.3, radial_rank=3)
    return small_model(**cfg)


def test_statistics_reproduce_the_convolution_outputs():
    teacher = _spline_teacher()
    stats = layer_statistics(teacher, teacher, _atoms(), batch_atoms=16)
    for layer, s in zip(teacher.layers, stats):
        w = layer.conv.radial_mix.detach() @ layer.conv.radial_weight.detach()
        assert s.error(w) < 1e-6  # G a is the convolution's output: zero error at the teacher's own weights
        assert s.error(1.1 * w) == pytest.approx(0.1, rel=1e-3)  # and 10% off when every weight is 10% off


def test_alternating_least_squares_recovers_the_outputs():
    teacher = _spline_teacher()
    stats = layer_statistics(teacher, teacher, _atoms(), batch_atoms=16)
    k = teacher.layers[0].conv.num_radial
    no_ridge = (torch.eye(k, dtype=torch.float64), torch.zeros(k, stats[0].rhs.shape[0], dtype=torch.float64), None)
    gen = torch.Generator().manual_seed(0)
    for layer, s in zip(teacher.layers, stats):
        a0 = layer.conv.radial_mix.detach() + 0.3 * torch.randn(
            layer.conv.radial_mix.shape, generator=gen, dtype=torch.float64
        )
        m0 = layer.conv.radial_weight.detach()
        start = s.error(a0 @ m0)
        a, m = alternating_fit(
            s,
            a0,
            m0,
            (no_ridge[0], torch.zeros(k, s.rhs.shape[0], dtype=torch.float64), None),
            torch.ones(s.rhs.shape[0], dtype=torch.float64),
            ridge=0.0,
            iterations=40,
        )
        assert start > 0.05 and s.error(a @ m) < 2e-2 * start


def test_refit_to_outputs_brings_a_trim_closer_to_its_original():
    port = small_model(**PORT_LIKE)
    atoms = _atoms()
    distances = pair_distances(atoms, port.cutoff)
    spline, _ = fit_splines(port, distances, 8, 0.4, rank=2)
    before = copy.deepcopy(spline)
    stats = layer_statistics(port, spline, atoms, batch_atoms=16)
    report = refit_to_outputs(port, spline, stats, distances, ridge=1e-3, iterations=20)
    assert all(a < b for a, b in zip(report["after"], report["before"]))
    # and the energies follow: the refit trim is closer to the original than the weight-space fit
    ref = np.array([float(model_outputs(port, a)["energy"]) for a in atoms])
    old = np.array([float(model_outputs(before, a)["energy"]) for a in atoms])
    new = np.array([float(model_outputs(spline, a)["energy"]) for a in atoms])
    assert np.abs(new - ref).mean() < np.abs(old - ref).mean()


def test_derivative_statistics_and_fit():
    """The banded derivative Gram equals the dense sum_e |t_e|^2 b'(r_e) b'(r_e)^T, and a fit that holds the
    derivative term brings the radial derivatives closer than one that does not."""
    port = small_model(**PORT_LIKE)
    atoms = _atoms()
    distances = pair_distances(atoms, port.cutoff)
    spline, _ = fit_splines(port, distances, 8, 0.4, rank=2)
    stats = layer_statistics(port, spline, atoms, batch_atoms=16)
    # dense reference of layer 0's derivative Gram, from the same messages
    store = []
    hook = port.layers[0].conv.register_forward_hook(lambda mod, args, out: store.append(args))
    g = batch_graphs([atoms_to_graph(a, port.cutoff) for a in atoms])
    port(port.species_index(g.numbers), g.edge_index, g.edge_vectors())
    hook.remove()
    blocks, edges = store[0]
    r = edges.vectors.norm(dim=1)
    conv = spline.layers[0].conv
    msgs = []
    for p, cg in zip(conv.paths.paths, conv.paths.cg):
        sh = edges.sh[:, p.l2**2 : (p.l2 + 1) ** 2]
        t = torch.einsum("eua,abc,eb->euc", blocks[p.block][edges.senders], cg, sh)
        msgs.append((t**2).sum(-1))
    sizes = conv.norm**2 * torch.cat(msgs, 1)
    db = (spline.radial(r + 1e-5) - spline.radial(r - 1e-5)) / 2e-5
    dense = torch.einsum("eu,ek,el->ukl", sizes, db, db)
    assert torch.allclose(stats[0].dgram, dense, rtol=1e-9, atol=1e-12 * float(dense.abs().max()))
    plain, with_derivative = copy.deepcopy(spline), copy.deepcopy(spline)
    a = refit_to_outputs(port, plain, stats, distances, ridge=1e-3, iterations=10)
    b = refit_to_outputs(port, with_derivative, stats, distances, ridge=1e-3, iterations=10, derivative=1.0)
    assert all(y < x for x, y in zip(a["derivative_after"], b["derivative_after"]))
