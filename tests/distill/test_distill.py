"""facet distill: deterministic structures, labelling that survives SIGKILL, a tiny end-to-end run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import yaml
from ase.build import bulk
from ase.io import read, write

import facetpot
from facetpot.testing import small_model
from facetpot.cli import main as facet
from facetpot.distill.config import load_distill_config
from facetpot.distill.generate import generate
from facetpot.distill.label import label, label_parts
from facetpot.distill.run import read_seeds
from facetpot.io.model_file import save_model
from facetpot.training.config import ConfigError


def seeds():
    cu = bulk("Cu", "fcc", a=3.6, cubic=True)
    al = bulk("Al", "fcc", a=4.05) * (2, 2, 1)
    al.numbers[0] = 29
    return [("cu.cif", cu), ("alcu.cif", al)]


STRUCTURES = {
    "seed": 0,
    "include_seeds": True,
    "min_distance": 0.6,
    "perturb": {"copies": 3, "strain": 0.03, "rattle": [0.02, 0.1]},
    "md": {
        "temperatures": [],
        "pressures": [],
        "steps": 4,
        "every": 2,
        "timestep_fs": 1.0,
        "max_atoms": 64,
        "min_atoms": 8,
    },
    "substitute": {"elements": ["Al", "Cu", "Ni"], "copies": 2},
    "vacancies": {"copies": 1},
    "surfaces": {"copies": 1, "vacuum": 6.0},
}


def fingerprint(structures):
    return [
        (
            a.info["distill_id"],
            a.get_chemical_formula(),
            np.round(a.positions, 12).tobytes(),
            np.round(a.cell.array, 12).tobytes(),
        )
        for a in structures
    ]


def test_generation_is_deterministic_for_a_seed():
    a, dropped_a = generate(seeds(), STRUCTURES)
    b, _ = generate(seeds(), STRUCTURES)
    assert fingerprint(a) == fingerprint(b)
    sources = {s.info["source"] for s in a}
    assert sources == {"seed", "perturb", "substitute", "vacancy", "surface"}
    assert len(a) + sum(dropped_a.values()) == 2 * (1 + 3 + 2 + 1 + 1)
    other, _ = generate(seeds(), dict(STRUCTURES, seed=1))
    assert fingerprint(other) != fingerprint(a)
    # a structure does not depend on which other sources are on
    only_perturb, _ = generate(
        seeds(),
        dict(
            STRUCTURES,
            substitute={"elements": [], "copies": 0},
            vacancies={"copies": 0},
            surfaces={"copies": 0, "vacuum": 6.0},
        ),
    )
    assert set(fingerprint(only_perturb)) <= set(fingerprint(a))
    subs = [s for s in a if s.info["source"] == "substitute"]
    assert all(set(s.get_chemical_symbols()) <= {"Al", "Cu", "Ni"} for s in subs)
    assert any(s.get_chemical_formula() not in ("Cu4", "AlCuAl2Al", "Al3Cu") for s in subs)
    vac = [s for s in a if s.info["source"] == "vacancy"]
    assert sorted(len(s) for s in vac) == [3, 3]


def test_md_snapshots_come_from_the_teacher_and_repeat():
    teacher = small_model(species=[13, 29])
    calc = lambda: facetpot.FacetCalculator(teacher)  # noqa: E731
    cfg = dict(
        STRUCTURES,
        include_seeds=False,
        perturb={"copies": 0, "strain": 0.0, "rattle": [0, 0]},
        substitute={"elements": [], "copies": 0},
        vacancies={"copies": 0},
        surfaces={"copies": 0, "vacuum": 6},
        md={**STRUCTURES["md"], "temperatures": [300.0]},
    )
    a, _ = generate(seeds()[:1], cfg, calc)
    b, _ = generate(seeds()[:1], cfg, calc)
    assert [s.info["source"] for s in a] == ["md", "md"]
    assert len(a[0]) == 8  # the 4-atom seed repeated to min_atoms
    assert fingerprint(a) == fingerprint(b)
    assert not np.allclose(a[0].positions, a[1].positions)


KILL_SCRIPT = textwrap.dedent("""
    import os, signal, sys
    from ase.io import read
    import facetpot.distill.label as lab
    from facetpot.inference.model_source import load_model
    calls = []
    real = lab.predict_structures
    def predict(model, chunk, batch_atoms):
        calls.append(1)
        if len(calls) == 3:
            os.kill(os.getpid(), signal.SIGKILL)  # killed while labelling the third part
        return real(model, chunk, batch_atoms)
    lab.predict_structures = predict
    out = sys.argv[1]
    lab.label(load_model(out + "/teacher.pt"), read(out + "/structures.extxyz", ":"), out + "/labels", 4, 100, 50.0)
