"""Extensivity, smoothness at the cutoff, and energy conservation in NVE."""

import numpy as np
from ase import Atoms, units
from ase.md.velocitydistribution import thermalize_momenta
from ase.md.verlet import VelocityVerlet

import facetpot
from facetpot.testing import model_outputs, small_model, awkward_structures


def test_supercell_is_extensive():
    model = small_model()
    for name in ("triclinic", "si_primitive"):
        atoms = awkward_structures()[name]
        e1 = model_outputs(model, atoms)
        sup = atoms * (2, 2, 2)
        e8 = model_outputs(model, sup)
        assert abs(e8["energy"].item() - 8 * e1["energy"].item()) < 1e-10 * abs(8 * e1["energy"].item())
        assert np.allclose(e8["forces"].numpy()[: len(atoms)], e1["forces"].numpy(), atol=1e-10)
        assert np.allclose(e8["stress"].numpy(), e1["stress"].numpy(), atol=1e-10)


def test_energy_is_continuous_across_the_cutoff():
    """A dimer pulled through r_c: energy and force go smoothly to the isolated-atom values."""
    model = small_model()
    rc = model.cutoff

    def ef(r):
        out = model_outputs(model, Atoms("CO", positions=[[0, 0, 0], [r, 0, 0]]))
        return out["energy"].item(), out["forces"].numpy()[1, 0]

    e_far, f_far = ef(rc + 1e-3)
    e_iso = float(model.atomic_energies[model.species.index(6)] + model.atomic_energies[model.species.index(8)])
    assert abs(e_far - e_iso) < 1e-12 and f_far == 0.0
    for d in (1e-2, 1e-3, 1e-4):
        e_in, f_in = ef(rc - d)
        assert abs(e_in - e_iso) < 10 * d**3 * (1 + abs(ef(rc - 0.3)[0] - e_iso)) / 0.3**3 + 1e-12
        assert abs(f_in) < 10 * d**2 * (1 + abs(ef(rc - 0.3)[1])) / 0.3**2 + 1e-12
    # no jump anywhere on a fine scan through the cutoff
    rs = np.linspace(rc - 0.05, rc + 0.05, 101)
    es = np.array([ef(r)[0] for r in rs])
    assert np.abs(np.diff(es)).max() < 1e-6


def test_nve_conserves_energy():
    model = small_model()
    # make the untrained potential gentle enough for 1 fs steps: shrink the interaction energy
    model.set_scale({z: 0.05 for z in model.species})
    atoms = awkward_structures()["triclinic"] * (2, 1, 1)
    # random fractional positions: two atoms pass within 0.5 Å of each other; the test is about conservation
    atoms.calc = facetpot.FacetCalculator(model, dtype="float64", min_distance=0)
    thermalize_momenta(atoms, temperature_K=300, rng=np.random.default_rng(0))
    dyn = VelocityVerlet(atoms, timestep=0.5 * units.fs)
    energies, kinetic = [], []
    for _ in range(200):
        dyn.run(1)
        energies.append(atoms.get_total_energy())
        kinetic.append(atoms.get_kinetic_energy())
    energies = np.array(energies)
    kinetic_scale = 1.5 * len(atoms) * units.kB * 300
    assert np.ptp(energies) < 2e-3 * kinetic_scale + 1e-4 * len(atoms), np.ptp(energies)
    # and it actually moved: kinetic energy swings far more than the total drifts
    assert np.ptp(kinetic) > 20 * np.ptp(energies), (np.ptp(kinetic), np.ptp(energies))
