"""Verlet pair lists for D3: reused while no atom moved half the skin and the cell is unchanged, and then the
same numbers as a list built afresh; rebuilt otherwise."""

import numpy as np
import pytest
import torch
from ase.build import bulk

from facetpot.derivatives import properties_from_edges
from facetpot.dispersion import D3Dispersion, dispersion_edges
from facetpot.dispersion.pair_lists import VerletPairLists

pytest.importorskip("tad_dftd3")


def _d3():
    return D3Dispersion(cutoff=9.0, cn_cutoff=7.0, skin=1.0)


def _both(d3, atoms):
    """(through the Verlet lists, through a fresh list): energy, forces, stress."""
    out = []
    for graph, vectors in (d3.pair_lists.edges([atoms], d3.cutoff), dispersion_edges([atoms], d3.cutoff)):
        res = properties_from_edges(d3, graph, vectors, forces=True, stress=True)
        out.append({k: v.detach() for k, v in res.items()})
    return out


def _assert_same(a, b):
    for k in ("energy", "forces", "stress"):
        assert torch.allclose(a[k], b[k], rtol=1e-12, atol=1e-13), k


def test_reused_list_gives_the_fresh_numbers_and_rebuilds_when_it_must():
    atoms = bulk("Si", "diamond", a=5.43, cubic=True) * (2, 2, 1)
    atoms.rattle(0.05, seed=1)
    d3 = _d3()
    first, fresh = _both(d3, atoms)
    _assert_same(first, fresh)
    assert d3.pair_lists.builds == 1
    rng = np.random.default_rng(0)
    for _ in range(3):  # small moves, at most 0.45 Å from where the list was built: kept
        atoms.positions += 0.15 / np.sqrt(3) * rng.choice([-1.0, 1.0], size=atoms.positions.shape)
        reused, fresh = _both(d3, atoms)
        _assert_same(reused, fresh)
        assert not torch.allclose(reused["energy"], first["energy"])
    assert d3.pair_lists.builds == 1
    atoms.positions[0] += [0.8, 0.0, 0.0]  # now one atom is more than half the skin from its start
    _assert_same(*_both(d3, atoms))
    assert d3.pair_lists.builds == 2
    atoms.set_cell(atoms.cell * 1.001, scale_atoms=True)  # any change of the cell
    _assert_same(*_both(d3, atoms))
    assert d3.pair_lists.builds == 3
    atoms.positions[1] += atoms.cell[0]  # an atom wrapped into the next cell: the same structure, a new list
    before = d3.pair_lists.builds
    _assert_same(*_both(d3, atoms))
    assert d3.pair_lists.builds == before + 1
    atoms.numbers[2] = 6
    _assert_same(*_both(d3, atoms))
    assert d3.pair_lists.builds == before + 2


def test_lists_follow_structures_by_position_and_skin_zero_always_builds():
    si = bulk("Si", "diamond", a=5.43)
    nacl = bulk("NaCl", "rocksalt", a=5.64)
    lists = VerletPairLists(skin=0.5)
    lists.edges([si, nacl], 6.0)
    lists.edges([si, nacl], 6.0)
    assert lists.builds == 2
    lists.edges([nacl, si], 6.0)  # other structures at each position: rebuilt
    assert lists.builds == 4
    never = VerletPairLists(skin=0.0)
    never.edges([si], 6.0)
    never.edges([si], 6.0)
    assert never.builds == 2
    with pytest.raises(ValueError, match="skin"):
        VerletPairLists(skin=-1.0)
