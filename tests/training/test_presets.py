"""facet preset: starter configs that validate, and that stay the repository's measured recipes."""

from pathlib import Path

import pytest
import yaml

from facetpot.cli import main as facet
from facetpot.training.config import load_config
from facetpot.training.presets import FOLDER, preset_names

RECIPES = Path(__file__).resolve().parents[2] / "training"


@pytest.mark.parametrize("name", ["small-data", "finetune"])
def test_preset_writes_a_valid_config_for_the_given_files(tmp_path, name, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "configs").mkdir()
    out = Path("configs") / "cfg.yaml"  # the data paths are typed from here, the config lives elsewhere
    assert facet(["preset", name, "--train", "data/a.extxyz", "b.extxyz", "-o", str(out)]) == 0
    assert f"facet train {out}" in capsys.readouterr().out
    cfg = load_config(out)
    assert [Path(p).resolve() for p in cfg["data"]["train"]] == [tmp_path / "data" / "a.extxyz", tmp_path / "b.extxyz"]
    assert facet(["preset", name, "-o", str(out)]) == 2  # never overwrites
    assert "exists" in capsys.readouterr().err


def test_presets_are_the_measured_recipes():
    assert preset_names() == ["finetune", "small-data"]
    pairs = {"small-data": "mlearn_si.yaml", "finetune": "finetune_7net0_mo.yaml"}
    for name, recipe in pairs.items():
        preset = yaml.safe_load((FOLDER / f"{name}.yaml").read_text())
        ref = yaml.safe_load((RECIPES / recipe).read_text())
        for section in ("model", "loss", "finetune"):
            assert preset.get(section) == ref.get(section), (name, section)
        assert {k: v for k, v in preset["data"].items() if k != "train"} == {
            k: v for k, v in ref["data"].items() if k != "train"
        }, name
        drop = {"output", "threads"}
        assert {k: v for k, v in preset["training"].items() if k not in drop} == {
            k: v for k, v in ref["training"].items() if k not in drop
        }, name


def test_preset_prints_to_stdout_with_the_placeholder(capsys):
    assert facet(["preset", "small-data"]) == 0
    text = capsys.readouterr().out
    assert "train: TRAIN_FILES" in text and "stage_two:" in text


def test_the_four_mlearn_recipes_share_the_small_data_recipe():
    si = yaml.safe_load((RECIPES / "mlearn_si.yaml").read_text())
    for el in ("ge", "li", "mo"):
        other = yaml.safe_load((RECIPES / f"mlearn_{el}.yaml").read_text())
        for section in ("model", "loss"):
            assert other[section] == si[section], (el, section)
        drop = {"output"}
        assert {k: v for k, v in other["training"].items() if k not in drop} == {
            k: v for k, v in si["training"].items() if k not in drop
        }, el
