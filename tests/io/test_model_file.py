"""Model files round-trip exactly and are loaded without unpickling code."""

import pickle

import pytest
import torch

import facetpot
from facetpot.io.model_file import FORMAT_VERSION, save_model
from facetpot.testing import model_outputs, small_model, awkward_structures


def test_round_trip_identical_outputs(tmp_path):
    model = small_model(nonlinearity="gate")
    model.set_scale({6: 1.3})
    with torch.no_grad():  # trained float64 weights are not float32 numbers
        for p in model.parameters():
            p.add_(1e-9 * torch.randn_like(p))
    path = tmp_path / "m.pt"
    save_model(model, path, metadata={"note": "test"})
    loaded = facetpot.load_model(path)
    assert loaded.dtype == torch.float64 and loaded.config == model.config
    assert loaded.metadata["note"] == "test" and loaded.metadata["cutoff"] == model.cutoff
    assert loaded.metadata["units"]["energy"] == "eV"
    for atoms in awkward_structures().values():
        a, b = model_outputs(model, atoms), model_outputs(loaded, atoms)
        for k in a:
            assert torch.equal(a[k], b[k]), k


def test_float32_file_keeps_reference_energies_exact(tmp_path):
    model = small_model().float()
    model.set_atomic_energies({14: -1234.56789012345})
    save_model(model, tmp_path / "m.pt")
    loaded = facetpot.load_model(tmp_path / "m.pt", dtype="float64")
    assert loaded.atomic_energies[loaded.species.index(14)].item() == -1234.56789012345


def test_rejects_other_format_version(tmp_path):
    path = tmp_path / "m.pt"
    save_model(small_model(), path)
    payload = torch.load(path, weights_only=True)
    payload["format_version"] = FORMAT_VERSION + 1
    torch.save(payload, path)
    with pytest.raises(ValueError, match=f"format version {FORMAT_VERSION + 1}"):
        facetpot.load_model(path)


def test_reads_version_1_files_of_rank_models(tmp_path):
    """Format 1 stored a rank-R layer's mixing matrix A under radial_weight and its weights M under radial_mix
    (swapped in version 2): a version-1 file loads to the same model, and a checkpoint's model and EMA too."""
    from facetpot.training.checkpoint import load_checkpoint, save_checkpoint

    model = small_model(radial_rank=2)
    path = tmp_path / "old.pt"
    save_model(model, path)
    payload = torch.load(path, weights_only=True)
    old = dict(payload["state_dict"])
    for t in range(len(model.layers)):
        a, m = f"layers.{t}.conv.radial_mix", f"layers.{t}.conv.radial_weight"
        assert old[a].shape == (model.layers[t].conv.num_radial, 2)  # A (K, R) is radial_mix now
        old[a], old[m] = payload["state_dict"][m], payload["state_dict"][a]
    torch.save({**payload, "state_dict": old, "format_version": 1}, path)
    atoms = awkward_structures()["triclinic"]
    assert torch.equal(model_outputs(facetpot.load_model(path), atoms)["energy"], model_outputs(model, atoms)["energy"])
    save_checkpoint(tmp_path / "ckpt.pt", {"model": old, "ema": {"decay": 0.9, "steps": 1, "shadow": old}})
    ckpt = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    torch.save({**ckpt, "format_version": 1}, tmp_path / "ckpt.pt")
    read = load_checkpoint(tmp_path / "ckpt.pt")
    for state in (read["model"], read["ema"]["shadow"]):
        assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


def test_rejects_non_model_and_pickled_code(tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="is not a facetpot model file"):
        facetpot.load_model(tmp_path / "junk.pt")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a facetpot model"):
        facetpot.load_model(tmp_path / "other.pt")

    class Evil:
        def __reduce__(self):
            return (print, ("code ran",))

    with open(tmp_path / "evil.pt", "wb") as f:
        pickle.dump({"format": "facetpot-model", "x": Evil()}, f)
    with pytest.raises(ValueError):
        facetpot.load_model(tmp_path / "evil.pt")
    with pytest.raises(FileNotFoundError):
        facetpot.load_model(tmp_path / "missing.pt")


