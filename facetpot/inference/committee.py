"""A committee of models: mean prediction and its spread, the uncertainty estimate of active learning.

For members m = 1..M (same species and cutoff; typically one architecture trained with different seeds),
on one graph:

    E      = 1/M sum_m E_m                           energy_std   = sqrt(1/M sum_m (E_m - E)^2)       (B,)
    F_i    = 1/M sum_m F_m,i                         forces_std_i = sqrt(1/M sum_m |F_m,i - F_i|^2)   (N,)
    sigma  = 1/M sum_m sigma_m                       stress_std   = per component, as energy_std       (B, 3, 3)

(population standard deviations; ``forces_std`` is the root of the summed variances of an atom's three
components, in eV/Å). The neighbour graph is built once, every member's energy comes from its own copy of the
edge vectors, and one backward pass gives every member's dE/dr_e.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import torch

from ..structure.graph import AtomicGraph
from .prepare import inference_model
from ..derivatives import cell_volumes, compute_properties, edge_gradient_properties, stress_asked


class Committee:
    """``Committee(models, device="cpu", dtype=None, backend=None)``: models (objects, files or pretrained
    names, at least two) prepared for inference (copies: the objects passed in are untouched)."""

    def __init__(self, models: Sequence, device="cpu", dtype: Optional[str] = None, backend: Optional[str] = None):
        models = list(models)
        if len(models) < 2:
            raise ValueError(f"a committee needs at least two models, got {len(models)}")
        self.members = [inference_model(m, device=device, dtype=dtype, backend=backend) for m in models]
        first = self.members[0]
        for k, m in enumerate(self.members[1:], start=1):
            if sorted(m.species) != sorted(first.species):
                raise ValueError(
                    f"committee members must cover the same elements: member 0 has {first.species}, "
                    f"member {k} has {m.species}"
                )
            if abs(m.cutoff - first.cutoff) > 1e-9:
                raise ValueError(
                    f"committee members must share the cutoff: member 0 has {first.cutoff} Å, "
                    f"member {k} has {m.cutoff} Å"
                )
            if m.dtype != first.dtype:
                raise ValueError(f"committee members must share the dtype ({first.dtype} vs {m.dtype}): pass dtype=")
        self.cutoff, self.dtype, self.device = first.cutoff, first.dtype, first.device
        self.species = first.species

    def __len__(self) -> int:
        return len(self.members)

    def species_index(self, numbers: torch.Tensor) -> torch.Tensor:
        """The first member's (every member checks the elements when it computes)."""
        return self.members[0].species_index(numbers)

    def properties(
        self, graph: AtomicGraph, forces: bool = True, stress: Optional[bool] = None, virials: bool = False
    ) -> Dict[str, torch.Tensor]:
        """:func:`~facetpot.derivatives.compute_properties`'s keys as committee means, plus ``energy_std`` (B,),
        ``forces_std`` (N,), ``stress_std`` (B, 3, 3) where forces/stress are computed, and the members' own
        ``member_energy`` (M, B)."""
        if graph.positions.dtype != self.dtype or graph.positions.device != self.device:
            graph = graph.to(self.device, self.dtype)
        need_grad = forces or bool(stress) or virials
        if not need_grad:
            outs = [compute_properties(m, graph, forces=False, stress=False) for m in self.members]
            return _combine(outs)
        volume = cell_volumes(graph)
        stress = stress_asked(stress, volume)
        vectors = graph.edge_vectors().detach()
        leaves: List[torch.Tensor] = []
        outs: List[Dict[str, torch.Tensor]] = []
        with torch.enable_grad():
            for m in self.members:
                edge_vec = vectors.clone().requires_grad_(True)
                node_e = m(m.species_index(graph.numbers), graph.edge_index, edge_vec)
                energy = torch.zeros(graph.num_graphs, dtype=node_e.dtype, device=node_e.device)
                leaves.append(edge_vec)
                outs.append({"energy": energy.index_add(0, graph.batch, node_e), "energies": node_e})
            total = torch.stack([o["energy"].sum() for o in outs]).sum()
            if vectors.shape[0] > 0:
                grads = torch.autograd.grad(total, leaves, allow_unused=True)
            else:
                grads = [None] * len(leaves)
        for out, edge_vec, g in zip(outs, leaves, grads):
            g = torch.zeros_like(edge_vec) if g is None else g
            out["energy"], out["energies"] = out["energy"].detach(), out["energies"].detach()
            out.update(edge_gradient_properties(graph, edge_vec.detach(), g, volume, forces, stress, virials))
        return _combine(outs)


def _combine(outs: List[Dict[str, torch.Tensor]]) -> Dict[str, torch.Tensor]:
    """Means of every key, and the standard deviations of energy, forces and stress (module docstring)."""
    mean = {k: torch.stack([o[k] for o in outs]).mean(0) for k in outs[0]}
    energies = torch.stack([o["energy"] for o in outs])
    mean["member_energy"] = energies
    mean["energy_std"] = energies.std(0, correction=0)
    if "forces" in mean:
        f = torch.stack([o["forces"] for o in outs])
        mean["forces_std"] = ((f - mean["forces"]) ** 2).mean(0).sum(-1).sqrt()
    if "stress" in mean:
        mean["stress_std"] = torch.stack([o["stress"] for o in outs]).std(0, correction=0)
    return mean


def model_properties(model, graph: AtomicGraph, **options) -> Dict[str, torch.Tensor]:
    """``compute_properties`` of a FacetModel, or :meth:`Committee.properties` of a committee."""
    if isinstance(model, Committee):
        return model.properties(graph, **options)
    return compute_properties(model, graph, **options)
