"""The registry of shipped models: names resolve offline to checked files; every failure names what exists."""
from __future__ import annotations

import hashlib

import pytest
import torch

import facetpot
from conftest import evaluate, small_model, structures
from facetpot import pretrained
from facetpot.model_file import save_model


@pytest.fixture
def shipped(tmp_path, monkeypatch):
    """A registry holding one model file written here (as a release would ship it)."""
    model = small_model()
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
    atoms = structures()["triclinic"]
    ref = evaluate(model, atoms)
    for loaded in (facetpot.load_model("tiny-test"), facetpot.resolve_model("tiny-test"),
                   facetpot.FacetCalculator("tiny-test").model):
        assert torch.allclose(evaluate(loaded, atoms)["forces"], ref["forces"], rtol=0, atol=1e-12)


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
