"""Shared fixtures: small float64 models and awkward structures made in the test (no data files)."""
from __future__ import annotations

import os

# Triton decides at kernel definition whether a kernel runs in its CPU interpreter: set the switch before
# any test module (or torch) imports facetpot's kernels, so the whole session tests them on CPU tensors
os.environ.setdefault("TRITON_INTERPRET", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from ase import Atoms  # noqa: E402
from ase.build import bulk, molecule  # noqa: E402

import facetpot  # noqa: E402
from facetpot.graph import atoms_to_graph  # noqa: E402
from facetpot.derivatives import compute_properties  # noqa: E402

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
SEVENNET_LIKE = dict(radial="bessel_mlp", radial_hidden=[8, 8], cutoff_fn="xplor", cutoff_on=3.5,
                     nonlinearity="gate", gate_activation="silu", parity=False, hidden_irreps="8x0e+4x1e+4x2e",
                     num_layers=5, neighbor_norm_exponent=1.0)


def small_model(**overrides) -> facetpot.FacetModel:
    torch.manual_seed(overrides.pop("seed", 0))
    cfg = dict(SMALL)
    cfg.update(overrides)
    model = facetpot.build_model(**cfg).double()
    # untrained weights give large random energies; a mild per-species reference makes E0 visible
    model.set_atomic_energies({z: -0.5 * k - 1.0 for k, z in enumerate(model.species)})
    return model


def evaluate(model, atoms, **kw):
    g = atoms_to_graph(atoms, model.cutoff, dtype=model.dtype)
    out = compute_properties(model, g, virials=kw.pop("virials", True), **kw)
    return {k: v.detach() for k, v in out.items()}


def triclinic_cell(seed=0) -> Atoms:
    """4-atom Al/Cu/Si/O cell, strongly triclinic and smaller than the cutoff (many images)."""
    rng = np.random.default_rng(seed)
    cell = np.array([[3.1, 0.0, 0.0], [1.2, 2.9, 0.0], [0.7, -0.9, 3.3]]) + 0.2 * rng.standard_normal((3, 3))
    frac = rng.random((4, 3))
    return Atoms("AlCuSiO", scaled_positions=frac, cell=cell, pbc=True)


def structures():
    """A set of structures covering the neighbour-list cases."""
    out = {}
    si = bulk("Si", "diamond", a=5.43)
    si.rattle(0.1, seed=1)
    out["si_primitive"] = si
    out["triclinic"] = triclinic_cell(0)
    slab = bulk("Cu", "fcc", a=3.6, cubic=True)
    slab.rattle(0.1, seed=2)
    slab.pbc = [True, True, False]
    out["mixed_pbc"] = slab
    mol = molecule("CH3CH2OH")
    mol.rattle(0.05, seed=3)
    out["molecule"] = mol
    return out


@pytest.fixture
def model():
    return small_model()


def random_orthogonal(rng, proper: bool) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] *= -1
    return q if proper else -q
