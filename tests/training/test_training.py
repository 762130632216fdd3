"""Training from the command line on small EMT data made here: conversion, loss, resume, eval, fine-tuning."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import yaml
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import read, write

import facetpot
from facetpot.cli import main as facet
from facetpot.io.model_file import save_model
from facetpot.pretrained import available
from facetpot.testing import SEVENNET_LIKE


def emt_frames(n=24, seed=0, elements=("Cu", "Al")):
    rng = np.random.default_rng(seed)
    frames = []
    for k in range(n):
        a = bulk("Cu", "fcc", a=3.6 * (1 + 0.02 * rng.standard_normal()), cubic=True)
        if k % 2:
            a = a * (2, 1, 1)
        if len(elements) > 1 and k % 3 == 0:
            a.numbers[0] = 13
        a.rattle(0.08, seed=seed * 1000 + k)
        a.calc = EMT()
        e, f, s = a.get_potential_energy(), a.get_forces(), a.get_stress()
        a.calc = SinglePointCalculator(a, energy=e, forces=f, stress=s)
        a.info["config_type"] = "double" if k % 2 else "single"
        frames.append(a)
    return frames


def write_config(tmp_path, **sections):
    cfg = {
        "model": {
            "hidden_irreps": "8x0e+4x1o+2x2e",
            "num_layers": 2,
            "cutoff": 4.0,
            "grid_channels": 4,
            "grid_hidden": 8,
            "num_radial": 6,
        },
        "data": {"train": "train.extxyz", "valid_fraction": 0.25},
        "training": {
            "output": str(tmp_path / "run"),
            "max_atoms_per_batch": 40,
            "epochs": 2,
            "lr": 0.005,
            "warmup_steps": 2,
            "dtype": "float64",
            "tensorboard": False,
        },
    }
    for k, v in sections.items():
        cfg.setdefault(k, {}).update(v)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture
def data(tmp_path):
    write(tmp_path / "train.extxyz", emt_frames())
    return tmp_path


def test_train_writes_models_logs_and_learns(data):
    cfg = write_config(data, training={"epochs": 6, "tensorboard": True})
    assert facet(["train", str(cfg)]) == 0
    run = data / "run"
    for name in ("best.pt", "last.pt", "checkpoint.pt", "metrics.csv", "statistics.json", "learning_curve.png"):
        assert (run / name).is_file(), name
    rows = (run / "metrics.csv").read_text().splitlines()
    assert len(rows) == 1 + 6  # header + one validation per epoch
    first, last = rows[1].split(","), rows[-1].split(",")
    assert float(last[5]) < float(first[5])  # force MAE went down
    model = facetpot.load_model(run / "best.pt")
    stats = json.loads((run / "statistics.json").read_text())
    assert set(model.species) == {13, 29}
    assert model.atomic_energies[model.species.index(29)].item() == pytest.approx(stats["atomic_energies"]["29"])
    pytest.importorskip("tensorboard")
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))


def test_resume_after_sigkill_gives_the_same_weights(data):
    # small batches, many steps: the run goes on for a while after its first checkpoint (step 2)
    cfg = write_config(data, training={"epochs": 8, "max_atoms_per_batch": 16, "checkpoint_every": 2})
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "facetpot.cli", "train", str(cfg)]
    full = subprocess.run(cmd + ["--output", str(data / "full")], env=env, capture_output=True, text=True)
    assert full.returncode == 0, full.stderr
    steps = torch.load(data / "full" / "checkpoint.pt", weights_only=True)["step"]

    cut = data / "cut"
    with open(data / "cut.log", "w") as log:  # a file, not a pipe: nothing blocks on unread output
        proc = subprocess.Popen(cmd + ["--output", str(cut)], env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 600
        while not (cut / "checkpoint.pt").exists():  # written atomically: complete once it exists
            assert proc.poll() is None, "training ended before its first checkpoint:\n" + (data / "cut.log").read_text()
            assert time.monotonic() < deadline, "no checkpoint after 10 minutes"
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)  # like a pre-empted job
        assert proc.wait() == -signal.SIGKILL, "the run finished before it was killed"
    assert not (cut / "last.pt").exists()
    assert 0 < torch.load(cut / "checkpoint.pt", weights_only=True)["step"] < steps

    resumed = subprocess.run(cmd + ["--output", str(cut), "--resume"], env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from" in resumed.stderr
    a = torch.load(data / "full" / "checkpoint.pt", weights_only=True)
    b = torch.load(cut / "checkpoint.pt", weights_only=True)
    assert a["step"] == b["step"] == steps
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    for k in a["ema"]["shadow"]:
        assert torch.equal(a["ema"]["shadow"][k], b["ema"]["shadow"][k]), k


def test_eval_reports_errors_per_config_type_and_plots(data):
    cfg = write_config(data, training={"epochs": 1})
    assert facet(["train", str(cfg)]) == 0
    out = data / "eval"
    assert facet(["eval", str(data / "run" / "best.pt"), str(data / "train.extxyz"), "-o", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["all"]["frames"] == 24
    assert report["single"]["frames"] + report["double"]["frames"] == 24
    assert report["all"]["forces_mae_eV_per_A"] > 0
    assert (out / "parity.png").is_file()
    # the report's MAE equals a direct computation with the calculator
    model = facetpot.load_model(data / "run" / "best.pt")
    calc = facetpot.FacetCalculator(model, dtype="float64")  # as facet eval's default
    errs = []
    for a in read(data / "train.extxyz", ":"):
        ref = a.get_potential_energy() / len(a)
        a.calc = calc
        errs.append(abs(a.get_potential_energy() / len(a) - ref))
    assert report["all"]["energy_mae_meV_per_atom"] == pytest.approx(1e3 * np.mean(errs), rel=1e-6)


def test_finetune_adds_an_element_and_freezes_layers(data, tmp_path):
    base = facetpot.build_model(
        hidden_irreps="8x0e+4x1o", num_layers=2, cutoff=4.0, species=[29], grid_channels=4, grid_hidden=8, num_radial=6
    )
    save_model(base, tmp_path / "base.pt")
    cfg = write_config(
        data, finetune={"from": str(tmp_path / "base.pt"), "freeze": ["layers.0"]}, training={"epochs": 1}
    )
    assert facet(["train", str(cfg)]) == 0
    tuned = facetpot.load_model(data / "run" / "last.pt")
    assert tuned.species == [13, 29]
    b, t = base.state_dict(), tuned.state_dict()
    frozen = [k for k in b if k.startswith("layers.0")]
    assert frozen and all(torch.equal(b[k].double(), t[k].double()) for k in frozen)
    assert not torch.equal(b["layers.1.conv.radial_weight"].double(), t["layers.1.conv.radial_weight"])


def test_finetune_a_radial_mlp_model(data, tmp_path):
    """A SevenNet port (radial MLPs, SiLU gates, no parity) fine-tunes like any model: its MLP weights move."""
    overrides = dict(radial_hidden=[8], hidden_irreps="8x0e+4x1e", num_layers=2, cutoff=4.0, species=[13, 29])
    base = facetpot.build_model(**{**SEVENNET_LIKE, **overrides})
    save_model(base, tmp_path / "port.pt")
    cfg = write_config(data, finetune={"from": str(tmp_path / "port.pt")}, training={"epochs": 1})
    assert facet(["train", str(cfg)]) == 0
    tuned = facetpot.load_model(data / "run" / "last.pt")
    assert tuned.config["radial"] == "bessel_mlp" and tuned.backend == "edgewise"
    b, t = base.state_dict(), tuned.state_dict()
    assert not torch.equal(b["layers.0.conv.radial_mlp.weights.0"].double(), t["layers.0.conv.radial_mlp.weights.0"])


@pytest.mark.parametrize("name", [m.name for m in available()])
def test_finetune_from_a_shipped_model(data, name):
    """Ten steps from a shipped model by name (finetune.from: NAME), on data of elements it knows."""
    base = facetpot.load_model(name)
    cfg = write_config(data, finetune={"from": name}, training={"max_steps": 10, "dtype": "float32"})
    assert facet(["train", str(cfg)]) == 0
    tuned = facetpot.load_model(data / "run" / "last.pt")
    assert tuned.species == base.species and tuned.config["hidden_irreps"] == base.config["hidden_irreps"]
    key = "layers.1.linear_in.weights.0"
    assert not torch.equal(base.state_dict()[key].float(), tuned.state_dict()[key].float())


def test_existing_run_is_not_overwritten(data, capsys):
    cfg = write_config(data, training={"epochs": 1})
    assert facet(["train", str(cfg)]) == 0
    before = (data / "run" / "best.pt").read_bytes()
    assert facet(["train", str(cfg)]) == 2
    assert "already holds a training run" in capsys.readouterr().err
    assert (data / "run" / "best.pt").read_bytes() == before
    assert facet(["train", str(cfg), "--overwrite"]) == 0


def test_data_with_elements_outside_the_model_is_an_error(data, capsys):
    cfg = write_config(data, model={"species": [29]})
    assert facet(["train", str(cfg)]) == 2
    assert "Z=[13]" in capsys.readouterr().err


def test_config_errors_are_named(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: {train: x.xyz}\ntraining: {lr: fast}\n")
    assert facet(["train", str(bad)]) == 2
    assert "training.lr must be a positive number" in capsys.readouterr().err
    bad.write_text("data: {train: x.xyz}\ntraining: {learning_rate: 0.1}\n")
    assert facet(["train", str(bad)]) == 2
    assert "unknown key(s) training.learning_rate" in capsys.readouterr().err
    bad.write_text("data: {train: missing.xyz}\n")
    assert facet(["train", str(bad)]) == 2
    assert "missing.xyz" in capsys.readouterr().err


def test_zero_readout_starts_as_the_zero_predictor_and_learns(data):
    """training.readout_init: zero: a new model predicts E = sum of E0 and no force, yet the force loss moves it."""
    from facetpot.derivatives import compute_properties
    from facetpot.structure.graph import atoms_to_graph
    from facetpot.training.config import validate
    from facetpot.training.model_setup import build_or_load_model

    stats = {"avg_num_neighbors": 12.0, "atomic_energies": {13: -1.5, 29: -2.5}, "scale": 0.3}
    frame = emt_frames(n=1)[0]
    for init in ("random", "zero"):
        cfg = validate(yaml.safe_load(write_config(data, training={"readout_init": init}).read_text()))
        model, _ = build_or_load_model(cfg, [13, 29], lambda cutoff: stats)
        model.double()
        out = compute_properties(model, atoms_to_graph(frame, model.cutoff), create_graph=True)
        e0 = sum(stats["atomic_energies"][z] for z in frame.numbers)
        if init == "random":
            assert out["forces"].abs().max() > 1e-3 and abs(out["energy"].item() - e0) > 1e-6
            continue
        assert out["forces"].abs().max() == 0.0 and out["energy"].item() == pytest.approx(e0, abs=1e-12)
        loss = ((out["forces"] - torch.as_tensor(frame.get_forces())) ** 2).sum()
        loss.backward()
        assert model.readout.weights[0].grad.abs().max() > 1e-6
