"""calc.get_descriptors: per-atom invariant features, unchanged by rotations, reflections and translations,
following their atoms under a permutation, and different for different environments."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk

import facetpot
from facetpot.testing import random_orthogonal, small_model, transformed


def test_descriptors_are_invariant_and_follow_their_atoms():
    model = small_model(species=[13, 29], scale=0.3)
    calc = facetpot.FacetCalculator(model, dtype="float64")
    atoms = bulk("Cu", "fcc", a=3.7, cubic=True) * (2, 1, 1)
    atoms.numbers[[1, 5]] = 13
    atoms.rattle(0.1, seed=4)
    d = calc.get_descriptors(atoms)
    assert d.shape[0] == len(atoms) and d.shape[1] > model.num_layers
    assert np.abs(d[0] - d[2]).max() > 1e-3  # atoms in different environments differ: a real test
    turned = transformed(atoms, random_orthogonal(np.random.default_rng(7), proper=False), [0.3, -1.2, 2.0])
    assert np.abs(calc.get_descriptors(turned) - d).max() < 1e-9
    order = np.random.default_rng(5).permutation(len(atoms))
    assert np.abs(calc.get_descriptors(atoms[order]) - d[order]).max() < 1e-9
    last = calc.get_descriptors(atoms, layers=[model.num_layers - 1])
    assert np.array_equal(last, d[:, d.shape[1] - last.shape[1] :])
    with pytest.raises(ValueError, match="layers"):
        calc.get_descriptors(atoms, layers=[model.num_layers])
