"""Reference energies of a fine-tuned model: the base model's, shifted by what it leaves in the new data.

A fine-tune starts from a model whose E0[s] already fit its own training data. The new data may be
on another energy reference (another code, pseudopotentials, functional, or EMT), so the base E0 are
shifted by the least-squares fit of the residual energies (MACE's ``E0s="estimated"``):

    dE0 = argmin_d || (E - E_base) - C d ||^2 ,   E0'[s] = E0[s] + dE0[s]

with E the data's energies, E_base the base model's predictions and C the composition matrix
(frames x elements). The minimum-norm solution is taken, so an element whose count never varies
independently shares the shift with the others. Elements the base model lacks enter with E0 = 0
and get their reference from this fit as well. Forces and stresses are unchanged by the shift.
"""

from __future__ import annotations

from typing import Dict, Sequence

import numpy as np
import torch

from ..data.batching import GraphDataset, collate, pack_batches
from ..data.cache import FrameCache
from ..derivatives import compute_properties
from .statistics import composition_matrix


def model_energies(model, cache: FrameCache, indices: Sequence[int], batch_atoms: int = 1024) -> np.ndarray:
    """Energies (eV) of ``model`` (as it is: device, dtype) for the cache's frames ``indices``."""
    dataset = GraphDataset(cache.path, indices, model.cutoff)
    sizes = cache.num_atoms()[np.asarray(indices, dtype=np.int64)].tolist()
    param = next(model.parameters())
    out = []
    was_training = model.training
    model.eval()
    try:
        for chunk in pack_batches(range(len(dataset)), sizes.__getitem__, batch_atoms):
            batch = collate([dataset[k] for k in chunk]).to(param.device, param.dtype)
            with torch.no_grad():
                energy = compute_properties(model, batch.graph, forces=False, stress=False)["energy"]
            out.append(energy.detach().double().cpu().numpy())
    finally:
        model.train(was_training)
    return np.concatenate(out) if out else np.zeros(0)


def residual_atomic_energies(model, cache: FrameCache, indices: Sequence[int]) -> Dict[int, float]:
    """E0'[s] = E0[s] + dE0[s] for every element of the model (see the module's formula)."""
    species = list(model.species)
    comp = composition_matrix(cache, indices, species)
    residual = cache.energies(indices) - model_energies(model, cache, indices)
    if not np.all(np.isfinite(residual)):
        raise FloatingPointError("the base model's energy is not finite on some training frame")
    shift, *_ = np.linalg.lstsq(comp, residual, rcond=None)
    e0 = model.atomic_energies.detach().double().cpu().numpy()
    return {int(z): float(e0[k] + shift[k]) for k, z in enumerate(species)}
