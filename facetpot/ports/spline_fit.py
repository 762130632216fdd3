"""Facet's trim of a radial-MLP model: every layer's radial MLP replaced by weights linear in splines.

A ``bessel_mlp`` layer computes radial weights w(r) = h(b(r)) W n_mlp (an MLP of a Bessel basis,
then its last linear layer); a ``spline`` layer computes w(r) = B(r) C n, with B the K cubic
B-splines times the same cutoff (``nn.spline_radial``). For every layer, C is the weighted least-
squares fit

    C = argmin  sum_e || B(r_e) C n - h(b(r_e)) W n_mlp ||^2

over pair distances r_e of real structures (so the fit is good where the model is used and a
distance that never occurs costs nothing). The rest of the network is copied unchanged. The fit
quality is reported per layer as the relative RMS error of w over those distances,
sqrt(sum (w_spline - w)^2 / sum w^2).

With ``rank`` R > 0 the weights are first projected on their R principal directions over the
distances (the top eigenvectors of sum_e w(r_e)^T w(r_e); the weights of an MLP layer are close to low
rank), and only those R functions are fitted with splines: W = A M with A (K, R), M (R, n_weights),
K R + R n_weights parameters per layer instead of K n_weights.
"""

from __future__ import annotations

import copy
from typing import Dict, List, Sequence, Tuple, Union

import numpy as np
import torch

from ..model import FacetModel, layer_ranks
from ..structure.neighbors import radius_graph


def pair_distances(structures, cutoff: float, max_distances: int = 400_000, seed: int = 0) -> torch.Tensor:
    """Distances (Å, float64) of all neighbour pairs within ``cutoff`` in ``structures`` (ASE Atoms),
    subsampled evenly at random to at most ``max_distances``."""
    found: List[np.ndarray] = []
    for atoms in structures:
        i, j, shifts = radius_graph(atoms.get_positions(), atoms.cell.array, atoms.pbc, cutoff)
        vec = atoms.positions[j] - atoms.positions[i] + shifts @ atoms.cell.array
        found.append(np.linalg.norm(vec, axis=1))
    r = np.concatenate(found) if found else np.zeros(0)
    if len(r) == 0:
        raise ValueError("no neighbour pairs within the cutoff in the fitting structures")
    if len(r) > max_distances:
        r = np.random.default_rng(seed).choice(r, max_distances, replace=False)
    return torch.as_tensor(np.sort(r), dtype=torch.float64)


def spline_config(config: Dict, num_splines: int, start: float = 0.0, rank: Union[int, Sequence[int]] = 0) -> Dict:
    cfg = copy.deepcopy(config)
    cfg["radial"] = "spline"
    cfg["num_radial"] = int(num_splines)
    cfg["spline_start"] = float(start)
    cfg["radial_rank"] = rank
    return cfg


@torch.no_grad()
def fit_splines(
    model: FacetModel,
    distances: torch.Tensor,
    num_splines: int,
    start: float = 0.0,
    chunk: int = 20_000,
    rank: Union[int, Sequence[int]] = 0,
) -> Tuple[FacetModel, List[float]]:
    """(the spline model, relative RMS error of the radial weights per layer); ``rank``: one R for all layers
    or one per layer. A ``model`` passed through :func:`fold_first_linear` gives a spline model without the
    first Linear_in."""
    if model.config["radial"] != "bessel_mlp":
        raise ValueError(
            f"fit_splines needs a radial-MLP model (radial='bessel_mlp'), got radial={model.config['radial']!r}"
        )
    model = copy.deepcopy(model).double()
    spline = FacetModel(**spline_config(model.config, num_splines, start, rank)).double()
    keep = {
        k: v
        for k, v in model.state_dict().items()
        if not (k.startswith("radial.") or ".conv.radial_mlp." in k or k.endswith(".conv.radial_weight"))
    }
    missing, unexpected = spline.load_state_dict(keep, strict=False)
    if unexpected or any(not k.endswith((".conv.radial_weight", ".conv.radial_mix")) for k in missing):
        raise RuntimeError(f"state mismatch: missing {missing}, unexpected {unexpected}")
    chunks = torch.split(distances.to(torch.float64), chunk)  # (E, n_weights) targets in bounded memory
    errors = []
    for layer, new, rank in zip(model.layers, spline.layers, layer_ranks(rank, len(model.layers))):
        conv, target_conv = layer.conv, new.conv

        def weights(r):  # the MLP layer's radial weights, and the spline basis, at distances r
            return conv.radial_mlp(model.radial(r)) @ conv.radial_weight * conv.norm, spline.radial(r)

        errors.append(_fit_layer(target_conv, weights, chunks, rank))
    spline.set_atomic_energies({z: float(e) for z, e in zip(spline.species, model.atomic_energies.tolist())})
    spline.set_scale({z: float(s) for z, s in zip(spline.species, model.scale.tolist())})
    spline.metadata = dict(model.metadata)
    return spline.eval(), errors


