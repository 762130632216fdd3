"""facetpot.predict: batched single points equal the ASE calculator one structure at a time, for every kind
of input (Atoms, pymatgen, files, folders), in input order; a bad structure gets an error and the others go on;
the model object passed in is not changed."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk, molecule
from ase.io import read, write

import facetpot
from facetpot.testing import small_model


def _structures():
    cu = bulk("Cu", "fcc", a=3.6, cubic=True)
    cu.rattle(0.05, seed=1)
    al = bulk("Al", "fcc", a=4.05) * (2, 1, 1)
    al.rattle(0.05, seed=2)
    mol = molecule("CH3CH2OH")  # no cell: no stress
    slab = bulk("Cu", "fcc", a=3.6, cubic=True) * (1, 1, 2)
    slab.pbc = [True, True, False]  # not fully periodic, but its box has a volume: the box's stress
    boxed = mol.copy()
    boxed.center(vacuum=4.0)  # no periodicity, a box: its stress too (ASE's convention)
    return [cu, al, mol, slab, cu.copy(), boxed]


def _one_by_one(model, atoms):
    a = atoms.copy()
    a.calc = facetpot.FacetCalculator(model, dtype="float64")
    stress = a.get_stress() if abs(a.cell.volume) > 0 else None
    return a.get_potential_energy(), a.get_forces(), stress, a.get_potential_energies()


@pytest.mark.parametrize("batch_atoms", [1, 8, 10_000])  # one structure per call, a few per call, one call
def test_batched_equals_one_by_one(batch_atoms):
    model = small_model(species=[1, 6, 8, 13, 29])
    structures = _structures()
    rows = facetpot.predict(structures, model=model, dtype="float64", batch_atoms=batch_atoms, energies=True)
    assert len(rows) == len(structures)
    for atoms, row in zip(structures, rows):
        energy, forces, stress, energies = _one_by_one(model, atoms)
        assert row["error"] == ""
        assert abs(row["energy"] - energy) < 1e-9
        assert row["forces"].shape == (len(atoms), 3)
        assert np.abs(row["forces"] - forces).max() < 1e-9
        assert np.abs(row["energies"] - energies).max() < 1e-9
        if stress is None:
            assert row["stress"] is None
        else:
            assert np.abs(row["stress"] - stress).max() < 1e-11
    assert [r["stress"] is None for r in rows] == [False, False, True, False, False, False]  # only the molecule


def test_files_folders_and_pymatgen(tmp_path):
    pytest.importorskip("pymatgen")
    from pymatgen.io.ase import AseAtomsAdaptor

    model = small_model(species=[1, 6, 8, 13, 29])
    cu, al, *_ = _structures()
    folder = tmp_path / "cifs"
    folder.mkdir()
    write(folder / "a_cu.cif", cu)
    write(folder / "b_al.cif", al)
    write(tmp_path / "two.extxyz", [al, cu])
    rows = facetpot.predict(
        [folder, tmp_path / "two.extxyz", AseAtomsAdaptor.get_structure(cu)],
        model=model,
        dtype="float64",
        batch_atoms=5,
    )
    assert [r["name"] for r in rows] == ["a_cu.cif", "b_al.cif", "two.extxyz@0", "two.extxyz@1", "2"]
    # as read back (CIF cells come back rotated, extxyz positions rounded)
    expected = [read(folder / "a_cu.cif"), read(folder / "b_al.cif"), *read(tmp_path / "two.extxyz", ":"), cu]
    single = facetpot.predict(AseAtomsAdaptor.get_structure(cu), model=model, dtype="float64")  # one, not its sites
    assert len(single) == 1 and abs(single[0]["energy"] - rows[4]["energy"]) < 1e-9
    for atoms, row in zip(expected, rows):
        energy, forces, stress, _ = _one_by_one(model, atoms)
        assert abs(row["energy"] - energy) < 1e-9, row["name"]
        assert np.abs(row["forces"] - forces).max() < 1e-9
        assert np.abs(row["stress"] - stress).max() < 1e-11


def test_bad_structures_get_errors_and_the_rest_goes_on(tmp_path):
    model = small_model(species=[1, 6, 8, 13, 29])
    cu, al, *_ = _structures()
    broken = tmp_path / "broken.cif"
    broken.write_text("data_x\n_cell_length_a oops\n")
    gold = Atoms("Au", cell=[3, 3, 3], pbc=True)  # not among the model's species
    nan = cu.copy()
    nan.positions[0, 0] = np.nan
    rows = facetpot.predict([cu, gold, broken, nan, al], model=model, dtype="float64", batch_atoms=100)
    assert [bool(r["error"]) for r in rows] == [False, True, True, True, False]
    assert "Au" in rows[1]["error"]
    assert "broken.cif" in rows[2]["error"]
    assert np.isnan(rows[1]["energy"]) and rows[1]["forces"] is None
    assert abs(rows[4]["energy"] - _one_by_one(model, al)[0]) < 1e-9


def test_the_model_passed_in_is_not_changed():
    model = small_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    facetpot.predict(_structures()[:2], model=model, dtype="float32")
    assert model.dtype == torch.float64
    assert all(p.requires_grad for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_argument_errors():
    with pytest.raises(ValueError, match="batch_atoms"):
        facetpot.predict([], model=small_model(), batch_atoms=0)
    assert facetpot.predict([], model=small_model()) == []


def test_facet_predict_command(tmp_path):
    """``facet predict``: a CSV row per structure in input order (the failed one with its error, rc 1) and an
    extxyz of the evaluated ones that keeps their reference labels and carries facetpot.predict's energies,
    forces and stress under facet_* keys."""
    import csv

    from ase.calculators.emt import EMT
    from ase.calculators.singlepoint import SinglePointCalculator

    from facetpot.cli import main

    model = small_model(species=[1, 6, 8, 13, 29])
    facetpot.save_model(model, tmp_path / "m.pt")
    cu, al, mol, *_ = _structures()
    for atoms in (cu, al):  # labelled data (EMT stands in for DFT)
        atoms.calc = EMT()
        atoms.calc = SinglePointCalculator(
            atoms, energy=atoms.get_potential_energy(), forces=atoms.get_forces(), stress=atoms.get_stress()
        )
    folder = tmp_path / "in"
    folder.mkdir()
    write(folder / "a.extxyz", [cu, al])
    write(folder / "b.xyz", mol)
    (folder / "c.cif").write_text("not a cif\n")
    rc = main(
        [
            "predict",
            str(folder),
            "-o",
            str(tmp_path / "out"),
            "-m",
            str(tmp_path / "m.pt"),
            "--dtype",
            "float64",
            "--batch-atoms",
            "6",
            "--no-progress",
        ]
    )
    assert rc == 1  # one structure failed
    rows = list(csv.DictReader(open(tmp_path / "out" / "results.csv")))
    assert [r["name"] for r in rows] == ["a.extxyz@0", "a.extxyz@1", "b.xyz", "c.cif"]
    assert [bool(r["error"]) for r in rows] == [False, False, False, True]
    assert rows[2]["stress_xx_eV_per_A3"] == ""  # a molecule: no stress
    written = read(tmp_path / "out" / "predicted.extxyz", ":")
    expected = facetpot.predict([folder / "a.extxyz", folder / "b.xyz"], model=model, dtype="float64")
    assert [a.info["name"] for a in written] == [r["name"] for r in expected]
    for atoms, row, line in zip(written, expected, rows):
        assert abs(atoms.info["facet_energy"] - row["energy"]) < 1e-8
        assert abs(float(line["energy_eV"]) - row["energy"]) < 1e-8
        assert np.abs(atoms.arrays["facet_forces"] - row["forces"]).max() < 1e-8
        if row["stress"] is not None:
            assert np.abs(atoms.info["facet_stress"] - row["stress"]).max() < 1e-8
        else:
            assert "facet_stress" not in atoms.info
    for atoms, labelled in zip(written[:2], (cu, al)):  # the reference labels are the input's, not the model's
        assert abs(atoms.get_potential_energy() - labelled.get_potential_energy()) < 1e-8
        assert np.abs(atoms.get_forces() - labelled.get_forces()).max() < 1e-8
        assert np.abs(atoms.get_stress() - labelled.get_stress()).max() < 1e-8
        assert abs(atoms.get_potential_energy() - atoms.info["facet_energy"]) > 1e-3
    assert written[2].calc is None  # unlabelled input: predictions only, under their keys
    assert main(["predict", str(folder / "b.xyz"), "-o", str(folder / "b.xyz"), "-m", str(tmp_path / "m.pt")]) == 2


def test_a_model_file_is_prepared_once_until_it_changes(tmp_path, monkeypatch):
    """predict calls on one model file reuse the model the first prepared (a loop of calls reads and compiles it
    once); a rewritten file, or other options, prepare it again, and the answers follow the file."""
    from facetpot.inference import single_points
    from facetpot.io.model_file import save_model

    prepared = []
    real = single_points.inference_model
    monkeypatch.setattr(single_points, "inference_model", lambda *a, **k: prepared.append(a) or real(*a, **k))
    atoms = _structures()[0]
    path = tmp_path / "m.pt"
    save_model(small_model(seed=1, species=[29]), path)
    first = facetpot.predict([atoms], model=path, dtype="float64")[0]
    again = facetpot.predict([atoms], model=path, dtype="float64")[0]
    assert len(prepared) == 1 and again["energy"] == first["energy"]
    facetpot.predict([atoms], model=path, dtype="float32")
    assert len(prepared) == 2
    save_model(small_model(seed=2, species=[29]), path)  # another model in the same file
    changed = facetpot.predict([atoms], model=path, dtype="float64")[0]
    assert len(prepared) == 3 and abs(changed["energy"] - first["energy"]) > 1e-6
    ref, _, _, _ = _one_by_one(small_model(seed=2, species=[29]), atoms)
    assert abs(changed["energy"] - ref) < 1e-8
