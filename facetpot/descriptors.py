"""Per-atom invariant descriptors of a Facet model: the scalar (0e) channels of every layer's features.

    D_i = [h_i^(1)[0e], h_i^(2)[0e], ..., h_i^(T)[0e]]        (N, sum_t u_t)

as MACE's ``get_descriptors(invariants_only=True)``: invariant under rotations and translations of the structure
(and reflections, for a model with parity, the default; a ``parity: false`` model is SO(3) only), and each row
follows its atom under a permutation. For similarity, clustering and choosing structures to label (active learning)
in the model's own feature space.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch

from .structure.graph import AtomicGraph


def atom_descriptors(model, graph: AtomicGraph, layers: Optional[Sequence[int]] = None) -> torch.Tensor:
    """(N, D) scalar features of ``model``'s layers (``layers``: indices from 0, default all, in that order) for
    the atoms of ``graph``, in the model's dtype and on its device."""
    chosen = list(range(model.num_layers)) if layers is None else [int(t) for t in layers]
    bad = [t for t in chosen if not 0 <= t < model.num_layers]
    if bad or not chosen:
        raise ValueError(f"layers must be indices from 0 to {model.num_layers - 1}, got {list(layers or [])}")
    graph = graph.to(model.device, model.dtype)
    species = model.species_index(graph.numbers)
    with torch.no_grad():
        n = species.shape[0]
        edges = model.edges(graph.edge_index, graph.edge_vectors(), n, n)
        blocks = model.embed(species)
        scalars = []
        for t in range(max(chosen) + 1):
            blocks = model.interaction(t, blocks, edges)
            scalars.append(blocks[0].reshape(n, -1))  # block 0 holds the 0e channels (hidden_irreps starts there)
    return torch.cat([scalars[t] for t in chosen], dim=1)
