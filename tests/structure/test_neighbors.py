"""The radius graph matches ASE's reference neighbour list in every periodicity case."""

import numpy as np
import pytest
from ase.neighborlist import primitive_neighbor_list

from facetpot.structure.graph import atoms_to_graph
from facetpot.structure.neighbors import radius_graph
from facetpot.testing import awkward_structures, triclinic_cell


def _pairs(i, j, s):
    return sorted(zip(i.tolist(), j.tolist(), map(tuple, np.asarray(s).tolist())))


@pytest.mark.parametrize("name", ["si_primitive", "triclinic", "mixed_pbc", "molecule"])
@pytest.mark.parametrize("cutoff", [3.0, 6.0])
def test_matches_ase(name, cutoff):
    atoms = awkward_structures()[name]
    i, j, s = radius_graph(atoms.positions, atoms.cell.array, atoms.pbc, cutoff)
    ri, rj, rs = primitive_neighbor_list(
        "ijS", atoms.pbc, atoms.cell.array, atoms.positions, cutoff, self_interaction=False
    )
    assert _pairs(i, j, s) == _pairs(ri, rj, rs)


def test_cell_much_smaller_than_cutoff_sees_many_images():
    atoms = triclinic_cell(2)[:1]  # one atom in a ~3 Å cell, 6 Å cutoff: tens of images
    g = atoms_to_graph(atoms, 6.0)
    vec = g.edge_vectors().numpy()
    assert len(vec) > 20
    d = np.linalg.norm(vec, axis=1)
    assert d.max() < 6.0 and d.min() > 0


def test_edge_vectors_follow_the_convention():
    atoms = awkward_structures()["triclinic"]
    g = atoms_to_graph(atoms, 5.0)
    i, j = g.edge_index.numpy()
    vec = atoms.positions[j] - atoms.positions[i] + g.shifts.numpy() @ atoms.cell.array
    assert np.allclose(g.edge_vectors().numpy(), vec)


def test_zero_cell_vector_on_non_periodic_axis():
    atoms = awkward_structures()["mixed_pbc"]
    atoms.cell[2] = [0, 0, 0]
    g = atoms_to_graph(atoms, 4.0)
    assert g.edge_index.shape[1] > 0
