"""The computation a deployed Facet model performs, in the form a LAMMPS domain needs.

A LAMMPS process owns ``nlocal`` atoms and sees ghost atoms (periodic images and atoms of other
processes) after them. Edges i <- j run from a receiving atom i to a neighbour j within the cutoff,
with r_ij = x_j - x_i; the energy is that of the local atoms, E = sum_{i < nlocal} E_i, and every
force, the virial and per-atom virials follow from the pair gradients g_ij = dE/dr_ij.

Two ways to run it, both exact:

* ``forward`` (one call): every atom receives, the ghost shell must be L x r_c deep so that
  local energies see their whole L-layer environment;
* layer by layer (the LAMMPS pair style): ``edge_basis`` once, ``embed``, then for each layer t
  ``layer(t, ...)`` maps features of all atoms to those of the local atoms, and the caller copies
  ghost features from their owners before the next layer (forward communication); the backward
  pass runs layer by layer in reverse, ghost feature gradients summed into their owners (reverse
  communication). Only local atoms are computed and the ghost shell is one cutoff deep.

Features travel as flat (N, D_t) tensors. E_i = E0[s] + sigma[s](e(h_i) - e_iso[s]) with e_iso
computed once here (it depends on the species only).
"""

from typing import List, Tuple

import torch
from torch import nn

from ..model import FacetModel
from ..inference.frozen_program import compile_layers, slot_tables
from ..inference.prepare import inference_model
from ..nn.edges import edges_from_tensors


