"""Structures -> neighbour graphs -> batches (the input of ``facetpot.derivatives``)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import List, Optional, Sequence

import numpy as np
import torch

from .neighbors import radius_graph
from .validation import MIN_DISTANCE, check_atoms, close_contact_problem


@dataclass
class AtomicGraph:
    """One or several structures, concatenated.

    numbers (N,) atomic numbers; positions (N, 3) Å; cell (B, 3, 3) Å (rows are cell vectors);
    pbc (B, 3); edge_index (2, E), row 0 receiving atom i, row 1 neighbour j; shifts (E, 3)
    integer cell shifts, r_ij = x_j - x_i + shifts . cell; batch (N,) structure of every atom.
    """

    numbers: torch.Tensor
    positions: torch.Tensor
    cell: torch.Tensor
    pbc: torch.Tensor
    edge_index: torch.Tensor
    shifts: torch.Tensor
    batch: torch.Tensor

    @property
    def num_graphs(self) -> int:
        return int(self.cell.shape[0])

    @property
    def num_atoms(self) -> int:
        return int(self.numbers.shape[0])

    def to(self, device=None, dtype: Optional[torch.dtype] = None) -> "AtomicGraph":
        kw = {}
        for f in fields(self):
            t = getattr(self, f.name)
            if t.is_floating_point() and dtype is not None:
                t = t.to(device=device, dtype=dtype)
            else:
                t = t.to(device=device)
            kw[f.name] = t
        return AtomicGraph(**kw)

    def max_neighbors(self) -> int:
        """The largest number of edges any atom receives: an upper bound of the density backend's slots per atom
        (it pads every atom to the largest number of distinct neighbours; periodic images of a pair share a slot)."""
        receivers = self.edge_index[0]
        return int(torch.bincount(receivers).max()) if receivers.numel() else 0

    def edge_vectors(self) -> torch.Tensor:
        i, j = self.edge_index
        cell_of_edge = self.cell[self.batch[i]]  # (E, 3, 3)
        offset = torch.bmm(self.shifts.to(self.positions.dtype).unsqueeze(1), cell_of_edge).squeeze(1)
        return self.positions[j] - self.positions[i] + offset


def structure_graph(
    numbers, positions, cell, pbc, cutoff: float, dtype: torch.dtype = torch.float64, min_distance: float = 0.0
) -> AtomicGraph:
    """One structure (arrays, already valid) -> AtomicGraph with its radius graph; ``min_distance`` > 0 refuses
    atoms closer than that (``validation.close_contact_problem``; ValueError naming the pair)."""
    positions = np.asarray(positions, dtype=np.float64)
    cell = np.asarray(cell, dtype=np.float64)
    pbc = np.asarray(pbc, dtype=bool)
    if min_distance > 0:
        i, j, s, d = radius_graph(positions, cell, pbc, cutoff, distances=True)
        problem = close_contact_problem(np.asarray(numbers), i, j, d, min_distance)
        if problem is not None:
            raise ValueError(problem)
    else:
        i, j, s = radius_graph(positions, cell, pbc, cutoff)
    return AtomicGraph(
        numbers=torch.as_tensor(np.asarray(numbers), dtype=torch.long),
        positions=torch.as_tensor(positions, dtype=dtype),
        cell=torch.as_tensor(cell, dtype=dtype).unsqueeze(0),
        pbc=torch.as_tensor(pbc).unsqueeze(0),
        edge_index=torch.as_tensor(np.stack([i, j]), dtype=torch.long),
        shifts=torch.as_tensor(s, dtype=dtype),
        batch=torch.zeros(len(positions), dtype=torch.long),
    )


def atoms_to_graph(
    atoms, cutoff: float, dtype: torch.dtype = torch.float64, min_distance: float = MIN_DISTANCE
) -> AtomicGraph:
    """ASE Atoms -> AtomicGraph, validated (``facetpot.structure.validation``: cell, finite positions, and no atoms closer
    than ``min_distance`` Å; 0 allows overlapping atoms)."""
    check_atoms(atoms)
    return structure_graph(
        atoms.numbers, atoms.get_positions(), atoms.cell.array, atoms.pbc, cutoff, dtype, min_distance
    )


def batch_graphs(graphs: Sequence[AtomicGraph]) -> AtomicGraph:
    """Concatenate graphs into one batch (node indices offset, batch vector built)."""
    if len(graphs) == 1:  # nothing to offset: no copy of a long edge list
        return graphs[0]
    offsets = np.cumsum([0] + [g.num_atoms for g in graphs[:-1]])
    goffsets = np.cumsum([0] + [g.num_graphs for g in graphs[:-1]])
    return AtomicGraph(
        numbers=torch.cat([g.numbers for g in graphs]),
        positions=torch.cat([g.positions for g in graphs]),
        cell=torch.cat([g.cell for g in graphs]),
        pbc=torch.cat([g.pbc for g in graphs]),
        edge_index=torch.cat([g.edge_index + int(o) for g, o in zip(graphs, offsets)], dim=1),
        shifts=torch.cat([g.shifts for g in graphs]),
        batch=torch.cat([g.batch + int(o) for g, o in zip(graphs, goffsets)]),
    )


def atoms_list_to_graph(
    atoms_list: List, cutoff: float, dtype: torch.dtype = torch.float64, min_distance: float = MIN_DISTANCE
) -> AtomicGraph:
    return batch_graphs([atoms_to_graph(a, cutoff, dtype, min_distance) for a in atoms_list])
