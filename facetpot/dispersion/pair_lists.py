"""Verlet pair lists for dispersion: the long D3 pair list kept between calls while atoms move little.

D3's pair list reaches 31.75 Å (1.7 million pairs in Si 512); building it takes longer than the D3 sum itself
(benchmarks/RESULTS.md, "Measurements behind design choices"). As LAMMPS does, the list is built to ``cutoff + skin`` and reused while

    the atomic numbers, periodicity and cell are unchanged, and  max_a |x_a - x_a(built)| < skin / 2

(no pair can then have crossed from beyond ``cutoff + skin`` to within ``cutoff``); the pair vectors are
recomputed every call, r_ij = x_j - x_i + S . cell. The sum itself applies the hard cutoffs, so extra pairs
change nothing. Any change of the cell (a relaxation of the cell, NPT) rebuilds. ``skin = 0`` builds every call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Tuple

import numpy as np
import torch

from ..structure.graph import AtomicGraph, batch_graphs
from ..structure.neighbors import radius_graph

#: default Verlet skin, Å: ~10% more pairs at D3's cutoff, rebuilt every ~50 MD steps at 300 K
DEFAULT_SKIN = 1.0


@dataclass
class _Built:
    numbers: np.ndarray
    pbc: np.ndarray
    cell: np.ndarray
    positions: np.ndarray
    cutoff: float
    edge_index: torch.Tensor  # (2, E) half list: every pair once
    shifts: torch.Tensor  # (E, 3) integer cell shifts, as float64


class VerletPairLists:
    """Pair lists of the structures of the last call, by position in the list of structures."""

    def __init__(self, skin: float = DEFAULT_SKIN):
        if not skin >= 0:
            raise ValueError(f"the pair-list skin must be >= 0 Å, got {skin}")
        self.skin = float(skin)
        self.built: Dict[int, _Built] = {}
        self.builds = 0  # lists built so far (reuse shows as calls without a build)

    def _reusable(self, old: _Built, atoms, cutoff: float) -> bool:
        if self.skin <= 0 or old.cutoff != cutoff or not np.array_equal(old.numbers, atoms.numbers):
            return False
        if not (np.array_equal(old.pbc, atoms.pbc) and np.array_equal(old.cell, atoms.cell.array)):
            return False
        moved = np.linalg.norm(atoms.get_positions() - old.positions, axis=1)
        return bool(moved.max(initial=0.0) < 0.5 * self.skin)

    def _build(self, atoms, cutoff: float) -> _Built:
        positions = atoms.get_positions()
        i, j, s = radius_graph(positions, atoms.cell.array, atoms.pbc, cutoff + self.skin, half=True)
        self.builds += 1
        return _Built(
            np.array(atoms.numbers),
            np.array(atoms.pbc, dtype=bool),
            np.array(atoms.cell.array),
            positions,
            cutoff,
            torch.as_tensor(np.stack([i, j]), dtype=torch.long),
            torch.as_tensor(s, dtype=torch.float64),
        )

    def edges(self, atoms_list, cutoff: float, dtype: torch.dtype = torch.float64) -> Tuple[AtomicGraph, torch.Tensor]:
        """Structures (ase Atoms, already validated) -> one AtomicGraph of their pairs within at least ``cutoff`` Å,
        each once, and the pair vectors (E, 3) Å."""
        graphs: List[AtomicGraph] = []
        vectors: List[torch.Tensor] = []
        kept: Dict[int, _Built] = {}
        for k, atoms in enumerate(atoms_list):
            old = self.built.get(k)
            entry = old if old is not None and self._reusable(old, atoms, cutoff) else self._build(atoms, cutoff)
            kept[k] = entry
            pos = torch.as_tensor(atoms.get_positions(), dtype=torch.float64)
            cell = torch.as_tensor(atoms.cell.array, dtype=torch.float64)
            i, j = entry.edge_index
            vec = pos.index_select(0, j) - pos.index_select(0, i) + entry.shifts @ cell
            graphs.append(
                AtomicGraph(
                    numbers=torch.as_tensor(np.asarray(atoms.numbers), dtype=torch.long),
                    positions=pos.to(dtype),
                    cell=cell.to(dtype).unsqueeze(0),
                    pbc=torch.as_tensor(np.asarray(atoms.pbc, dtype=bool)).unsqueeze(0),
                    edge_index=entry.edge_index,
                    shifts=entry.shifts.to(dtype),
                    batch=torch.zeros(len(atoms), dtype=torch.long),
                )
            )
            vectors.append(vec.to(dtype))
        self.built = kept
        return batch_graphs(graphs), vectors[0] if len(vectors) == 1 else torch.cat(vectors)
