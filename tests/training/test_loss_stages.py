"""loss.stage_two: other loss weights for the end of a run (forces first, energy last), and best.pt from stage two."""

import csv
import math
from types import SimpleNamespace

import pytest
from ase.io import write

from facetpot.cli import main as facet
from facetpot.io.model_file import read_model_file
from facetpot.training.config import ConfigError, validate
from facetpot.training.trainer import Trainer

from test_training import emt_frames, write_config


def test_stage_two_fills_missing_weights_from_stage_one_and_names_mistakes():
    cfg = validate(
        {
            "data": {"train": "x.xyz"},
            "loss": {"energy_weight": 1, "forces_weight": 10, "stage_two": {"energy_weight": 100}},
        }
    )
    assert cfg["loss"]["stage_two"] == {
        "start": 0.75,
        "energy_weight": 100.0,
        "forces_weight": 10.0,
        "stress_weight": 1.0,
    }
    assert validate({"data": {"train": "x.xyz"}})["loss"]["stage_two"] is None
    with pytest.raises(ConfigError, match="loss.stage_two.start must be a fraction"):
        validate({"data": {"train": "x.xyz"}, "loss": {"stage_two": {"start": 1.5, "energy_weight": 10}}})
    with pytest.raises(ConfigError, match=r"unknown key\(s\) loss.stage_two.swa_lr"):
        validate({"data": {"train": "x.xyz"}, "loss": {"stage_two": {"swa_lr": 1e-3, "energy_weight": 10}}})
    with pytest.raises(ConfigError, match="loss.stage_two.forces_weight must be a finite number >= 0"):
        validate({"data": {"train": "x.xyz"}, "loss": {"stage_two": {"forces_weight": -1}}})
    with pytest.raises(ConfigError, match="loss.stage_two.energy_weight must be a finite number >= 0"):
        validate({"data": {"train": "x.xyz"}, "loss": {"stage_two": {"energy_weight": float("nan")}}})
    with pytest.raises(ConfigError, match="loss.stage_two changes no weight"):
        validate({"data": {"train": "x.xyz"}, "loss": {"stage_two": {"start": 0.5}}})


def test_stage_two_starts_once_resets_the_best_score_and_stays():
    loss = validate(
        {
            "data": {"train": "x.xyz"},
            "loss": {
                "energy_weight": 1,
                "forces_weight": 10,
                "stage_two": {"start": 0.5, "energy_weight": 10, "forces_weight": 1},
            },
        }
    )["loss"]
    progress = {"value": 0.4}
    trainer = SimpleNamespace(
        cfg={"loss": loss},
        schedule=SimpleNamespace(progress=lambda: progress["value"]),
        best=0.1,
        step=7,
        _in_stage_two=False,
    )
    weights = lambda: (lambda c: (c["energy_weight"], c["forces_weight"]))(Trainer.loss_config(trainer))  # noqa: E731
    assert weights() == (1.0, 10.0) and trainer.best == 0.1
    progress["value"] = 0.5
    assert weights() == (10.0, 1.0) and trainer.best == math.inf and trainer._in_stage_two
    trainer.best = 0.05
    assert weights() == (10.0, 1.0) and trainer.best == 0.05  # reset once, not at every step
    progress["value"] = 0.3  # a resume with a longer budget: the run stays in stage two
    assert weights() == (10.0, 1.0) and trainer.best == 0.05


def test_stage_two_weights_apply_from_their_start_and_best_model_comes_from_stage_two(tmp_path, capsys):
    write(tmp_path / "train.extxyz", emt_frames())
    # stage two multiplies every weight by 1000: the training loss must jump by about that factor at its start
    cfg = write_config(
        tmp_path,
        training={"epochs": 6, "lr": 1e-3},
        loss={
            "energy_weight": 1.0,
            "forces_weight": 1.0,
            "stress_weight": 1.0,
            "stage_two": {"start": 0.5, "energy_weight": 1000.0, "forces_weight": 1000.0, "stress_weight": 1000.0},
        },
    )
    assert facet(["train", str(cfg)]) == 0
    assert "loss stage two (energy 1000, forces 1000, stress 1000)" in capsys.readouterr().err
    rows = list(csv.DictReader(open(tmp_path / "run" / "metrics.csv")))
    losses = [float(r["train_loss"]) for r in rows]
    assert max(losses[:3]) * 100 < min(losses[3:])
    start_step = int(rows[2]["step"])  # the last step of stage one
    assert read_model_file(tmp_path / "run" / "best.pt")["metadata"]["trained_steps"] > start_step
