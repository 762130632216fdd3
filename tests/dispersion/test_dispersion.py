"""D3 dispersion: against the DFT-D3 project's own implementation (``dftd3``), finite differences, batches,
the calculator's sum, and the errors a user can cause."""

import sys

import numpy as np
import pytest
import torch
from ase.build import bulk, molecule
from ase.calculators.calculator import all_changes
from ase.lattice.hexagonal import Graphite
from ase.spacegroup import crystal
from ase.stress import full_3x3_to_voigt_6_stress

from facetpot.testing import small_model
from facetpot.inference.calculator import FacetCalculator
from facetpot.dispersion import D3Dispersion, dispersion_graph
from facetpot.derivatives import compute_properties

dftd3_ase = pytest.importorskip("dftd3.ase")
dftd3_interface = pytest.importorskip("dftd3.interface")


def benzene():
    a = molecule("C6H6")
    a.rattle(0.03, seed=1)
    return a


def graphite():
    a = Graphite("C", latticeconstant={"a": 2.46, "c": 6.70}) * (1, 1, 1)
    a.rattle(0.02, seed=2)
    return a


def co2_crystal():
    """Dry ice (Pa-3, a = 5.624 Å): a molecular crystal."""
    a = crystal(["C", "O"], [(0, 0, 0), (0.1185, 0.1185, 0.1185)], spacegroup=205, cellpar=[5.624] * 3 + [90] * 3)
    a.rattle(0.02, seed=3)
    return a


def reference(atoms, damping):
    """Energy, forces, stress (or None) from the DFT-D3 project's own code, two-body only."""
    calc = dftd3_ase.DFTD3(method="PBE", damping="d3bj" if damping == "bj" else "d3zero")
    param = dftd3_interface.RationalDampingParam if damping == "bj" else dftd3_interface.ZeroDampingParam
    calc._dpar = param(method="pbe", atm=False)  # no three-body term: ours has none
    calc.calculate(atoms, ["energy", "forces", "stress"], all_changes)
    return calc.results["energy"], calc.results["forces"], calc.results.get("stress")


def ours(atoms, d3, stress=None):
    out = compute_properties(d3, dispersion_graph([atoms], d3.cutoff), forces=True, stress=stress)
    s = full_3x3_to_voigt_6_stress(out["stress"][0].detach().numpy()) if "stress" in out else None
    return float(out["energy"][0].detach()), out["forces"].detach().numpy(), s


@pytest.mark.parametrize("damping", ["bj", "zero"])
@pytest.mark.parametrize("make", [benzene, graphite, co2_crystal])
def test_d3_matches_the_dftd3_project(make, damping):
    atoms = make()
    e_ref, f_ref, s_ref = reference(atoms, damping)
    e, f, s = ours(atoms, D3Dispersion("pbe", damping))
    assert e < 0 and abs(e - e_ref) < 1e-6 * abs(e_ref)
    assert np.abs(f - f_ref).max() < 1e-7 + 1e-6 * np.abs(f_ref).max()
    if atoms.pbc.all():
        assert np.abs(s - s_ref).max() < 1e-9 + 1e-6 * np.abs(s_ref).max()


def test_d3_cutoffs_change_the_sum_as_the_reference_does():
    atoms = graphite()
    calc = dftd3_ase.DFTD3(method="PBE", damping="d3bj", realspace_cutoff={"disp2": 12.0, "cn": 8.0})
    calc._dpar = dftd3_interface.RationalDampingParam(method="pbe", atm=False)
    calc.calculate(atoms, ["energy"], all_changes)
    e, _, _ = ours(atoms, D3Dispersion("pbe", "bj", cutoff=12.0, cn_cutoff=8.0))
    e_default, _, _ = ours(atoms, D3Dispersion())
    assert abs(e - calc.results["energy"]) < 1e-6 * abs(e)
    assert abs(e - e_default) > 1e-3  # the cutoffs matter here: the test can tell them apart


def test_d3_forces_and_stress_are_derivatives_of_the_energy():
    atoms = co2_crystal() * (1, 1, 1)
    d3 = D3Dispersion("pbe", "bj", cutoff=10.0, cn_cutoff=8.0)
    e0, f, s = ours(atoms, d3)
    h = 1e-4
    for a, c in [(0, 0), (1, 2), (5, 1)]:
        plus, minus = atoms.copy(), atoms.copy()
        plus.positions[a, c] += h
        minus.positions[a, c] -= h
        fd = -(ours(plus, d3)[0] - ours(minus, d3)[0]) / (2 * h)
        assert abs(fd - f[a, c]) < 1e-6
    for k, (p, q) in enumerate([(0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1)]):
        energies = []
        for sign in (1, -1):
            strain = np.eye(3)
            strain[p, q] += sign * h / (2 if p != q else 1)
            strain[q, p] += sign * h / 2 if p != q else 0
            b = atoms.copy()
            b.set_cell(atoms.cell.array @ strain, scale_atoms=True)
            energies.append(ours(b, d3)[0])
        fd = (energies[0] - energies[1]) / (2 * h) / atoms.get_volume()
        assert abs(fd - s[k]) < 1e-7, k


