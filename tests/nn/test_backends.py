"""The convolution backend interface: a new backend is one class and one registry entry, and it then
runs in the eager model, the TorchScript export (one call and layer by layer, as in LAMMPS) and
under training's double backward, giving the reference's numbers."""

from __future__ import annotations

from typing import List

import pytest
import torch

from facetpot.testing import model_outputs, small_model, awkward_structures, triclinic_cell
from facetpot.testing import domain_from_atoms, run_layerwise
from facetpot.export.torchscript import export_torchscript, load_torchscript
from facetpot.structure.graph import atoms_to_graph
from facetpot.nn import convolution
from facetpot.nn.conv.backend import ConvolutionBackend
from facetpot.nn.conv_paths import ConvolutionPaths
from facetpot.nn.edges import EdgeData
from facetpot.nn.flat_constants import unflatten
from facetpot.derivatives import compute_properties


class EinsumBackend(ConvolutionBackend):
    """The convolution's formula written out as one einsum per path, with a per-graph table
    Y_lm(r_e) b_k(r_e) (E, d, K) prepared once and shared by all layers."""

    name = "einsum"

    def __init__(self, paths: ConvolutionPaths):
        super().__init__(paths)
        self.path_block = [p.block for p in paths.paths]
        self.path_l2 = [p.l2 for p in paths.paths]
        self.offsets = paths.weight_offsets()
        self.cg_shapes = [list(c.shape) for c in paths.cg]
        self.register_constant("cg_flat", torch.cat([c.reshape(-1) for c in paths.cg]))

    def prepare(self, edges: EdgeData) -> List[torch.Tensor]:
        return [edges.sh.unsqueeze(2) * edges.radial.unsqueeze(1)]

    def forward(self, blocks: List[torch.Tensor], weights: torch.Tensor, edges: EdgeData) -> List[torch.Tensor]:
        cg = unflatten(self.cg_flat, self.cg_shapes)
        yb = edges.tables[0]
        out: List[torch.Tensor] = []
        for k in range(len(self.path_block)):
            b, l2 = self.path_block[k], self.path_l2[k]
            mul = self.irreps_in[b][0]
            x = blocks[b].index_select(0, edges.senders)
            w = weights.narrow(1, self.offsets[k], mul)
            msg = torch.einsum("eum,enk,ku,mnp->eup", [x, yb.narrow(1, l2 * l2, 2 * l2 + 1), w, cg[k]])
            agg = torch.zeros(edges.num_receivers, mul, msg.shape[2], dtype=msg.dtype, device=msg.device)
            out.append(agg.index_add_(0, edges.receivers, msg))
        return out


@pytest.fixture
def einsum_backend(monkeypatch):
    monkeypatch.setitem(convolution.BACKENDS, "einsum", EinsumBackend)


def test_new_backend_matches_reference_in_eager_model(einsum_backend):
    for cfg in ({}, {"nonlinearity": "gate"}, {"parity": False}):
        model = small_model(**cfg)
        for name, atoms in awkward_structures().items():
            ref = model_outputs(model.set_backend("edgewise"), atoms)
            new = model_outputs(model.set_backend("einsum"), atoms)
            assert model.backend == "einsum"
            for key in ref:
                assert torch.allclose(ref[key], new[key], atol=1e-11, rtol=1e-11), (cfg, name, key)


def test_new_backend_trains(einsum_backend):
    """Gradients of a force loss with respect to the parameters (the double backward of training)."""
    atoms = awkward_structures()["triclinic"]
    grads = {}
    for backend in ("edgewise", "einsum"):
        model = small_model(seed=5).set_backend(backend)
        out = compute_properties(model, atoms_to_graph(atoms, model.cutoff), create_graph=True)
        (out["forces"] ** 2).sum().backward()
        grads[backend] = [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in model.parameters()]
    assert sum(float(g.abs().sum()) for g in grads["edgewise"]) > 0
    for a, b in zip(grads["edgewise"], grads["einsum"]):
        assert torch.allclose(a, b, atol=1e-10, rtol=1e-9)


def test_new_backend_exports_and_runs_layer_by_layer(einsum_backend, tmp_path):
    model = small_model(seed=1).set_backend("einsum")
    atoms = triclinic_cell(3).repeat((2, 1, 1))
    atoms.rattle(0.05, seed=4)
    ref = model_outputs(model, atoms)
    module, meta = load_torchscript(export_torchscript(model, tmp_path / "m.pt"))
    assert meta["backend"] == "einsum"
    dom = domain_from_atoms(atoms, model.cutoff, model.cutoff)
    out = run_layerwise(module, model.species_index(torch.as_tensor(dom.species_z)), dom)
    assert torch.allclose(out["energies"], ref["energies"], rtol=0, atol=1e-10)


def test_unknown_backend_is_named():
    with pytest.raises(ValueError, match="unknown convolution backend 'fast'; known: cueq, density, edgewise, triton"):
        small_model().set_backend("fast")


def test_backend_is_chosen_by_argument_or_environment(monkeypatch, tmp_path):
    from facetpot.inference.calculator import FacetCalculator
    from facetpot.inference.model_source import load_model
    from facetpot.io.model_file import save_model

    save_model(small_model(), tmp_path / "m.pt")
    monkeypatch.delenv("FACETPOT_BACKEND", raising=False)
    assert load_model(tmp_path / "m.pt").backend == "density"
    assert load_model(tmp_path / "m.pt", backend="edgewise").backend == "edgewise"
    assert FacetCalculator(tmp_path / "m.pt", backend="edgewise").model.backend == "edgewise"
    monkeypatch.setenv("FACETPOT_BACKEND", "edgewise")
    assert load_model(tmp_path / "m.pt").backend == "edgewise"
    assert FacetCalculator(tmp_path / "m.pt").model.backend == "edgewise"
    monkeypatch.setenv("FACETPOT_BACKEND", "fast")
    with pytest.raises(ValueError, match="unknown convolution backend 'fast'"):
        load_model(tmp_path / "m.pt")