""")


def test_labelling_resumes_after_sigkill_without_relabelling(tmp_path, monkeypatch):
    structures, _ = generate(seeds(), STRUCTURES)
    assert len(structures) > 12
    write(tmp_path / "structures.extxyz", structures)
    teacher = small_model(species=[13, 28, 29])
    save_model(teacher, tmp_path / "teacher.pt")
    script = tmp_path / "kill.py"
    script.write_text(KILL_SCRIPT)
    proc = subprocess.run(
        [sys.executable, str(script), str(tmp_path)],
        env=dict(os.environ, OMP_NUM_THREADS="1"),
        capture_output=True,
        text=True,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    labels = tmp_path / "labels"
    done = label_parts(labels)
    assert [p.name for p in done] == ["part_00000.extxyz", "part_00001.extxyz"]
    assert not [p for p in labels.iterdir() if p.name not in ("part_00000.extxyz", "part_00001.extxyz")]
    stamps = {p.name: p.stat().st_mtime_ns for p in done}

    import facetpot.distill.label as lab

    labelled_sizes = []
    real = lab.predict_structures
    monkeypatch.setattr(lab, "predict_structures", lambda m, c, b: labelled_sizes.append(len(c)) or real(m, c, b))
    counts = label(teacher, read(tmp_path / "structures.extxyz", ":"), labels, 4, 100, 50.0)
    assert counts["skipped_parts"] == 2
    assert sum(labelled_sizes) == len(structures) - 8  # the first two parts were not labelled again
    assert {p.name: p.stat().st_mtime_ns for p in label_parts(labels)[:2]} == stamps
    got = [a for p in label_parts(labels) for a in read(p, ":")]
    assert [a.info["distill_id"] for a in got] == [a.info["distill_id"] for a in structures]
    ref = teacher.double()
    e = facetpot.FacetCalculator(ref).get_potential_energy(structures[5])
    assert got[5].get_potential_energy() == pytest.approx(e, abs=1e-8)


def distill_config(tmp_path, **over):
    for name, atoms in seeds():
        write(tmp_path / name.replace(".cif", ".extxyz"), atoms)
    save_model(small_model(species=[13, 28, 29]), tmp_path / "teacher.pt")
    cfg = {
        "teacher": {"model": "teacher.pt", "dtype": "float64", "batch_atoms": 64},
        "structures": {"seeds": ["cu.extxyz", "alcu.extxyz"], "perturb": {"copies": 9}},
        "labels": {"part_size": 8},
        "model": {
            "hidden_irreps": "8x0e+4x1o",
            "num_layers": 1,
            "cutoff": 4.0,
            "grid_channels": 4,
            "grid_hidden": 8,
            "num_radial": 6,
        },
        "data": {"valid_fraction": 0.2, "split_by": "frame"},
        "training": {
            "output": str(tmp_path / "run"),
            "max_atoms_per_batch": 32,
            "epochs": 8,
            "lr": 0.01,
            "warmup_steps": 2,
            "dtype": "float64",
            "tensorboard": False,
        },
    }
    for k, v in over.items():
        cfg.setdefault(k, {}).update(v)
    path = tmp_path / "distill.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_seed_frames_select_seeds(tmp_path):
    frames = [bulk("Cu", "fcc", a=3.5 + 0.05 * k) for k in range(5)]
    write(tmp_path / "many.extxyz", frames)
    got = read_seeds([str(tmp_path / "many.extxyz")], "1::2")
    assert [name for name, _ in got] == ["many.extxyz@1", "many.extxyz@3"]
    assert got[1][1].cell[0, 1] == pytest.approx(frames[3].cell[0, 1])
    with pytest.raises(ValueError, match="no seed structure"):
        read_seeds([str(tmp_path / "many.extxyz")], "7:")


def test_tiny_distillation_end_to_end(tmp_path):
    cfg = distill_config(tmp_path)
    assert facet(["distill", str(cfg)]) == 0
    labels = tmp_path / "run" / "labels"
    report = json.loads((labels / "report.json").read_text())
    assert report["structures"] == 20 and report["labelled"] == 20
    assert report["by_source"] == {"perturb": 18, "seed": 2}
    assert report["atoms_by_element"]["Cu"] > report["atoms_by_element"]["Al"] > 0
    assert (labels / "report.png").is_file()
    student = facetpot.load_model(tmp_path / "run" / "best.pt")
    assert set(student.species) == {13, 29}
    rows = [r.split(",") for r in (tmp_path / "run" / "metrics.csv").read_text().splitlines()]
    col = rows[0].index("valid_forces_mae")
    assert float(rows[-1][col]) < float(rows[1][col])  # the error against the teacher went down
    # a rerun finds everything done: nothing generated or labelled again
    before = {p: p.stat().st_mtime_ns for p in labels.iterdir()}
    assert facet(["distill", str(cfg), "--stage", "label"]) == 0
    assert {p: p.stat().st_mtime_ns for p in labels.iterdir() if p in before and p.suffix == ".extxyz"} == {
        p: t for p, t in before.items() if p.suffix == ".extxyz"
    }


def test_rejected_labels_are_reported_by_every_rerun(tmp_path):
    cfg = distill_config(tmp_path, labels={"max_force": 1e-9})  # every label with a force is "too large"
    reports = []
    for _ in range(2):  # the rerun labels nothing and must still report what the first run set aside
        assert facet(["distill", str(cfg), "--stage", "label"]) == 0
        labels = tmp_path / "run" / "labels"
        reports.append(json.loads((labels / "report.json").read_text()))
    first, rerun = reports
    assert first["rejected"] == 18 and first["labelled"] == 2  # only the two unperturbed seeds have zero forces
    assert len((labels / "rejected.tsv").read_text().splitlines()) == 18
    assert rerun["rejected"] == first["rejected"] and rerun["labelled"] == first["labelled"]


def test_config_mistakes_are_named(tmp_path, capsys):
    cfg = distill_config(tmp_path)
    raw = yaml.safe_load(cfg.read_text())
    for change, message in (
        ({"teacher": {"model": None}}, "teacher.model is required"),
        ({"structures": {"perturb": {"copy": 2}}}, r"structures.perturb.copy"),
        ({"structures": {"substitute": {"elements": ["Xx"]}}}, "unknown element 'Xx'"),
        ({"data": {"train": "x.extxyz"}}, "data.train is set by facet distill"),
        ({"structures": {"seed_frames": "a::2"}}, "is not a slice"),
        ({"structures": {"seed_frames": "3"}}, "is not a slice"),
        ({"structures": {"seed_frames": "::0"}}, "step cannot be 0"),
    ):
        bad = yaml.safe_load(cfg.read_text())
        for k, v in change.items():
            bad[k] = {**raw.get(k, {}), **v}
        path = tmp_path / "bad.yaml"
        path.write_text(yaml.safe_dump(bad))
        with pytest.raises(ConfigError, match=message):
            load_distill_config(path)
    # a changed structures section cannot silently reuse another run's labels
    assert facet(["distill", str(cfg), "--stage", "generate"]) == 0
    changed = distill_config(tmp_path, structures={"seed": 7})
    assert facet(["distill", str(changed), "--stage", "label"]) == 2
    assert "another structures section" in capsys.readouterr().err