def test_d3_batched_equals_one_by_one():
    structures = [benzene(), graphite(), co2_crystal(), bulk("Si", "diamond", 5.43)]
    d3 = D3Dispersion("pbe", "bj", cutoff=15.0)
    batch = compute_properties(d3, dispersion_graph(structures, d3.cutoff), forces=True, stress=True)
    start = 0
    for k, atoms in enumerate(structures):
        one = compute_properties(d3, dispersion_graph([atoms], d3.cutoff), forces=True, stress=atoms.pbc.all())
        n = len(atoms)
        assert torch.allclose(batch["energy"][k], one["energy"][0], rtol=1e-12)
        assert torch.allclose(batch["forces"][start : start + n], one["forces"], atol=1e-12)
        if atoms.pbc.all():
            assert torch.allclose(batch["stress"][k], one["stress"][0], atol=1e-12)
        start += n


def test_calculator_adds_d3_to_the_model():
    model = small_model()
    atoms = graphite() * (2, 2, 1)
    plain = FacetCalculator(model)
    with_d3 = FacetCalculator(model, dispersion="d3")
    e_ref, f_ref, s_ref = reference(atoms, "bj")
    assert abs(with_d3.get_potential_energy(atoms) - plain.get_potential_energy(atoms) - e_ref) < 1e-6
    assert abs(with_d3.results["dispersion_energy"] - e_ref) < 1e-6
    assert np.abs(with_d3.get_forces(atoms) - plain.get_forces(atoms) - f_ref).max() < 1e-7
    assert np.abs(with_d3.get_stress(atoms) - plain.get_stress(atoms) - s_ref).max() < 1e-9
    # per-atom terms still sum to the totals
    assert abs(with_d3.get_potential_energies(atoms).sum() - with_d3.get_potential_energy(atoms)) < 1e-9
    assert np.abs(with_d3.get_stresses(atoms).sum(0) - with_d3.get_stress(atoms)).max() < 1e-12


def test_d3_errors_say_what_is_wrong(monkeypatch):
    with pytest.raises(ValueError, match="d3-zero"):
        FacetCalculator(small_model(), dispersion="d4")
    with pytest.raises(ValueError, match="no D3.*functional 'pbx'"):
        D3Dispersion("pbx")
    with pytest.raises(ValueError, match="damping"):
        D3Dispersion("pbe", "bjm")
    with pytest.raises(TypeError, match="dispersion"):
        FacetCalculator(small_model(), damping="zero")
    d3 = D3Dispersion()
    with pytest.raises(ValueError, match="Z = 1-103"):
        d3.species_index(torch.tensor([6, 110]))
    monkeypatch.setitem(sys.modules, "tad_dftd3", None)
    with pytest.raises(ImportError, match=r"facetpot\[d3\]"):
        D3Dispersion()


def test_batched_relaxation_and_cli_add_d3(tmp_path, capsys):
    """The batched relaxation's energies with D3 are the calculator's; ``facet relax --d3`` and ``facet md --d3``
    differ from the runs without it by D3's energy; --d3-functional alone is refused."""
    import csv

    from ase.io import read, write

    from facetpot.cli import main as facet
    from facetpot.io.model_file import save_model
    from facetpot.workflows.batched_relax import BatchedRelaxation

    model = small_model(scale=0.3)
    structures = [graphite() * (2, 2, 1), co2_crystal()]
    relaxed = list(
        BatchedRelaxation(model, max_steps=0, dispersion="d3").run(
            [(str(k), a, None) for k, a in enumerate(structures)]
        )
    )
    for (result, _), atoms in zip(relaxed, structures):
        calc = FacetCalculator(model, dispersion="d3")
        assert abs(result.energy_initial - calc.get_potential_energy(atoms)) < 1e-8

    save_model(model, tmp_path / "model.pt")
    write(tmp_path / "graphite.extxyz", structures[0])
    energies = {}
    for tag, extra in (("plain", []), ("d3", ["--d3"]), ("d3zero", ["--d3", "zero", "--d3-functional", "pbe"])):
        out = tmp_path / tag
        assert facet(
            [
                "relax",
                str(tmp_path / "graphite.extxyz"),
                "-o",
                str(out),
                "--max-steps",
                "0",
                "--no-progress",
                "--dtype",
                "float64",
                "-m",
                str(tmp_path / "model.pt"),
            ]
            + extra
        ) in (0, 1)
        with open(out / "results.csv") as f:
            energies[tag] = float(next(csv.DictReader(f))["energy_initial_eV"])
    e_bj, _, _ = reference(structures[0], "bj")
    e_zero, _, _ = reference(structures[0], "zero")
    assert abs(energies["d3"] - energies["plain"] - e_bj) < 1e-6
    assert abs(energies["d3zero"] - energies["plain"] - e_zero) < 1e-6
    assert (
        facet(
            [
                "md",
                str(tmp_path / "graphite.extxyz"),
                "-o",
                str(tmp_path / "md"),
                "--steps",
                "1",
                "--d3",
                "--no-progress",
                "--dtype",
                "float64",
                "-m",
                str(tmp_path / "model.pt"),
            ]
        )
        == 0
    )
    first = read(tmp_path / "md" / "trajectory.extxyz", 0)
    plain = FacetCalculator(model).get_potential_energy(structures[0])
    assert abs(first.get_potential_energy() - plain - e_bj) < 1e-6
    assert (
        facet(
            [
                "relax",
                str(tmp_path / "graphite.extxyz"),
                "-o",
                str(tmp_path / "x"),
                "--d3-functional",
                "pbe0",
                "-m",
                str(tmp_path / "model.pt"),
            ]
        )
        == 2
    )
    assert "--d3-functional needs --d3" in capsys.readouterr().err