def test_save_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "m.pt"
    save_model(small_model(), path)
    before = path.read_bytes()

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(RuntimeError):
        save_model(small_model(seed=1), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]


def test_config_validation():
    with pytest.raises(ValueError, match="unknown model option"):
        facetpot.build_model(hidden_irrep="8x0e")
    with pytest.raises(ValueError, match="nonlinearity"):
        facetpot.build_model(nonlinearity="relu", species=[1])
    with pytest.raises(ValueError, match="grid_activation"):
        facetpot.build_model(grid_activation="tanh", species=[1])


def test_default_is_facet_s():
    model = facetpot.build_model()
    assert model.config["hidden_irreps"] == "128x0e+64x1o+32x2e"
    assert model.num_layers == 3 and model.cutoff == 6.0 and model.species == list(range(1, 95))
    assert model.layers[0].irreps_out == [(128, 0, 1), (64, 1, -1), (32, 2, 1)]
    assert 2e5 < model.num_parameters() < 5e5


def test_model_file_is_readable_by_others(tmp_path):
    import os

    path = tmp_path / "m.pt"
    save_model(small_model(), path)
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_resolve_model_keeps_saved_dtype_by_default(tmp_path):
    from facetpot.inference.model_source import resolve_model

    path = tmp_path / "m.pt"
    save_model(small_model().float(), path)
    assert resolve_model(path).dtype == torch.float32
    assert resolve_model(str(path), dtype="float64").dtype == torch.float64
    model = small_model()
    assert resolve_model(model) is model and model.dtype == torch.float64
    with pytest.raises(ValueError, match="dtype must be one of"):
        resolve_model(path, dtype="float16")
    with pytest.raises(FileNotFoundError, match="model file not found"):
        resolve_model(tmp_path / "missing.pt")
    with pytest.raises(ValueError, match="unknown pretrained model"):
        resolve_model("no-such-model")


def test_calculator_needs_a_model_until_one_ships():
    from facetpot.pretrained import DEFAULT_MODEL

    if DEFAULT_MODEL is None:
        with pytest.raises(ValueError, match="FacetCalculator needs a model"):
            facetpot.FacetCalculator()
    else:
        assert facetpot.FacetCalculator().model.num_parameters() > 0


def test_low_rank_radial_weights(tmp_path):
    """radial_rank R: each layer's weights are A (K, R) M (R, n); the model equals a full-rank one with W = A M
    on every backend, and files of full-rank models keep their keys (no radial_mix)."""
    low = small_model(radial_rank=2)
    full = small_model()
    state = {k: v for k, v in low.state_dict().items() if not k.endswith("radial_mix")}
    for t, layer in enumerate(low.layers):
        state[f"layers.{t}.conv.radial_weight"] = layer.conv.radial_mix @ layer.conv.radial_weight
    full.load_state_dict(state)
    atoms = awkward_structures()["triclinic"]
    for backend in ("density", "edgewise"):  # each runs with the R mixed radial functions b(r) A
        low.set_backend(backend)
        full.set_backend(backend)
        a, b = model_outputs(low, atoms), model_outputs(full, atoms)
        assert torch.allclose(a["forces"], b["forces"], atol=1e-12)
        assert torch.allclose(a["stress"], b["stress"], atol=1e-12)
    assert not any(k.endswith("radial_mix") for k in full.state_dict())
    low.set_backend("density")
    save_model(low, tmp_path / "low.pt")
    assert torch.equal(
        model_outputs(facetpot.load_model(tmp_path / "low.pt"), atoms)["energy"], model_outputs(low, atoms)["energy"]
    )
    assert low.num_parameters() < full.num_parameters()
