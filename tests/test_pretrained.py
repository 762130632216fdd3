"""The registry of shipped models: names resolve offline to checked files; every failure names what exists."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

import facetpot
from facetpot.testing import model_outputs, small_model, awkward_structures
from facetpot import pretrained
from facetpot.io.model_file import save_model


@pytest.fixture
def shipped(tmp_path, monkeypatch):
    """A registry holding one model file written here (as a release would ship it)."""
    model = small_model(species=[1, 6, 8, 13, 14, 22, 29, 38])
    save_model(model, tmp_path / "tiny.pt")
    (tmp_path / "tiny.md").write_text("# tiny\n")
    digest = hashlib.sha256((tmp_path / "tiny.pt").read_bytes()).hexdigest()
    entry = pretrained.PretrainedModel("tiny-test", "a small random model", "tiny.pt", digest, "tiny.md")
    monkeypatch.setattr(pretrained, "SEARCH_DIRS", [tmp_path])
    monkeypatch.setitem(pretrained.PRETRAINED, "tiny-test", entry)
    return model, tmp_path


def test_names_load_everywhere(shipped):
    model, folder = shipped
    assert "tiny-test" in [m.name for m in pretrained.available()]
    assert pretrained.PRETRAINED["tiny-test"].card_path == folder / "tiny.md"
    atoms = awkward_structures()["triclinic"]
    ref = model_outputs(model, atoms)
    for loaded in (
        facetpot.load_model("tiny-test"),
        facetpot.resolve_model("tiny-test"),
        facetpot.FacetCalculator("tiny-test").model,
    ):
        assert torch.allclose(model_outputs(loaded, atoms)["forces"], ref["forces"], rtol=0, atol=1e-12)


def test_checksum_missing_and_unknown(shipped):
    _, folder = shipped
    with pytest.raises(ValueError, match="unknown pretrained model 'nope'; known names: .*tiny-test"):
        facetpot.load_model("nope")
    with pytest.raises(ValueError, match="unknown pretrained model"):
        facetpot.FacetCalculator("nope")
    data = bytearray((folder / "tiny.pt").read_bytes())
    data[-10] ^= 0xFF
    (folder / "tiny.pt").write_bytes(bytes(data))
    with pytest.raises(ValueError, match="sha256"):
        facetpot.load_model("tiny-test")
    (folder / "tiny.pt").unlink()
    with pytest.raises(FileNotFoundError, match="registered but its file tiny.pt"):
        facetpot.load_model("tiny-test")


def test_shipped_files_match_the_registry():
    """Every registered model's file is in the source tree / package with the registered sha256."""
    for entry in pretrained.available():
        assert pretrained.pretrained_path(entry.name).is_file()
        assert entry.card_path is not None, f"{entry.name}: no model card {entry.card}"


def _reference_script():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "pretrained" / "reference_values.py"
    spec = importlib.util.spec_from_file_location("reference_values", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _check_reference_values(entry):
    import json

    stored = json.loads((entry.card_path.parent / f"{entry.name}.reference.json").read_text())["values"]
    now = _reference_script().reference_values(facetpot.load_model(entry.name, dtype="float64"))
    assert set(now) == set(stored)
    for label, ref in stored.items():
        assert now[label]["energy"] == pytest.approx(ref["energy"], abs=1e-6), (entry.name, label)
        assert np.abs(np.array(now[label]["forces"]) - np.array(ref["forces"])).max() < 1e-6, (entry.name, label)
        if "stress" in ref:
            assert np.abs(np.array(now[label]["stress"]) - np.array(ref["stress"])).max() < 1e-8, (entry.name, label)


def test_shipped_models_compute_their_reference_values():
    """What each shipped model computes on two fixed structures equals the values written when it was made."""
    for entry in pretrained.available():
        _check_reference_values(entry)


def test_reference_values_catch_a_changed_model(shipped, monkeypatch):
    """The check itself: values written for the tiny model pass, and fail once the model computes otherwise."""
    import json

    model, folder = shipped
    values = _reference_script().reference_values(model)
    (folder / "tiny-test.reference.json").write_text(json.dumps({"values": values}))
    entry = pretrained.PRETRAINED["tiny-test"]
    _check_reference_values(entry)
    values["ethanol"]["energy"] += 1e-4
    (folder / "tiny-test.reference.json").write_text(json.dumps({"values": values}))
    with pytest.raises(AssertionError):
        _check_reference_values(entry)