def _with_gradient(e: torch.Tensor, edge_vec: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """(E_i, dE/dr_ij) with E = sum E_i; zero where no edge reaches the energies."""
    g = torch.autograd.grad([e.sum()], [edge_vec], allow_unused=True)[0]
    if g is None:
        g = torch.zeros_like(edge_vec)
    return e.detach(), g


def _block_dims(irreps) -> List[int]:
    return [int(m) * (2 * int(l) + 1) for m, l, _ in irreps]


class DeployedFacet(nn.Module):
    """A :class:`FacetModel` with the entry points of a LAMMPS domain; TorchScript-compatible."""

    def __init__(self, model: FacetModel):
        super().__init__()
        # its own backend (exports choose theirs); no C++ engine: the scripted module runs its own layers
        model = inference_model(model, backend=model.backend, engine=False)
        model.keep_frozen_tables()  # M_u of the density backend: not rebuilt per scripted call
        self.model = model
        self.cutoff = float(model.cutoff)
        self.num_layers = int(model.num_layers)
        layer_irreps = [list(layer.irreps_in) for layer in model.layers] + [list(model.layers[-1].irreps_out)]
        self.irreps: List[List[Tuple[int, int, int]]] = [
            [(int(m), int(l), int(p)) for m, l, p in ir] for ir in layer_irreps
        ]
        #: width D_t of the flat features entering layer t (t = num_layers: the last layer's output)
        self.feature_dims: List[int] = [sum(_block_dims(ir)) for ir in self.irreps]
        with torch.no_grad():
            species = torch.arange(len(model.species), device=model.device)
            e_iso = model.isolated_atom_energies(species)
        self.register_buffer("e_iso", e_iso.detach().clone())

    # ------------------------------------------------------------------ features <-> blocks
    def _blocks(self, h: torch.Tensor, t: int) -> List[torch.Tensor]:
        out: List[torch.Tensor] = []
        offset = 0
        for mul, l, _ in self.irreps[t]:
            width = mul * (2 * l + 1)
            out.append(h.narrow(1, offset, width).reshape(h.shape[0], mul, 2 * l + 1))
            offset += width
        return out

    @staticmethod
    def _flat(blocks: List[torch.Tensor]) -> torch.Tensor:
        n = blocks[0].shape[0]
        if len(blocks) == 1:
            return blocks[0].reshape(n, -1)
        return torch.cat([b.reshape(n, -1) for b in blocks], dim=1)

    # ------------------------------------------------------------------ layer by layer
    @torch.jit.export
    def edge_basis(
        self, edge_index: torch.Tensor, edge_vec: torch.Tensor, num_receivers: int, num_senders: int
    ) -> List[torch.Tensor]:
        """The edges' data shared by all layers, flat: ``EdgeData.tensors()`` = [vectors, radial
        basis, spherical harmonics, *backend tables]. Differentiable with respect to ``edge_vec``."""
        return self.model.edges(edge_index, edge_vec, num_receivers, num_senders).tensors()

    @torch.jit.export
    def embed(self, species: torch.Tensor) -> torch.Tensor:
        """Layer-0 features (N, D_0) of atoms with model species indices ``species``."""
        return self._flat(self.model.embed(species))

    @torch.jit.export
    def layer(
        self, t: int, h: torch.Tensor, edge_index: torch.Tensor, graph: List[torch.Tensor], num_receivers: int
    ) -> torch.Tensor:
        """Features (N_recv, D_{t+1}) of atoms 0..N_recv-1 after layer t, from those of all atoms
        (N, D_t); ``graph`` is what :meth:`edge_basis` returned (or leaf copies of it)."""
        edges = edges_from_tensors(edge_index, num_receivers, h.shape[0], graph)
        return self._flat(self.model.interaction(t, self._blocks(h, t), edges))

    @torch.jit.export
    def energies(self, h: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
        """Per-atom energies (eV) from last-layer features (N, D_L) and species indices (N,)."""
        e = self.model.readout_energy(self._blocks(h, self.num_layers))
        return self.model.atom_energies(species, e, self.e_iso[species])

    # ------------------------------------------------------------------ one call
    def forward(
        self, species: torch.Tensor, edge_index: torch.Tensor, edge_vec: torch.Tensor, nlocal: int
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """(E_i of atoms 0..nlocal-1, dE/dr_ij of every edge) with E = sum of those E_i.

        Every atom receives: edges must cover all atoms within (L - 1) r_c of a local atom.
        Call it with autograd enabled (not under ``torch.no_grad()``)."""
        n = species.shape[0]
        edge_vec = edge_vec.detach().requires_grad_(True)
        graph = self.edge_basis(edge_index, edge_vec, n, n)
        h = self.embed(species)
        for t in range(self.num_layers):
            h = self.layer(t, h, edge_index, graph, n)
        return _with_gradient(self.energies(h.narrow(0, 0, nlocal), species.narrow(0, 0, nlocal)), edge_vec)


class DeployedFacetEngine(DeployedFacet):
    """A :class:`DeployedFacet` that can also run a whole domain in one call of the C++ engine
    (``facetpot.inference.frozen_program``: the model compiled into a program of ATen calls and fused kernels, kept in
    the archive): :meth:`domain`. Only where the engine is loaded (the archive then calls its operator, which
    ``pair_style facet`` registers too); Unsupported (``frozen_program``) for a model the program cannot express."""

    program_params: List[torch.Tensor]
    program_code: List[int]
    program_scalars: List[float]

    def __init__(self, model: FacetModel):
        super().__init__(model)
        program = compile_layers(self.model)
        self.program_params = list(program.params)
        self.program_code = list(program.code)
        self.program_scalars = list(program.scalars)

    @torch.jit.export
    def domain(
        self, species: torch.Tensor, edge_index: torch.Tensor, edge_vec: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """(E_i, dE/dr_ij of every edge) of a domain whose neighbours are its own atoms: edge_index's senders are the
        atoms (0..N-1) that the neighbours are images of, ``edge_vec`` the images' r_ij (one LAMMPS rank: a ghost's
        sender is its owner). Same numbers as :meth:`forward`, with the layers in one engine call."""
        n = species.shape[0]
        if edge_index.shape[1] == 0:  # the engine needs edges; the layers' answer without any
            return self.forward(species, edge_index, edge_vec, n)
        edge_vec = edge_vec.detach().requires_grad_(True)
        edges = self.model.edges(edge_index, edge_vec, n, n)
        features = self.model.embed(species)[0]
        e = torch.ops.facetpot.frozen_program(
            features,
            edges.tables[0],
            edges.tables[1],
            self.program_params,
            self.program_code,
            self.program_scalars,
            slot_tables(edges),
        )
        return _with_gradient(self.model.atom_energies(species, e, self.e_iso[species]), edge_vec)
