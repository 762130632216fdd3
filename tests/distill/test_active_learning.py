"""Active learning in facet distill: the committee picks the structures it disagrees on most, the teacher labels
only those, rounds are deterministic and a killed run resumes to the same result."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from ase.build import bulk
from ase.io import read

from facetpot.cli import main as facet
from facetpot.distill.active import pick
from test_distill import distill_config

ACTIVE = {
    "rounds": 2,
    "committee": 2,
    "initial": 4,
    "holdout": 4,
    "per_round": 3,
    "threshold": 0.0,
    "patience": 5,
    "md": {"temperatures": [600], "steps": 4, "every": 2, "max_atoms": 64},
}


def active_config(tmp_path, **active):
    return distill_config(tmp_path, active=dict(ACTIVE, **active), training={"epochs": 3})


def picked(tmp_path, r):
    return read(tmp_path / "run" / "labels" / "active" / f"round_{r:02d}" / "picked.extxyz", ":")


def test_pick_takes_the_largest_std_above_the_threshold():
    cands = [bulk("Cu", "fcc", a=3.6) for _ in range(5)]
    stds = [0.01, 0.3, 0.05, 0.2, 0.5]
    spread = [(np.zeros((1, 3)), np.array([s])) for s in stds]
    rng = np.random.default_rng(0)
    chosen = pick(cands, spread, {"strategy": "committee", "threshold": 0.04, "per_round": 3}, rng)
    assert [c.info["committee_max_force_std"] for c in chosen] == [0.5, 0.3, 0.2]
    chosen = pick(cands, spread, {"strategy": "committee", "threshold": 0.25, "per_round": 3}, rng)
    assert [c.info["committee_max_force_std"] for c in chosen] == [0.5, 0.3]
    assert len(pick(cands, None, {"strategy": "random", "threshold": 9.0, "per_round": 3}, rng)) == 3


def test_active_distillation_rounds_report_and_rerun(tmp_path):
    cfg = active_config(tmp_path)
    assert facet(["distill", str(cfg)]) == 0
    root = tmp_path / "run" / "labels" / "active"
    summary = json.loads((root / "summary.json").read_text())
    rounds = summary["rounds"]
    assert [h["labels"] for h in rounds] == [4, 7, 10] and [h["picked"] for h in rounds] == [4, 3, 3]
    held = {a.info["distill_id"] for p in sorted((root / "holdout").glob("part_*")) for a in read(p, ":")}
    ids = [[a.info["distill_id"] for a in picked(tmp_path, r)] for r in range(3)]
    assert len(held) == 4 and len(set(sum(ids, []))) == 10 and not held & set(sum(ids, []))
    for r in (1, 2):  # picked largest std first, from the pool or the committee's own MD
        std = [a.info["committee_max_force_std"] for a in picked(tmp_path, r)]
        assert std == sorted(std, reverse=True) and std[-1] > 0
    assert all(np.isfinite(h["forces_mae_committee"]) and -1 <= h["std_error_spearman"] <= 1 for h in rounds)
    assert (tmp_path / "run" / "best.pt").is_file()
    # a rerun trains and labels nothing again and reports the same
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "run").rglob("*") if p.suffix in (".pt", ".extxyz")}
    assert facet(["distill", str(cfg)]) == 0
    assert {p: p.stat().st_mtime_ns for p in stamps if p.name != "best.pt" or "student" in str(p)} == {
        p: t for p, t in stamps.items() if p.name != "best.pt" or "student" in str(p)
    }
    again = json.loads((root / "summary.json").read_text())
    assert [h["forces_mae_committee"] for h in again["rounds"]] == [h["forces_mae_committee"] for h in rounds]


KILL = """
import os, signal, sys
from facetpot.training.trainer import Trainer
from facetpot.cli import main
calls = []
real = Trainer.save_checkpoint
def save(self):
    real(self)
    calls.append(1)
    if len(calls) == 14:  # round 1, student 1, after its second checkpoint
        os.kill(os.getpid(), signal.SIGKILL)
Trainer.save_checkpoint = save
main(["distill", sys.argv[1]])
"""


def test_killed_active_run_resumes_to_the_uninterrupted_result(tmp_path):
    """Same config, two folders: one run straight through, one SIGKILLed in round 1's second student and rerun;
    the picks are the same structures and the students the same models (deterministic per seed)."""
    straight, killed = tmp_path / "a", tmp_path / "b"
    straight.mkdir(), killed.mkdir()
    assert facet(["distill", str(active_config(straight))]) == 0
    cfg = active_config(killed)
    script = tmp_path / "kill.py"
    script.write_text(KILL)
    proc = subprocess.run(
        [sys.executable, str(script), str(cfg)],
        env=dict(os.environ, OMP_NUM_THREADS="1"),
        capture_output=True,
        text=True,
        cwd=os.path.dirname(__file__),
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    student = killed / "run" / "round_01" / "student_1"
    assert (student / "checkpoint.pt").is_file() and not (student / "final_metrics.json").exists()
    assert facet(["distill", str(cfg)]) == 0
    for r in range(3):
        assert [a.info["distill_id"] for a in picked(straight, r)] == [a.info["distill_id"] for a in picked(killed, r)]
    a, b = (
        json.loads((d / "run" / "labels" / "active" / "summary.json").read_text())["rounds"] for d in (straight, killed)
    )
    for x, y in zip(a, b):
        assert y["forces_mae_committee"] == pytest.approx(x["forces_mae_committee"], rel=1e-6)
        assert y["forces_mae_student0"] == pytest.approx(x["forces_mae_student0"], rel=1e-6)


def test_random_strategy_labels_as_many_and_config_mistakes_are_named(tmp_path, capsys):
    cfg = active_config(tmp_path, strategy="random")
    assert facet(["distill", str(cfg)]) == 0
    rounds = json.loads((tmp_path / "run" / "labels" / "active" / "summary.json").read_text())["rounds"]
    assert [h["labels"] for h in rounds] == [4, 7, 10]
    assert all("committee_max_force_std" not in a.info for a in picked(tmp_path, 1))
    for bad, message in (
        ({"strategy": "greedy"}, "active.strategy"),
        ({"committee": 1}, "active.committee"),
        ({"initial": 30}, "exceed the 20 generated"),
    ):
        other = tmp_path / bad.__repr__().replace(" ", "").replace("'", "").replace(":", "_").strip("{}")
        other.mkdir()
        assert facet(["distill", str(active_config(other, **bad))]) == 2
        assert message in capsys.readouterr().err
