"""Where a model comes from and which backend it computes with: a model passed in is never changed, and only
inference reads $FACETPOT_BACKEND (training and export start from the model as it was saved)."""

from __future__ import annotations

import torch

from facetpot.testing import small_model
from facetpot.inference.backend_choice import BACKEND_ENV, chosen_backend
from facetpot.inference.model_source import load_model, read_model, resolve_model
from facetpot.inference.prepare import inference_model
from facetpot.io.model_file import save_model


def _state(model):
    return (
        model.dtype,
        model.device,
        model.backend,
        model.training,
        [p.requires_grad for p in model.parameters()],
        [p.clone() for p in model.parameters()],
    )


def _same(a, b):
    return a[:5] == b[:5] and all(torch.equal(x, y) for x, y in zip(a[5], b[5]))


def test_a_model_passed_in_is_never_changed(monkeypatch):
    monkeypatch.setenv(BACKEND_ENV, "edgewise")
    model = small_model().train()
    before = _state(model)
    assert resolve_model(model) is model  # nothing asked to change: the same object
    moved = resolve_model(model, dtype="float32")
    assert moved is not model and moved.dtype == torch.float32
    prepared = inference_model(model, dtype="float32", backend="density")
    assert prepared.backend == "density" and not prepared.training
    assert not any(p.requires_grad for p in prepared.parameters())
    assert inference_model(model).backend == "edgewise"  # the environment, on the copy
    assert _same(_state(model), before)


def test_only_inference_reads_the_backend_environment(tmp_path, monkeypatch):
    save_model(small_model(), tmp_path / "m.pt")
    monkeypatch.setenv(BACKEND_ENV, "edgewise")
    assert read_model(tmp_path / "m.pt").backend == "density"  # what training and export start from
    assert resolve_model(str(tmp_path / "m.pt")).backend == "density"
    assert load_model(tmp_path / "m.pt").backend == "edgewise"
    assert inference_model(str(tmp_path / "m.pt")).backend == "edgewise"


def test_backend_asked_then_environment_then_the_models_own(monkeypatch):
    model = small_model()
    monkeypatch.delenv(BACKEND_ENV, raising=False)
    assert chosen_backend(model) == "density"
    monkeypatch.setenv(BACKEND_ENV, "edgewise")
    assert chosen_backend(model) == "edgewise"
    assert chosen_backend(model, "density") == "density"
