"""Oracles for the tests: straightforward torch versions of what the fast paths compute, and a LAMMPS-like
domain to run the deployed model as the pair style does, without LAMMPS (as e3nn's ``util/test.py``).

Nothing in the package imports this module (the rules test checks it); the tests compare the production
code against it.

- :func:`conv_block_oracle`: one input block's convolution, sum over edges of w_e * z_e (the Triton kernel's sum,
  ``facetpot.nn.conv.triton_kernels``, module docstring), by einsum.
- :func:`grid_mlp_oracle`: the spherical-grid layer's middle, out = (act(X W1^T + b1) W2^T + b2)^T F with
  X = T^T L^T (``facetpot.nn.s2_grid_triton_kernels``), by matmuls.
- :func:`small_model`, ``SMALL``, ``SEVENNET_LIKE``: small float64 models; :func:`awkward_structures`,
  :func:`triclinic_cell`: structures covering the neighbour-list cases; :func:`model_outputs`: a model's energy,
  forces, stress and virials of one structure.
- :func:`assert_equivariant`: E(3) and permutation symmetry of a model's outputs (as e3nn's
  ``assert_equivariant``): E(Q r + t, P) = E(r), F' = P F Q^T, sigma' = Q sigma Q^T, for a random orthogonal Q
  (:func:`random_orthogonal`, with or without inversion), shift t and permutation P.
- :class:`Domain`, :func:`domain_from_atoms`, :func:`run_layerwise`: the N atoms of a periodic cell as local
  atoms followed by ghost images (every image within ``ghost_cut`` of the cell's atoms), with edges from local
  receivers to neighbours within the cutoff; ``run_layerwise`` runs a :class:`DeployedFacet` layer by layer,
  copying ghost features from their owners between layers and summing ghost feature gradients into them in
  the backward pass (what ``comm->forward_comm`` / ``reverse_comm`` do in ``pair_style facet``).
"""

from dataclasses import dataclass
from typing import Any, Dict, List, Optional

import numpy as np
import torch
from ase import Atoms
from ase.build import bulk, molecule

from .derivatives import compute_properties
from .structure.graph import atoms_to_graph
from .model import FacetModel, build_model
from .structure.neighbors import radius_graph

#: a small model with every kind of block (two layers, l up to 2, several elements); float64 in ``small_model``
SMALL = dict(
    hidden_irreps="8x0e+4x1o+4x2e",
    num_layers=2,
    cutoff=4.0,
    num_radial=6,
    species=[1, 6, 8, 13, 14, 29],
    grid_channels=6,
    grid_hidden=8,
    avg_num_neighbors=10.0,
)

#: the options of a SevenNet port (facet convert sevennet), at test size: Bessel basis with XPLOR
#: switch into radial MLPs, SiLU gates, no parity, five layers
SEVENNET_LIKE = dict(
    radial="bessel_mlp",
    radial_hidden=[8, 8],
    cutoff_fn="xplor",
    cutoff_on=3.5,
    nonlinearity="gate",
    gate_activation="silu",
    parity=False,
    hidden_irreps="8x0e+4x1e+4x2e",
    num_layers=5,
    neighbor_norm_exponent=1.0,
)


def small_model(**overrides: Any) -> FacetModel:
    """``SMALL`` with ``overrides``, seeded (``seed``, default 0), float64, with mild per-species reference
    energies (untrained weights give large random energies; the references make E0 visible)."""
    torch.manual_seed(overrides.pop("seed", 0))
    model = build_model(**{**SMALL, **overrides}).double()
    model.set_atomic_energies({z: -0.5 * k - 1.0 for k, z in enumerate(model.species)})
    return model


def model_outputs(model: FacetModel, atoms: Atoms, **options: Any) -> Dict[str, torch.Tensor]:
    """``compute_properties`` of one structure (virials too unless ``virials=False``), detached, on the CPU."""
    g = atoms_to_graph(atoms, model.cutoff, dtype=model.dtype)
    out = compute_properties(model, g, virials=options.pop("virials", True), **options)
    return {k: v.detach().cpu() for k, v in out.items()}


def triclinic_cell(seed: int = 0) -> Atoms:
    """4-atom Al/Cu/Si/O cell, strongly triclinic and smaller than the cutoff (many images)."""
    rng = np.random.default_rng(seed)
    cell = np.array([[3.1, 0.0, 0.0], [1.2, 2.9, 0.0], [0.7, -0.9, 3.3]]) + 0.2 * rng.standard_normal((3, 3))
    return Atoms("AlCuSiO", scaled_positions=rng.random((4, 3)), cell=cell, pbc=True)


