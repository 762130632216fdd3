"""Every user mistake is a clear ValueError (or a correct finite answer), never a crash or silent junk."""

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

import facetpot
from facetpot.testing import small_model


@pytest.fixture
def calc():
    return facetpot.FacetCalculator(small_model(), dtype="float64")


def _energy(calc, atoms):
    atoms.calc = calc
    return atoms.get_potential_energy()


def test_unknown_element_is_named(calc):
    atoms = bulk("Au", "fcc", a=4.08)  # Au is not among the small model's species
    with pytest.raises(ValueError, match=r"element\(s\) Au not covered.*knows: H C O Al Si Cu"):
        _energy(calc, atoms)


def test_nan_and_inf(calc):
    atoms = bulk("Si", "diamond", a=5.43)
    atoms.positions[1, 2] = np.nan
    with pytest.raises(ValueError, match=r"non-finite .* positions for atom\(s\) \[1\]"):
        _energy(calc, atoms)
    atoms = bulk("Si", "diamond", a=5.43)
    atoms.cell[0, 0] = np.inf
    with pytest.raises(ValueError, match="non-finite .*cell"):
        _energy(calc, atoms)


def test_empty_structure(calc):
    with pytest.raises(ValueError, match="no atoms"):
        _energy(calc, Atoms())


def test_zero_volume_periodic_cell(calc):
    atoms = Atoms("Si2", positions=[[0, 0, 0], [1, 1, 1]], cell=[[3, 0, 0], [0, 3, 0], [3, 3, 0]], pbc=True)
    with pytest.raises(ValueError, match="linearly dependent|zero volume"):
        _energy(calc, atoms)
    atoms = Atoms("Si", positions=[[0, 0, 0]], cell=[3, 3, 0], pbc=True)
    with pytest.raises(ValueError, match="cell vector 2 is zero"):
        _energy(calc, atoms)


def test_overlapping_atoms_are_refused_unless_allowed(calc):
    """Atoms closer than 0.5 Å are refused with the pair named (issue 20 item 4), also a close periodic image
    and a pair that only a periodic image brings close; min_distance=0 evaluates them, with finite answers."""
    atoms = Atoms("SiC", positions=[[0, 0, 0], [0, 0, 0]], cell=[5, 5, 5], pbc=True)
    atoms.calc = calc
    with pytest.raises(ValueError, match=r"overlapping atoms: atoms 0 \(Si\) and 1 \(C\) are 0.000 Å apart"):
        atoms.get_potential_energy()
    across = Atoms("Si2", positions=[[0.1, 0, 0], [4.95, 0, 0]], cell=[5, 5, 5], pbc=True)  # 0.15 Å via the image
    across.calc = calc
    with pytest.raises(ValueError, match="0.150 Å apart"):
        across.get_potential_energy()
    dimer = Atoms("Si2", positions=[[0, 0, 0], [0, 0, 0.6]])  # above the threshold: evaluated
    dimer.calc = calc
    assert np.isfinite(dimer.get_potential_energy())
    allowed = facetpot.FacetCalculator(calc.model, min_distance=0)
    atoms.calc = allowed
    assert np.isfinite(atoms.get_potential_energy())
    assert np.all(np.isfinite(atoms.get_forces()))
    assert np.all(np.isfinite(atoms.get_stress()))
    with pytest.raises(ValueError, match="min_distance must be >= 0.0"):
        facetpot.FacetCalculator(calc.model, min_distance=-1)


def test_isolated_atoms_have_their_reference_energy():
    model = small_model()
    model.set_atomic_energies({14: -5.4321, 8: -1.25})
    calc = facetpot.FacetCalculator(model, dtype="float64")
    atoms = Atoms("SiO", positions=[[0, 0, 0], [20, 0, 0]])  # far beyond the cutoff
    assert _energy(calc, atoms) == pytest.approx(-5.4321 - 1.25, abs=1e-12)
    assert np.all(atoms.get_forces() == 0)
    assert np.allclose(atoms.get_potential_energies(), [-5.4321, -1.25], atol=1e-12)


def test_stress_without_cell_is_not_silently_zero(calc):
    from ase.calculators.calculator import PropertyNotImplementedError

    atoms = Atoms("SiO", positions=[[0, 0, 0], [1.6, 0, 0]])
    atoms.calc = calc
    assert np.isfinite(atoms.get_potential_energy())
    with pytest.raises(PropertyNotImplementedError, match="non-zero volume"):
        atoms.get_stress()


def test_bad_model_arguments(tmp_path):
    with pytest.raises(ValueError, match="unknown pretrained model 'facet-xl'; known names"):
        facetpot.FacetCalculator("facet-xl")
    with pytest.raises(FileNotFoundError, match="model file not found"):
        facetpot.FacetCalculator(str(tmp_path / "nothing.pt"))
    with pytest.raises(ValueError, match="dtype"):
        facetpot.FacetCalculator(small_model(), dtype="float16")
    with pytest.raises(TypeError, match="pymatgen Structure"):
        facetpot.to_atoms("Si")
