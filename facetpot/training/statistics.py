"""Statistics fitted from the training data before training.

* reference energies E0[s] by least squares: min || E - C E0 ||^2, C the composition matrix;
* average neighbour count within the cutoff (sampled frames);
* scale: RMS of the force components (or of per-atom energy residuals when there are no forces).
Everything streams over the cache shard by shard.
"""

from __future__ import annotations

from typing import Any, Dict, List, Sequence

import numpy as np

from ..data.cache import FrameCache
from ..structure.neighbors import radius_graph


def fit_statistics(
    cache: FrameCache, indices: Sequence[int], cutoff: float, seed: int, sample_frames: int
) -> Dict[str, Any]:
    """Everything a new model takes from the data: E0 per element (all ``indices``), the average
    neighbour count within ``cutoff`` and the residual RMS (``sample_frames`` of them, drawn with
    ``seed``), and the scale (force RMS, else per-atom energy residual RMS)."""
    e0 = fit_atomic_energies(cache, indices, cache.species)
    rng = np.random.default_rng(seed)
    sample = rng.choice(indices, size=min(len(indices), int(sample_frames)), replace=False)
    rms = residual_rms(cache, sample, e0)
    return {
        "atomic_energies": e0,
        "avg_num_neighbors": average_neighbors(cache, sample, cutoff),
        "scale": rms["force_rms"] or rms["energy_per_atom_rms"],
        **rms,
    }


def composition_matrix(cache: FrameCache, indices: Sequence[int], species: List[int]) -> np.ndarray:
    col = {z: k for k, z in enumerate(species)}
    out = np.zeros((len(indices), len(species)))
    for r, i in enumerate(indices):
        for z, c in zip(*np.unique(cache.frame_numbers(int(i)), return_counts=True)):
            out[r, col[int(z)]] = c
    return out


def fit_atomic_energies(cache: FrameCache, indices: Sequence[int], species: List[int]) -> Dict[int, float]:
    comp = composition_matrix(cache, indices, species)
    energy = cache.energies(indices)
    # tiny ridge: species that never vary independently still get a finite value
    a = comp.T @ comp + 1e-8 * np.eye(len(species))
    e0 = np.linalg.solve(a, comp.T @ energy)
    return {z: float(e) for z, e in zip(species, e0)}


def residual_rms(cache: FrameCache, indices, e0: Dict[int, float]) -> Dict[str, float]:
    sq_e, n_e, sq_f, n_f = 0.0, 0, 0.0, 0
    for i in indices:
        fr = cache[int(i)]
        res = (fr.energy - sum(e0[int(z)] for z in fr.numbers)) / len(fr.numbers)
        sq_e += res**2
        n_e += 1
        if fr.forces is not None:
            sq_f += float((fr.forces**2).sum())
            n_f += fr.forces.size
    return {"energy_per_atom_rms": (sq_e / max(n_e, 1)) ** 0.5, "force_rms": (sq_f / n_f) ** 0.5 if n_f else 0.0}


def average_neighbors(cache: FrameCache, indices, cutoff: float) -> float:
    edges = atoms = 0
    for i in indices:
        fr = cache[int(i)]
        ii, _, _ = radius_graph(fr.positions, fr.cell, fr.pbc, cutoff)
        edges += len(ii)
        atoms += len(fr.numbers)
    return edges / max(atoms, 1)
