"""Energy, forces, stress and virials as derivatives of the model's energy.

With g_e = dE/dr_e for every edge vector r_e = x_j - x_i (+ shift):

    F_i        = sum_{e: i receives} g_e - sum_{e: i is neighbour} g_e      (= -dE/dx_i)
    sigma      = 1/V sum_e sym(r_e (x) g_e)          (= 1/V dE/d(strain); ASE sign, tensile > 0)
    W_i        = -1/2 sum_{e touching i} r_e (x) g_e   (per-atom virial in eV, LAMMPS convention)
    sigma_i    = -W_i / V                              (per-atom stress, sums to sigma)

One backward pass through the edge vectors gives all of them, and the same formulas hold for a
LAMMPS domain (pair forces), where positions of ghost atoms are not independent variables.
"""

from __future__ import annotations

from typing import Dict, Optional

import torch

from .structure.graph import AtomicGraph
from .structure.validation import spans_volume


def compute_properties(
    model,
    graph: AtomicGraph,
    forces: bool = True,
    stress: Optional[bool] = None,
    virials: bool = False,
    create_graph: bool = False,
) -> Dict[str, torch.Tensor]:
    """Returns energy (B,), energies (N,), and as asked forces (N, 3), stress (B, 3, 3), virials (N, 3, 3).

    The graph is brought to the model's dtype and device (a float64 graph of a float32 model is converted).
    Stress needs a cell of non-zero volume: ``stress`` None (default) computes it when some structure has one;
    True for a batch in which none has one raises ValueError; in a batch mixing crystals and molecules, the
    molecules' stress is NaN."""
    if graph.positions.dtype != model.dtype or graph.positions.device != model.device:
        graph = graph.to(model.device, model.dtype)
    return properties_from_edges(model, graph, graph.edge_vectors(), forces, stress, virials, create_graph)


def properties_from_edges(
    model,
    graph: AtomicGraph,
    edge_vec: torch.Tensor,
    forces: bool = True,
    stress: Optional[bool] = None,
    virials: bool = False,
    create_graph: bool = False,
) -> Dict[str, torch.Tensor]:
    """:func:`compute_properties` with the edge vectors given (``graph.edge_vectors()``, or a neighbour list's own
    vectors), the graph already in the model's dtype and on its device."""
    volume = cell_volumes(graph) if stress is not False else None  # (stress=False: no device sync)
    stress = stress_asked(stress, volume)
    species = model.species_index(graph.numbers)
    need_grad = forces or stress or virials
    if need_grad:
        edge_vec = edge_vec.detach().requires_grad_(True)
    with torch.set_grad_enabled(need_grad or torch.is_grad_enabled()):
        node_e = model(species, graph.edge_index, edge_vec)
        energy = torch.zeros(graph.num_graphs, dtype=node_e.dtype, device=node_e.device)
        energy = energy.index_add(0, graph.batch, node_e)
        out: Dict[str, torch.Tensor] = {"energy": energy, "energies": node_e}
        if not need_grad:
            return out
        if edge_vec.shape[0] > 0:
            (g,) = torch.autograd.grad(energy.sum(), edge_vec, create_graph=create_graph, allow_unused=True)
            if g is None:
                g = torch.zeros_like(edge_vec)
        else:
            g = torch.zeros_like(edge_vec)
    out.update(edge_gradient_properties(graph, edge_vec, g, volume, forces, stress, virials, create_graph))
    return out


def cell_volumes(graph: AtomicGraph) -> torch.Tensor:
    """|det cell| of every structure of the batch, (B,) Å^3."""
    return torch.linalg.det(graph.cell).abs()


def stress_asked(stress: Optional[bool], volume: Optional[torch.Tensor]) -> bool:
    """Whether to compute stress: ``stress`` None: where some structure's cell spans a volume
    (``validation.spans_volume``); True for a batch in which none does: ValueError."""
    has_cell = volume is not None and bool(spans_volume(volume).any())
    if stress is None:
        return has_cell
    if stress and not has_cell:
        raise ValueError(
            "stress needs a periodic cell of non-zero volume; this structure has none "
            "(ask for stress=False, or give the structure a cell)"
        )
    return bool(stress)


