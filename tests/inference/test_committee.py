"""Committee uncertainty: means and standard deviations equal the members' own numbers computed one by one."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk, molecule

from facetpot.testing import small_model, triclinic_cell
from facetpot import FacetCalculator
from facetpot.inference.committee import Committee


def members(n=3):
    return [small_model(seed=s) for s in range(n)]


def one_by_one(models, atoms):
    out = []
    for m in models:
        a = atoms.copy()
        a.calc = FacetCalculator(m)
        out.append(
            {
                "energy": a.get_potential_energy(),
                "forces": a.get_forces(),
                "stress": a.get_stress() if atoms.pbc.all() else None,
            }
        )
    return out


@pytest.mark.parametrize("atoms", [triclinic_cell(1), molecule("CH3OH")], ids=["crystal", "molecule"])
def test_committee_mean_and_std_equal_members_one_by_one(atoms):
    models = members()
    single = one_by_one(models, atoms)
    a = atoms.copy()
    a.calc = FacetCalculator(models)
    e = np.array([s["energy"] for s in single])
    f = np.stack([s["forces"] for s in single])
    assert a.get_potential_energy() == pytest.approx(e.mean(), abs=1e-10)
    assert a.calc.results["energy_std"] == pytest.approx(e.std(), abs=1e-10)
    assert a.calc.results["energy_std"] > 1e-3  # the seeds differ: a spread that a wrong combination would show
    np.testing.assert_allclose(a.calc.results["member_energies"], e, atol=1e-10)
    np.testing.assert_allclose(a.get_forces(), f.mean(0), atol=1e-10)
    expected_fstd = np.sqrt(((f - f.mean(0)) ** 2).sum(-1).mean(0))
    np.testing.assert_allclose(a.calc.results["forces_std"], expected_fstd, atol=1e-10)
    assert a.calc.results["forces_std"].shape == (len(atoms),)
    if atoms.pbc.all():
        s = np.stack([x["stress"] for x in single])
        np.testing.assert_allclose(a.get_stress(), s.mean(0), atol=1e-10)
        np.testing.assert_allclose(a.calc.results["stress_std"], s.std(0), atol=1e-10)
    else:
        assert "stress_std" not in a.calc.results


def test_identical_members_have_zero_spread():
    m = small_model(seed=4)
    a = bulk("Cu", "fcc", a=3.6) * (2, 1, 1)
    a.rattle(0.05, seed=2)
    a.calc = FacetCalculator([m, m])
    a.get_potential_energy()
    assert a.calc.results["energy_std"] == pytest.approx(0.0, abs=1e-12)
    assert np.abs(a.calc.results["forces_std"]).max() < 1e-12


def test_committee_refuses_mismatched_members():
    with pytest.raises(ValueError, match="at least two"):
        Committee([small_model()])
    with pytest.raises(ValueError, match="same elements"):
        Committee([small_model(), small_model(species=[1, 6, 8])])
    with pytest.raises(ValueError, match="cutoff"):
        Committee([small_model(), small_model(cutoff=4.5)])


def test_md_and_relax_report_the_committee_force_std(tmp_path):
    """`facet md --committee A B C` logs the largest force std per logged step (= the calculator's at the logged
    frame); `facet relax --committee` reports it per structure; one model leaves it out (md) or nan (relax)."""
    import csv

    from ase.io import read, write

    from facetpot.cli import main as facet
    from facetpot.io.model_file import save_model

    paths = []
    for s in range(3):
        paths.append(str(tmp_path / f"m{s}.pt"))
        save_model(small_model(seed=s, scale=0.3), paths[-1])
    si = bulk("Si", "diamond", a=5.43)
    si.rattle(0.05, seed=3)
    write(tmp_path / "si.cif", si)
    run = [
        "md",
        str(tmp_path / "si.cif"),
        "-o",
        str(tmp_path / "md"),
        "--steps",
        "4",
        "--log-every",
        "2",
        "--traj-every",
        "2",
        "--no-progress",
        "--committee",
    ] + paths
    assert facet(run) == 0
    rows = list(csv.DictReader(open(tmp_path / "md" / "thermo.csv")))
    assert [r["step"] for r in rows] == ["0", "2", "4"]
    last = read(tmp_path / "md" / "trajectory.extxyz", -1)
    last.calc = FacetCalculator(paths, dtype="float32")
    last.get_potential_energy()
    assert float(rows[-1]["max_force_std_eV_per_A"]) == pytest.approx(last.calc.results["forces_std"].max(), rel=1e-4)
    assert (
        facet(
            [
                "md",
                str(tmp_path / "si.cif"),
                "-o",
                str(tmp_path / "md1"),
                "--steps",
                "1",
                "--no-progress",
                "-m",
                paths[0],
            ]
        )
        == 0
    )
    assert "max_force_std_eV_per_A" not in open(tmp_path / "md1" / "thermo.csv").readline()
    assert (
        facet(["md", str(tmp_path / "si.cif"), "-o", str(tmp_path / "md2"), "-m", paths[0], "--committee"] + paths) == 2
    )
    assert facet(
        [
            "relax",
            str(tmp_path / "si.cif"),
            "-o",
            str(tmp_path / "r"),
            "--max-steps",
            "3",
            "--no-progress",
            "--committee",
        ]
        + paths
    ) in (0, 1)
    (row,) = list(csv.DictReader(open(tmp_path / "r" / "results.csv")))
    assert row["error"] == "" and float(row["max_force_std_final_eV_per_A"]) > 0


def test_committee_with_d3_adds_dispersion_to_the_mean_not_the_spread():
    pytest.importorskip("tad_dftd3")
    models = members(2)
    atoms = triclinic_cell(2)
    plain, with_d3 = atoms.copy(), atoms.copy()
    plain.calc = FacetCalculator(models)
    with_d3.calc = FacetCalculator(models, dispersion="d3")
    d3 = with_d3.get_potential_energy() - plain.get_potential_energy()
    assert d3 == pytest.approx(with_d3.calc.results["dispersion_energy"], abs=1e-9) and d3 < -1e-3
    assert with_d3.calc.results["energy_std"] == pytest.approx(plain.calc.results["energy_std"], abs=1e-10)
    np.testing.assert_allclose(
        with_d3.calc.results["member_energies"], plain.calc.results["member_energies"] + d3, atol=1e-9
    )