def awkward_structures() -> Dict[str, Atoms]:
    """Structures covering the neighbour-list cases: a primitive cell, a triclinic cell smaller than the cutoff,
    a slab (mixed periodicity), a molecule."""
    si = bulk("Si", "diamond", a=5.43)
    si.rattle(0.1, seed=1)
    slab = bulk("Cu", "fcc", a=3.6, cubic=True)
    slab.rattle(0.1, seed=2)
    slab.pbc = [True, True, False]
    mol = molecule("CH3CH2OH")
    mol.rattle(0.05, seed=3)
    return {"si_primitive": si, "triclinic": triclinic_cell(0), "mixed_pbc": slab, "molecule": mol}


def random_orthogonal(rng: np.random.Generator, proper: bool) -> np.ndarray:
    """A random rotation (``proper``) or rotation-inversion, 3x3."""
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] *= -1
    return q if proper else -q


def transformed(atoms: Atoms, rot: np.ndarray, shift=np.zeros(3), perm: Optional[np.ndarray] = None) -> Atoms:
    """``atoms`` permuted by ``perm``, rotated by ``rot`` (cell too) and shifted by ``shift``."""
    a = atoms[np.arange(len(atoms)) if perm is None else perm]
    a.positions = a.positions @ rot.T + shift
    a.cell = a.cell.array @ rot.T
    return a


def assert_equivariant(
    model: FacetModel,
    atoms: Atoms,
    rot: np.ndarray,
    shift=np.zeros(3),
    perm: Optional[np.ndarray] = None,
    tol: float = 1e-10,
) -> None:
    """The model's energy and per-atom energies are invariant, its forces and (for a crystal) stress co-rotate
    under ``transformed(atoms, rot, shift, perm)``, to ``tol`` relative to the largest value."""
    perm = np.arange(len(atoms)) if perm is None else np.asarray(perm)
    ref, out = model_outputs(model, atoms), model_outputs(model, transformed(atoms, rot, shift, perm))
    expected = {
        "energy": ref["energy"].numpy(),
        "energies": ref["energies"].numpy()[perm],
        "forces": ref["forces"].numpy()[perm] @ rot.T,
    }
    if atoms.pbc.all():
        expected["stress"] = rot @ ref["stress"].numpy()[0] @ rot.T
    for key, want in expected.items():
        got = out[key].numpy()[0] if key == "stress" else out[key].numpy()
        err = np.abs(got - want).max()
        assert err <= tol * max(1.0, np.abs(want).max()), f"{key} not equivariant: deviation {err:.3g}"


def conv_block_oracle(x, sh, radial, wx, cc, senders, receivers, n_recv: int, sh_lo: int, d2: int) -> torch.Tensor:
    """out[i, u, c] = sum_{e = (i <- j)} (sum_k b_k(r_e) Wx[k, u, c]) (sum_{m1 m2} x_j[u, m1] Y_m2(r_e) CC[(m1 m2), c]),
    differentiable to any order."""
    mul, m1 = x.shape[1], x.shape[2]
    y = sh[:, sh_lo : sh_lo + d2]
    z = torch.einsum("eum,ed,mdc->euc", x.index_select(0, senders), y, cc.view(m1, d2, -1))
    w = torch.einsum("ek,kuc->euc", radial, wx)
    out = x.new_zeros(n_recv, mul, wx.shape[2])
    return out.index_add(0, receivers, w * z)


def grid_mlp_oracle(lifted, to_grid, w1, b1, w2, b2, from_grid, act: int) -> torch.Tensor:
    """What ``S2GridMixing`` computes between lifting and projection; ``act`` 0: z/2 + z^2/4, 1: SiLU."""
    x = torch.matmul(lifted, to_grid).transpose(1, 2)  # (N, G, U)
    p = torch.nn.functional.linear(x, w1, b1)
    a = p * (0.5 + 0.25 * p) if act == 0 else torch.nn.functional.silu(p)
    return torch.matmul(torch.nn.functional.linear(a, w2, b2).transpose(1, 2), from_grid)


