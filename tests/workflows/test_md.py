"""facet md: NVE conserves energy, NVT holds its temperature, NPT runs, a restart continues the run."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from ase.build import bulk
from ase.io import read, write

from facetpot.testing import small_model
from facetpot.cli import main as facet
from facetpot.io.model_file import save_model


@pytest.fixture
def system(tmp_path):
    model = small_model(species=[13, 29], scale=0.3)
    save_model(model, tmp_path / "model.pt")
    cu = bulk("Cu", "fcc", a=3.75, cubic=True) * (2, 2, 2)
    cu.numbers[::5] = 13
    write(tmp_path / "cu.extxyz", cu)
    return tmp_path


def thermo(path):
    with open(path) as f:
        return [{k: float(v) for k, v in r.items()} for r in csv.DictReader(f)]


def md(system, out, *extra):
    return facet(
        [
            "md",
            str(system / "model.pt"),
            str(system / "cu.extxyz"),
            "-o",
            str(system / out),
            "--dtype",
            "float64",
            "--no-progress",
            *extra,
        ]
    )


def test_nve_conserves_energy(system):
    assert md(system, "nve", "--steps", "200", "--timestep", "1", "--temperature", "300", "--log-every", "5") == 0
    rows = thermo(system / "nve" / "thermo.csv")
    e_tot = np.array([r["E_tot_eV"] for r in rows])
    e_pot = np.array([r["E_pot_eV"] for r in rows])
    assert len(rows) == 41 and rows[-1]["step"] == 200
    assert np.ptp(e_pot) > 0.05  # the atoms move: a real test of conservation
    assert np.abs(e_tot - e_tot[0]).max() < 0.02 * np.ptp(e_pot)


def test_nvt_reaches_target_temperature(system):
    assert (
        md(
            system,
            "nvt",
            "--ensemble",
            "langevin",
            "--steps",
            "600",
            "--temperature",
            "500",
            "--friction",
            "0.05",
            "--log-every",
            "2",
            "--traj-every",
            "100",
        )
        == 0
    )
    temps = np.array([r["T_K"] for r in thermo(system / "nvt" / "thermo.csv")])[100:]
    assert abs(temps.mean() - 500) < 0.2 * 500


def test_npt_runs_and_restart_continues(system):
    assert (
        md(
            system,
            "npt",
            "--ensemble",
            "npt",
            "--steps",
            "40",
            "--pressure",
            "1.0",
            "--log-every",
            "10",
            "--traj-every",
            "20",
        )
        == 0
    )
    assert md(system, "npt", "--ensemble", "npt", "--steps", "40") == 2  # refuses to overwrite a run
    assert (
        md(system, "npt", "--ensemble", "npt", "--steps", "80", "--restart", "--log-every", "10", "--traj-every", "20")
        == 0
    )
    rows = thermo(system / "npt" / "thermo.csv")
    assert [int(r["step"]) for r in rows] == list(range(0, 81, 10))
    frames = read(system / "npt" / "trajectory.extxyz", ":")
    assert [f.info["step"] for f in frames] == [0, 20, 40, 60, 80]
    assert frames[-1].get_volume() != frames[0].get_volume()  # the cell moves under NPT
    assert np.all(np.isfinite([r["P_GPa"] for r in rows]))


@pytest.mark.parametrize("ensemble", ["nve", "langevin", "nhc", "npt"])
def test_restart_reproduces_the_uninterrupted_run(system, ensemble):
    """Stopped at step 15 (not a multiple of --traj-every: the last step is saved anyway) and restarted to 30, a
    run equals the uninterrupted one in every thermo.csv value and the final positions, in every ensemble: the
    integrator's variables (Nose-Hoover chain, MTK barostat, Langevin's random generator) are saved beside the
    frames (issue 20 item 10). A restart with another ensemble is refused."""
    common = (
        "--ensemble",
        ensemble,
        "--log-every",
        "5",
        "--traj-every",
        "10",
        "--temperature",
        "600",
        "--tdamp",
        "20",
        "--pdamp",
        "100",
        "--pressure",
        "2.0",
        "--friction",
        "0.05",
    )
    assert md(system, "whole", "--steps", "30", *common) == 0
    assert md(system, "split", "--steps", "15", *common) == 0
    assert read(system / "split" / "trajectory.extxyz", -1).info["step"] == 15
    other = "nve" if ensemble != "nve" else "nhc"
    assert md(system, "split", "--steps", "30", "--restart", "--ensemble", other) == 2
    assert md(system, "split", "--steps", "30", "--restart", *common) == 0
    whole = list(csv.DictReader(open(system / "whole" / "thermo.csv")))
    split = list(csv.DictReader(open(system / "split" / "thermo.csv")))
    steps = [int(r["step"]) for r in split]
    assert steps == [0, 5, 10, 15, 20, 25, 30] and [int(r["step"]) for r in whole] == [0, 5, 10, 15, 20, 25, 30]
    assert whole == split  # every column, to the 10 digits written
    a, b = read(system / "whole" / "trajectory.extxyz", -1), read(system / "split" / "trajectory.extxyz", -1)
    assert np.abs(a.positions - b.positions).max() < 1e-10 and np.abs(a.get_momenta() - b.get_momenta()).max() < 1e-10
    assert float(whole[-1]["T_K"]) != float(whole[0]["T_K"])  # the atoms moved


@pytest.mark.parametrize("ensemble", ["nve", "langevin"])
def test_starts_at_the_asked_temperature(system, ensemble):
    """The first thermo row reads the asked temperature (a 2-atom cell drew 43.6 K of 300 before the scaling;
    Langevin's centre-of-mass constraint removes 3 degrees of freedom, which the temperature counts)."""
    write(system / "two.extxyz", bulk("Al", "fcc", a=4.05) * (2, 1, 1))
    assert (
        facet(
            [
                "md",
                str(system / "two.extxyz"),
                "-m",
                str(system / "model.pt"),
                "-o",
                str(system / ensemble),
                "--ensemble",
                ensemble,
                "--steps",
                "1",
                "--temperature",
                "300",
                "--no-progress",
            ]
        )
        == 0
    )
    assert abs(thermo(system / ensemble / "thermo.csv")[0]["T_K"] - 300.0) < 1e-6


def test_unwritable_output_is_refused_before_the_run(system, capsys):
    (system / "a_file").write_text("")
    assert md(system, "a_file", "--steps", "1") == 2
    assert "is a file" in capsys.readouterr().err
