"""Forces, stress and virials are exact derivatives of the energy (central differences, float64)."""

import numpy as np
import pytest

from facetpot.testing import model_outputs, small_model, awkward_structures


def _energy(model, atoms):
    return float(model_outputs(model, atoms, forces=False, stress=False, virials=False)["energy"][0])


@pytest.mark.parametrize("name", ["triclinic", "mixed_pbc", "molecule"])
@pytest.mark.parametrize("nonlinearity", ["s2_mlp", "gate"])
def test_forces_are_minus_energy_gradient(name, nonlinearity):
    model = small_model(nonlinearity=nonlinearity)
    atoms = awkward_structures()[name]
    forces = model_outputs(model, atoms)["forces"].numpy()
    h = 1e-5
    rng = np.random.default_rng(0)
    for i in rng.choice(len(atoms), size=min(3, len(atoms)), replace=False):
        for a in range(3):
            p, m = atoms.copy(), atoms.copy()
            p.positions[i, a] += h
            m.positions[i, a] -= h
            fd = -(_energy(model, p) - _energy(model, m)) / (2 * h)
            assert abs(fd - forces[i, a]) < 1e-6 * max(1.0, abs(fd)), (i, a, fd, forces[i, a])


@pytest.mark.parametrize("name", ["triclinic", "si_primitive"])
def test_stress_is_strain_derivative(name):
    model = small_model()
    atoms = awkward_structures()[name]
    out = model_outputs(model, atoms)
    stress = out["stress"].numpy()[0]
    volume = atoms.get_volume()
    h = 1e-5
    for a in range(3):
        for b in range(3):

            def strained(eps):
                f = np.eye(3)
                f[a, b] += eps
                s = atoms.copy()
                s.set_cell(atoms.cell.array @ f, scale_atoms=False)
                s.positions = atoms.positions @ f
                return _energy(model, s)

            fd = (strained(h) - strained(-h)) / (2 * h) / volume
            assert abs(fd - stress[a, b]) < 1e-6 * max(1.0, abs(fd)), (a, b, fd, stress[a, b])


def test_per_atom_quantities_sum_to_totals():
    model = small_model()
    atoms = awkward_structures()["triclinic"]
    out = model_outputs(model, atoms)
    assert np.isclose(out["energies"].sum().item(), out["energy"].item(), rtol=1e-12)
    virial = out["virials"].numpy().sum(0)
    assert np.allclose(-virial / atoms.get_volume(), out["stress"].numpy()[0], atol=1e-12)
    # forces sum to zero (translation invariance), net torque of a molecule vanishes (rotation invariance)
    assert np.abs(out["forces"].numpy().sum(0)).max() < 1e-12
    mol = awkward_structures()["molecule"]
    f = model_outputs(model, mol)["forces"].numpy()
    torque = np.cross(mol.positions - mol.positions.mean(0), f).sum(0)
    assert np.abs(torque).max() < 1e-10