def edge_gradient_properties(
    graph: AtomicGraph,
    edge_vec: torch.Tensor,
    g: torch.Tensor,
    volume: Optional[torch.Tensor],
    forces: bool = True,
    stress: bool = True,
    virials: bool = False,
    create_graph: bool = False,
) -> Dict[str, torch.Tensor]:
    """Forces (N, 3), stress (B, 3, 3) and virials (N, 3, 3), as asked, from g_e = dE/dr_e (the module's
    formulas); ``volume`` (B,) is |det cell| (NaN stress where it spans no volume:
    ``validation.spans_volume``)."""
    out: Dict[str, torch.Tensor] = {}
    i, j = graph.edge_index
    n = graph.num_atoms
    fast = not create_graph and g.device.type == "cpu"
    if forces:
        out["forces"] = (
            atom_sums(i, j, g, n)
            if fast
            else torch.zeros(n, 3, dtype=g.dtype, device=g.device).index_add(0, i, g).index_add(0, j, -g)
        )
    s = graph_outer_sums(graph, edge_vec, g) if stress and fast else None
    rg = None
    if virials or (stress and s is None):
        rg = edge_vec.unsqueeze(2) * g.unsqueeze(1)  # (E, 3, 3)
        if not create_graph:
            rg = rg.detach()
    if stress:
        if s is None:
            s = torch.zeros(graph.num_graphs, 3, 3, dtype=g.dtype, device=g.device).index_add(0, graph.batch[i], rg)
        s = 0.5 * (s + s.transpose(1, 2))
        ok = spans_volume(volume).view(-1, 1, 1)
        s = s / torch.where(ok, volume.view(-1, 1, 1), torch.ones_like(s[:, :1, :1]))
        out["stress"] = torch.where(ok, s, torch.full_like(s, float("nan")))
    if virials:
        w = torch.zeros(n, 3, 3, dtype=g.dtype, device=g.device)
        out["virials"] = -0.5 * (w.index_add(0, i, rg).index_add(0, j, rg))
    return out


def atom_sums(i: torch.Tensor, j: torch.Tensor, g: torch.Tensor, n: int) -> torch.Tensor:
    """F_a = sum_{e: i_e = a} g_e - sum_{e: j_e = a} g_e, (n, 3), as weighted counts over contiguous columns: no
    graph (bincount has no gradient), faster than index_add on CPU for long pair lists
    (benchmarks/RESULTS.md, "Measurements behind design choices")."""
    cols = g.detach().T.contiguous()
    sums = torch.stack([torch.bincount(i, c, n) - torch.bincount(j, c, n) for c in cols], 1)
    return sums.to(g.dtype)  # no edges: bincount counts in int64


def graph_outer_sums(graph: AtomicGraph, edge_vec: torch.Tensor, g: torch.Tensor) -> Optional[torch.Tensor]:
    """sum_{e in graph b} r_e (x) g_e (B, 3, 3) as one (3, E_b) @ (E_b, 3) product per graph, without the (E, 3, 3)
    tensor (benchmarks/RESULTS.md, "Measurements behind design choices"); None when the edges are not grouped by graph (then index_add
    does it)."""
    r, g = edge_vec.detach(), g.detach()
    if graph.num_graphs == 1:
        return (r.T @ g).unsqueeze(0)
    owner = graph.batch[graph.edge_index[0]]
    if owner.numel() > 1 and bool((owner[1:] < owner[:-1]).any()):
        return None
    counts = torch.bincount(owner, minlength=graph.num_graphs).tolist()
    return torch.stack([a.T @ b for a, b in zip(torch.split(r, counts), torch.split(g, counts))])
