"""The Hessian of a model's energy: analytic second derivatives with respect to the atoms' positions.

    H[3i+a, 3j+b] = d^2 E / dx_ia dx_jb      (eV/Å^2; = -dF_ia/dx_jb, symmetric)

for one structure at fixed cell and neighbour list: the forces' graph is kept (``create_graph``) and each of
the 3N rows is one more backward pass through it. Vibrational modes, phonons at Gamma, transition-state
searches and second-order optimizers use it; MACE's calculator has the same ``get_hessian``.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from .structure.graph import AtomicGraph


def hessian(model, graph: AtomicGraph) -> torch.Tensor:
    """(3N, 3N) Hessian of ``model``'s energy for the one structure in ``graph``, in the model's dtype and on its
    device (a float64 model gives the exact second derivatives; float32 rounds them)."""
    if graph.num_graphs != 1:
        raise ValueError(f"the Hessian is of one structure; this graph holds {graph.num_graphs}")
    graph = graph.to(model.device, model.dtype)
    positions = graph.positions.detach().requires_grad_(True)
    species = model.species_index(graph.numbers)
    with torch.enable_grad():
        energy = model(species, graph.edge_index, replace(graph, positions=positions).edge_vectors()).sum()
        (gradient,) = torch.autograd.grad(energy, positions, create_graph=True)
        flat = gradient.reshape(-1)
        rows = []
        for k in range(flat.numel()):
            (row,) = torch.autograd.grad(flat[k], positions, retain_graph=k + 1 < flat.numel(), allow_unused=True)
            rows.append(torch.zeros_like(positions).reshape(-1) if row is None else row.reshape(-1))
    return torch.stack(rows).detach()
