"""The cuEquivariance backend on the CPU (the library's torch "naive" method; its CUDA kernels take the
same polynomial): whole models against the edge-wise reference, training gradients, model files."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("cuequivariance_torch")

from facetpot.testing import SEVENNET_LIKE, model_outputs, small_model, awkward_structures  # noqa: E402
from facetpot.structure.graph import atoms_to_graph  # noqa: E402
from facetpot.inference.model_source import load_model  # noqa: E402
from facetpot.io.model_file import save_model
from facetpot.derivatives import compute_properties  # noqa: E402


@pytest.mark.parametrize(
    "cfg",
    [{}, {"radial_rank": 3}, {"nonlinearity": "gate", "parity": False}, dict(SEVENNET_LIKE, num_layers=2)],
    ids=["spline", "low-rank", "gate-no-parity", "radial-mlp"],
)
def test_whole_model_on_cueq_matches_reference(cfg):
    model = small_model(**cfg)
    for name in ("triclinic", "si_primitive", "molecule"):
        atoms = awkward_structures()[name]
        ref = model_outputs(model.set_backend("edgewise"), atoms)
        new = model_outputs(model.set_backend("cueq"), atoms)
        assert model.backend == "cueq"
        for key in ref:
            torch.testing.assert_close(new[key], ref[key], rtol=1e-9, atol=1e-10, msg=f"{name} {key}")


def test_training_gradients_on_cueq_match_reference():
    atoms = awkward_structures()["triclinic"]
    grads = {}
    for backend in ("edgewise", "cueq"):
        model = small_model(seed=5).set_backend(backend)
        out = compute_properties(model, atoms_to_graph(atoms, model.cutoff), create_graph=True)
        ((out["forces"] ** 2).sum() + out["energy"].sum()).backward()
        grads[backend] = [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in model.parameters()]
    assert sum(float(g.abs().sum()) for g in grads["edgewise"]) > 0
    for a, b in zip(grads["edgewise"], grads["cueq"]):
        torch.testing.assert_close(b, a, rtol=1e-9, atol=1e-10)


def test_model_files_do_not_depend_on_the_backend(tmp_path):
    model = small_model(seed=2)
    keys = set(model.state_dict())
    model.set_backend("cueq")
    assert set(model.state_dict()) == keys  # the library's constants are not model state
    save_model(model.float(), tmp_path / "m.pt")
    loaded = load_model(tmp_path / "m.pt", dtype="float64", backend="cueq")
    ref = model_outputs(small_model(seed=2), awkward_structures()["triclinic"])
    got = model_outputs(loaded, awkward_structures()["triclinic"])
    torch.testing.assert_close(got["energy"], ref["energy"], rtol=1e-5, atol=1e-5)  # float32 weights
