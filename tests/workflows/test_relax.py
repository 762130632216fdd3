"""facet relax: many structures relaxed one by one, failures isolated, outputs streamed, shards."""
from __future__ import annotations

import csv

import numpy as np
import pytest
from ase.build import bulk
from ase.filters import FrechetCellFilter
from ase.io import read, write
from ase.optimize import FIRE

import facetpot
from conftest import small_model
from facetpot.cli import main as facet
from facetpot.io.model_file import save_model


@pytest.fixture
def inputs(tmp_path):
    """A model of Al/Cu with a gentle energy scale, three good structures in two files, a broken file and
    a structure with an element the model does not cover."""
    model = small_model(species=[13, 29], scale=0.3)
    save_model(model, tmp_path / "model.pt")
    cu = bulk("Cu", "fcc", a=3.7, cubic=True)
    cu.rattle(0.05, seed=1)
    al = bulk("Al", "fcc", a=4.0) * (2, 1, 1)
    al.rattle(0.05, seed=2)
    mixed = cu.copy()
    mixed.numbers[0] = 13
    write(tmp_path / "many.extxyz", [cu, al])
    write(tmp_path / "one.cif", mixed)
    (tmp_path / "broken.cif").write_text("data_x\n_cell_length_a oops\n")
    write(tmp_path / "gold.extxyz", bulk("Au", "fcc", a=4.08))
    return tmp_path, model


def rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_relax_many_with_failures(inputs):
    folder, model = inputs
    out = folder / "out"
    code = facet(["relax", str(folder / "model.pt"), str(folder / "many.extxyz"), str(folder / "one.cif"),
                  str(folder / "broken.cif"), str(folder / "gold.extxyz"), "-o", str(out), "--fmax", "0.01",
                  "--dtype", "float64", "--no-progress"])
    assert code == 1  # not everything converged: two failures
    table = {r["name"]: r for r in rows(out / "results.csv")}
    assert list(table) == ["many.extxyz@0", "many.extxyz@1", "one.cif", "broken.cif", "gold.extxyz"]
    assert "cannot read" in table["broken.cif"]["error"]
    assert "Au" in table["gold.extxyz"]["error"] and "not covered" in table["gold.extxyz"]["error"]
    for name in ("many.extxyz@0", "many.extxyz@1", "one.cif"):
        assert table[name]["converged"] == "True" and table[name]["error"] == ""
        assert float(table[name]["fmax_final_eV_per_A"]) < 0.011  # atoms' forces; the filter converges its own (cell-scaled) ones
        assert float(table[name]["energy_final_eV"]) < float(table[name]["energy_initial_eV"])
    relaxed = read(out / "relaxed.extxyz", ":")
    assert [a.info["name"] for a in relaxed] == ["many.extxyz@0", "many.extxyz@1", "one.cif"]
    # the batch reaches the minima of ASE's FIRE + FrechetCellFilter run one by one
    for k, atoms in enumerate(read(folder / "many.extxyz", ":") + [read(folder / "one.cif")]):
        atoms.calc = facetpot.FacetCalculator(model)
        opt = FIRE(FrechetCellFilter(atoms), logfile=None)
        opt.run(fmax=0.01, steps=500)
        name = relaxed[k].info["name"]
        assert abs(atoms.get_potential_energy() - float(table[name]["energy_final_eV"])) < 1e-5 * len(atoms)
        assert np.abs(atoms.positions - relaxed[k].positions).max() < 1e-3
        assert np.abs(atoms.cell.array - relaxed[k].cell.array).max() < 1e-3
        assert int(table[name]["steps"]) == opt.nsteps  # the same trajectory, step for step


def test_shards_split_the_structures(inputs):
    folder, _ = inputs
    names = []
    for shard in ("0/2", "1/2"):
        out = folder / f"shard{shard[0]}"
        facet(["relax", str(folder / "model.pt"), str(folder / "many.extxyz"), str(folder / "one.cif"),
               "-o", str(out), "--shard", shard, "--positions-only", "--max-steps", "3", "--no-progress"])
        names.append([r["name"] for r in rows(out / "results.csv")])
    assert names == [["many.extxyz@0", "one.cif"], ["many.extxyz@1"]]


def test_bad_arguments(inputs, capsys):
    folder, _ = inputs
    assert facet(["relax", str(folder / "model.pt"), str(folder / "nothing.xyz"), "-o", str(folder / "o")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert facet(["relax", str(folder / "model.pt"), str(folder / "one.cif"), "-o", str(folder / "o"),
                  "--shard", "3/2"]) == 2
    assert "shard" in capsys.readouterr().err


@pytest.mark.parametrize("optimizer", ["fire", "bfgs"])
def test_batch_size_does_not_change_results(inputs, optimizer):
    """One structure at a time (max_atoms 1) and all together give the same relaxations."""
    from facetpot.workflows.relax import relax_files

    folder, _ = inputs
    tables = []
    for max_atoms in (1, 1000):
        out = folder / f"out{max_atoms}"
        relax_files(folder / "model.pt", [folder / "many.extxyz", folder / "one.cif"], out, dtype="float64",
                    progress=False, fmax=0.01, optimizer=optimizer, max_atoms=max_atoms)
        tables.append(rows(out / "results.csv"))
    for a, b in zip(*tables):
        assert a["name"] == b["name"] and a["steps"] == b["steps"] and a["converged"] == "True"
        assert abs(float(a["energy_final_eV"]) - float(b["energy_final_eV"])) < 1e-8


def test_symmetry_is_kept(inputs):
    from ase.spacegroup.symmetrize import check_symmetry

    folder, _ = inputs
    write(folder / "al.extxyz", bulk("Al", "fcc", a=4.1, cubic=True))
    out = folder / "sym"
    assert facet(["relax", str(folder / "model.pt"), str(folder / "al.extxyz"), "-o", str(out), "--symmetry",
                  "--fmax", "0.01", "--no-progress"]) == 0
    relaxed = read(out / "relaxed.extxyz")
    assert check_symmetry(relaxed, 1e-4).number == 225
