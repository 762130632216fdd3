"""facetpot in TorchSim (``facetpot.torchsim.FacetModel``): TorchSim's own interface check, the calculator's
numbers for a batch, and TorchSim's relaxation and MD reaching what ASE reaches with the same model."""

import importlib
import sys

import numpy as np
import pytest
import torch
from ase.build import bulk
from ase.filters import FrechetCellFilter
from ase.optimize import FIRE

from facetpot.inference.calculator import FacetCalculator
from facetpot.testing import small_model

ts = pytest.importorskip("torch_sim")
from facetpot.torchsim import FacetModel  # noqa: E402
from torch_sim.models.interface import validate_model_outputs  # noqa: E402

CPU = torch.device("cpu")


def _crystals():
    si = bulk("Si", "diamond", a=5.5)  # 2 atoms: a cell smaller than the cutoff (self images)
    si.rattle(0.05, seed=1)
    si.positions += 7.0  # outside its cell
    cu = bulk("Cu", "fcc", a=3.5) * (2, 1, 1)
    cu.rattle(0.05, seed=2)
    al = bulk("Al", "fcc", a=4.1, cubic=True)
    al.rattle(0.05, seed=3)
    al.set_cell(al.cell.array @ np.array([[1, 0.05, 0], [0, 1, 0.03], [0, 0, 1.02]]), scale_atoms=True)
    return [si, cu, al]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_torchsim_validates_the_shipped_model(dtype):
    validate_model_outputs(FacetModel(device="cpu", dtype=dtype), CPU, dtype)


@pytest.mark.parametrize("neighbor_list", ["vesin", "torch"])
def test_a_batch_equals_the_calculator_one_by_one(neighbor_list):
    model = small_model(species=[13, 14, 29])
    ts_model = FacetModel(model, device="cpu", dtype=torch.float64, neighbor_list=neighbor_list)
    crystals = _crystals()
    out = ts_model(ts.io.atoms_to_state(crystals, CPU, torch.float64))
    assert out["energy"].shape == (3,) and out["forces"].shape == (8, 3) and out["stress"].shape == (3, 3, 3)
    calc = FacetCalculator(model, dtype="float64")
    start = 0
    for k, atoms in enumerate(crystals):
        atoms.calc = calc
        n = len(atoms)
        assert abs(atoms.get_potential_energy() - float(out["energy"][k])) < 1e-9
        np.testing.assert_allclose(out["forces"][start : start + n].numpy(), atoms.get_forces(), atol=1e-9)
        np.testing.assert_allclose(out["stress"][k].numpy(), atoms.get_stress(voigt=False), atol=1e-10)
        assert np.abs(atoms.get_forces()).max() > 1e-3  # rattled: the comparison is not of zeros
        start += n


def test_committee_gives_means_and_spread():
    members = [small_model(species=[13, 14, 29], seed=s) for s in (0, 1)]
    crystals = _crystals()
    out = FacetModel(members, device="cpu")(ts.io.atoms_to_state(crystals, CPU, torch.float64))
    calc = FacetCalculator(members, dtype="float64")
    for k, atoms in enumerate(crystals):
        atoms.calc = calc
        assert abs(atoms.get_potential_energy() - float(out["energy"][k])) < 1e-9
        assert abs(calc.results["energy_std"] - float(out["energy_std"][k])) < 1e-9
    assert float(out["energy_std"].min()) > 0


def test_optimize_reaches_the_ase_minimum():
    """ts.optimize (FIRE + Frechet cell) on a strained batch ends where ASE's FIRE + FrechetCellFilter ends."""
    crystals = [bulk("Si", "diamond", a=5.6), bulk("Cu", "fcc", a=3.5) * (2, 1, 1)]
    for k, a in enumerate(crystals):
        a.rattle(0.05, seed=k)
    model = FacetModel(device="cpu", dtype=torch.float64)
    state = ts.optimize(
        ts.io.atoms_to_state(crystals, CPU, torch.float64),
        model,
        optimizer=ts.frechet_cell_fire,
        convergence_fn=ts.generate_force_convergence_fn(0.01),
        max_steps=600,
    )
    final = model(state)
    assert float(final["forces"].abs().max()) < 0.01
    calc = FacetCalculator("facet-7net0-spline", dtype="float64")
    for k, a in enumerate(crystals):
        a.calc = calc
        FIRE(FrechetCellFilter(a), logfile=None).run(fmax=0.005, steps=600)
        n = len(a)
        assert abs(a.get_potential_energy() / n - float(final["energy"][k]) / n) < 1e-3  # eV/atom
        volume = float(torch.det(state.cell[k]).abs())
        assert abs(volume / a.get_volume() - 1) < 5e-3


def test_integrate_conserves_energy_and_thermostats():
    atoms = bulk("Si", "diamond", a=5.43, cubic=True)
    atoms.rattle(0.03, seed=4)
    model = FacetModel(device="cpu", dtype=torch.float64, compute_stress=False)
    state = ts.io.atoms_to_state([atoms], CPU, torch.float64)
    e0 = float(model(state)["energy"][0])
    # NVE from rest at 1 fs: kinetic + potential stays put while the rattle turns into motion
    nve = ts.integrate(state, model, integrator=ts.nve, n_steps=40, temperature=0.0, timestep=0.001)
    kinetic = float(ts.calc_kinetic_energy(masses=nve.masses, momenta=nve.momenta))
    potential = float(model(nve)["energy"][0])
    assert kinetic > 1e-3  # it moved
    assert abs(kinetic + potential - e0) < 2e-3  # eV, 8 atoms
    hot = ts.integrate(state, model, integrator=ts.nvt_langevin, n_steps=30, temperature=600.0, timestep=0.001)
    assert torch.isfinite(hot.positions).all() and float((hot.positions - state.positions).abs().max()) > 1e-3


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="neighbor_list"):
        FacetModel(small_model(species=[14]), neighbor_list="ase")
    model = FacetModel(small_model(species=[14]), device="cpu")
    with pytest.raises(ValueError, match="element|species|Cu|29"):
        model(ts.io.atoms_to_state([bulk("Cu", "fcc", a=3.6)], CPU, torch.float64))
    state = ts.io.atoms_to_state([bulk("Si", "diamond", a=5.43)] * 2, CPU, torch.float64)
    state.positions[3, 0] = float("nan")
    with pytest.raises(ValueError, match=r"non-finite positions in system\(s\) \[1\]"):
        model(state)


def test_missing_torchsim_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch_sim.models.interface", None)
    monkeypatch.delitem(sys.modules, "facetpot.torchsim")
    with pytest.raises(ImportError, match=r"facetpot\[torchsim\]"):
        importlib.import_module("facetpot.torchsim")