@dataclass
class Domain:
    species_z: np.ndarray  # (N_all,) atomic numbers
    positions: np.ndarray  # (N_all, 3): local atoms first, then ghost images
    owner: np.ndarray  # (N_all,) index of the local atom every atom is (an image of)
    nlocal: int
    edge_index: np.ndarray  # (2, E): receiver (local) <- neighbour (local or ghost)


def domain_from_atoms(atoms, cutoff: float, ghost_cut: float, all_receive: bool = False) -> Domain:
    """Local atoms + ghost images within ``ghost_cut`` (Å) of the cell; edges within ``cutoff``.

    With ``all_receive`` ghost atoms receive edges too (the ghost-shell mode of ``forward``)."""
    n = len(atoms)
    pos = atoms.get_positions()
    cell = np.asarray(atoms.cell)
    # images: neighbours of the cell's atoms out to ghost_cut, through periodic shifts
    i, j, shifts = radius_graph(pos, cell, atoms.pbc, ghost_cut)
    keys = {}
    ghosts_pos: List[np.ndarray] = []
    ghosts_owner: List[int] = []
    for jj, s in zip(j, shifts):
        if not np.any(s):
            continue
        key = (int(jj),) + tuple(int(x) for x in s)
        if key not in keys:
            keys[key] = n + len(ghosts_pos)
            ghosts_pos.append(pos[jj] + s @ cell)
            ghosts_owner.append(int(jj))
    all_pos = np.concatenate([pos, np.array(ghosts_pos).reshape(-1, 3)])
    owner = np.concatenate([np.arange(n), np.array(ghosts_owner, dtype=np.int64)])
    z = atoms.numbers[owner]
    # edges among the explicit positions (no periodicity: ghosts are explicit)
    diff = all_pos[None, :, :] - all_pos[: n if not all_receive else len(all_pos), None, :]
    d2 = (diff**2).sum(-1)
    recv, nb = np.nonzero((d2 < cutoff**2) & (d2 > 0))
    return Domain(z, all_pos, owner, n, np.stack([recv, nb]).astype(np.int64))


def run_layerwise(module, species: torch.Tensor, dom: Domain, dtype=torch.float64) -> Dict[str, torch.Tensor]:
    """Per-atom energies (nlocal,) and pair gradients g (E, 3) by the layer-by-layer protocol."""
    nlocal, nall = dom.nlocal, len(dom.positions)
    owner = torch.as_tensor(dom.owner)
    ghost_owner = owner[nlocal:]
    edge_index = torch.as_tensor(dom.edge_index)
    x = torch.as_tensor(dom.positions, dtype=dtype)
    edge_vec = (x[edge_index[1]] - x[edge_index[0]]).requires_grad_(True)
    graph = module.edge_basis(edge_index, edge_vec, nlocal, nall)
    # the layers see leaf copies: their gradients are collected, then sent through edge_basis once
    leaves = [g.detach().requires_grad_(g.requires_grad) for g in graph]
    basis = [g for g in leaves if g.requires_grad]
    h = module.embed(species).detach()
    inputs: List[torch.Tensor] = []
    outputs: List[torch.Tensor] = []
    for t in range(module.num_layers):
        h_in = h.detach().requires_grad_(t > 0)
        out = module.layer(t, h_in, edge_index, leaves, nlocal)
        inputs.append(h_in)
        outputs.append(out)
        h = torch.cat([out.detach(), out.detach()[ghost_owner]])  # forward communication
    e = module.energies(outputs[-1], species[:nlocal])
    (grad_out,) = torch.autograd.grad(e.sum(), [outputs[-1]], retain_graph=True)
    basis_grads = [torch.zeros_like(b) for b in basis]
    for t in reversed(range(module.num_layers)):
        wrt = basis + ([inputs[t]] if t > 0 else [])
        gs = torch.autograd.grad([outputs[t]], wrt, [grad_out], retain_graph=True, allow_unused=True)
        for k in range(len(basis)):
            if gs[k] is not None:
                basis_grads[k] += gs[k]
        if t > 0:
            g_in = gs[-1]
            grad_out = g_in[:nlocal].index_add(0, ghost_owner, g_in[nlocal:])  # reverse communication
    (g,) = torch.autograd.grad([x for x in graph if x.requires_grad], [edge_vec], basis_grads)
    return {"energies": e.detach(), "edge_grad": g, "edge_vec": edge_vec.detach(), "edge_index": edge_index}
