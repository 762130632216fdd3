"""calc.get_hessian: analytic second derivatives equal central differences of the forces, symmetric, a
committee's is the mean of its members'; dispersion is refused rather than silently left out."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk

import facetpot
from facetpot.testing import small_model


def _cell():
    atoms = bulk("Cu", "fcc", a=3.7, cubic=True)
    atoms.numbers[1] = 13
    atoms.rattle(0.05, seed=3)
    return atoms


def _finite_difference_hessian(calc, atoms, h=1e-4):
    n = len(atoms)
    out = np.zeros((3 * n, 3 * n))
    for k in range(3 * n):
        i, a = divmod(k, 3)
        forces = []
        for sign in (1, -1):
            moved = atoms.copy()
            moved.positions[i, a] += sign * h
            moved.calc = calc
            forces.append(moved.get_forces().reshape(-1))
        out[:, k] = -(forces[0] - forces[1]) / (2 * h)
    return out


def test_hessian_equals_finite_differences_of_forces():
    model = small_model(species=[13, 29], scale=0.3)
    calc = facetpot.FacetCalculator(model, dtype="float64")
    atoms = _cell()
    analytic = calc.get_hessian(atoms)
    assert analytic.shape == (12, 12) and analytic.dtype == np.float64
    numeric = _finite_difference_hessian(facetpot.FacetCalculator(model, dtype="float64"), atoms)
    assert np.abs(analytic).max() > 0.1  # a real test: the curvature is far from zero
    assert np.abs(analytic - numeric).max() < 1e-6 * max(1.0, np.abs(analytic).max())
    assert np.abs(analytic - analytic.T).max() < 1e-9
    # translating every atom together changes nothing: each row sums to zero over the three directions
    assert np.abs(analytic.reshape(12, 4, 3).sum(axis=1)).max() < 1e-8


def test_committee_hessian_is_the_members_mean_and_dispersion_is_refused():
    members = [small_model(species=[13, 29], scale=0.3, seed=s) for s in (1, 2)]
    atoms = _cell()
    mean = facetpot.FacetCalculator(members, dtype="float64").get_hessian(atoms)
    each = [facetpot.FacetCalculator(m, dtype="float64").get_hessian(atoms) for m in members]
    assert np.allclose(mean, (each[0] + each[1]) / 2, atol=1e-10) and not np.allclose(each[0], each[1])
    with pytest.raises(NotImplementedError, match="D3"):
        facetpot.FacetCalculator(members[0], dispersion="d3").get_hessian(atoms)