def _fit_layer(target_conv, weights, chunks: Sequence[torch.Tensor], rank: int) -> float:
    """Least-squares spline coefficients of one layer's radial weights over the distances ``chunks``, written
    into ``target_conv`` (rank ``rank`` > 0: W = A M through the weights' R principal directions M); returns the
    relative RMS error of the fitted weights. ``weights(r)``: (the layer's weights, the spline basis) at r."""
    k, n_weights = target_conv.num_radial, target_conv.paths.num_weights
    mix = torch.eye(n_weights, dtype=torch.float64)  # full rank: the weights themselves
    if rank > 0:  # the R principal directions of the weights over the distances (eigenvectors of T^T T)
        cov = torch.zeros(n_weights, n_weights, dtype=torch.float64)
        for r in chunks:
            w, _ = weights(r)
            cov += w.T @ w
        mix = torch.linalg.eigh(cov).eigenvectors[:, -rank:].flip(1)  # (n_weights, R)
    gram = torch.zeros(k, k, dtype=torch.float64)
    rhs = torch.zeros(k, mix.shape[1], dtype=torch.float64)
    for r in chunks:
        w, basis = weights(r)
        gram += basis.T @ basis
        rhs += basis.T @ (w / target_conv.norm) @ mix
    # ridge-free normal equations; a spline with no distance in its support gets a zero column
    empty = gram.diagonal() < 1e-12 * gram.diagonal().max()
    gram[empty, empty] = 1.0
    coeffs = torch.linalg.solve(gram, rhs)
    coeffs[empty] = 0.0
    if rank > 0:  # W = A M: the spline coefficients of the R directions, and the directions
        target_conv.radial_mix.copy_(coeffs)
        target_conv.radial_weight.copy_(mix.T)
    else:
        target_conv.radial_weight.copy_(coeffs)
    full = coeffs @ mix.T  # (K, n_weights)
    residual = total = 0.0
    for r in chunks:
        w, basis = weights(r)
        residual += float(((basis @ full * target_conv.norm - w) ** 2).sum())
        total += float((w**2).sum())
    return (residual / total) ** 0.5


@torch.no_grad()
def fold_first_linear(model: FacetModel) -> FacetModel:
    """The same function without the first layer's Linear_in (``first_linear_in=False``): the embedding E becomes
    E' = E L / sqrt(fan_in) + b (what the convolution reads; b: Linear_in's bias, if any), and the first
    self-connection, which read E, reads E' with weights S' solving E' S' = E S (exact: the N_species rows of E' are
    independent unless L is singular on them, which raises). Saves the mul0 x mul0 numbers of L (and b)."""
    if not model.config["first_linear_in"]:
        return model
    layer = model.layers[0]
    if len(layer.linear_in.weights) != 1:
        raise ValueError("fold_first_linear needs a first layer with scalar inputs only")
    cfg = dict(model.config, first_linear_in=False)
    out = FacetModel(**cfg).to(model.dtype)
    e = model.embedding.weight.detach().double()
    e_new = e @ layer.linear_in.weights[0].double() * layer.linear_in.norms[0]
    if layer.linear_in.has_bias[0]:  # SevenNet-MF's fidelity bias: part of what the convolution reads
        e_new = e_new + layer.linear_in.biases[0].double()
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("layers.0.linear_in.")}
    state["embedding.weight"] = e_new.to(model.dtype)
    sc = layer.self_connection
    for k, w in enumerate(sc.weights):
        if w.numel() == 0:
            continue
        solved = torch.linalg.lstsq(e_new, e @ w.double()).solution
        if not torch.allclose(e_new @ solved, e @ w.double(), atol=1e-8 * float(e.abs().max() * w.abs().max()) + 1e-12):
            raise ValueError("the first Linear_in is singular on the species embedding: it cannot be folded")
        state[f"layers.0.self_connection.weights.{k}"] = solved.to(model.dtype)
    out.load_state_dict(state, strict=True)
    out.metadata = dict(model.metadata)
    return out.eval()
