"""Losses on energy per atom, force components and stress components, and the matching metrics.

Every term is a sum over the batch divided by a *global* count (frames, force components, stressed
frames) that the caller may all-reduce across ranks: then the sum of the ranks' gradients equals
the gradient of one process seeing the union of their batches.
"""
from __future__ import annotations

from typing import Dict

import torch


def elementwise(diff: torch.Tensor, kind: str, delta: float) -> torch.Tensor:
    if kind == "mse":
        return diff**2
    if kind == "mae":
        return diff.abs()
    a = diff.abs()  # huber
    return torch.where(a < delta, 0.5 * diff**2 / delta, a - 0.5 * delta)


def loss_terms(pred: Dict[str, torch.Tensor], batch, cfg) -> Dict[str, torch.Tensor]:
    """Sums and counts of each term (not yet normalised)."""
    kind, delta = cfg["type"], float(cfg["huber_delta"])
    n = batch.num_atoms.to(pred["energy"].dtype)
    w = batch.weight.to(pred["energy"].dtype)
    e_diff = (pred["energy"] - batch.energy) / n
    out = {"energy_sum": (w * elementwise(e_diff, kind, delta)).sum(), "energy_count": w.new_tensor(float(len(n)))}
    if "forces" in pred:
        mask = ~torch.isnan(batch.forces)
        wa = w[batch.graph.batch].unsqueeze(-1).expand_as(batch.forces)[mask]
        f_diff = (pred["forces"] - torch.nan_to_num(batch.forces))[mask]
        out["forces_sum"] = (wa * elementwise(f_diff, kind, delta)).sum()
        out["forces_count"] = w.new_tensor(float(mask.sum()))
    if "stress" in pred:
        has = ~torch.isnan(batch.stress).flatten(1).any(1)
        s_diff = (pred["stress"] - torch.nan_to_num(batch.stress))[has]
        out["stress_sum"] = (w[has].view(-1, 1, 1) * elementwise(s_diff, kind, delta)).sum()
        out["stress_count"] = w.new_tensor(float(has.sum() * 9))
    return out


def combine(terms: Dict[str, torch.Tensor], counts: Dict[str, torch.Tensor], cfg) -> torch.Tensor:
    total = 0.0
    for name in ("energy", "forces", "stress"):
        if f"{name}_sum" in terms and float(counts[f"{name}_count"]) > 0:
            total = total + float(cfg[f"{name}_weight"]) * terms[f"{name}_sum"] / counts[f"{name}_count"]
    return total


class ErrorMetrics:
    """Accumulates MAE and RMSE of energy/atom, forces, stress, overall and per config_type."""

    def __init__(self):
        self.acc: Dict[str, Dict[str, list]] = {}

    def _add(self, group: str, key: str, diff: torch.Tensor) -> None:
        if diff.numel() == 0:
            return
        a = self.acc.setdefault(group, {}).setdefault(key, [0.0, 0.0, 0])
        a[0] += float(diff.abs().sum())
        a[1] += float((diff**2).sum())
        a[2] += diff.numel()

    def update(self, pred, batch) -> None:
        n = batch.num_atoms.to(pred["energy"].dtype)
        e = ((pred["energy"] - batch.energy) / n).detach()
        f_ok = ~torch.isnan(batch.forces)
        s_ok = ~torch.isnan(batch.stress).flatten(1).any(1)
        for b, ct in enumerate(batch.config_type):
            for group in ("all", ct):
                self._add(group, "energy_per_atom", e[b : b + 1])
                if "forces" in pred:
                    sel = batch.graph.batch == b
                    d = (pred["forces"][sel] - batch.forces[sel])[f_ok[sel]]
                    self._add(group, "forces", d.detach())
                if "stress" in pred and bool(s_ok[b]):
                    self._add(group, "stress", (pred["stress"][b] - batch.stress[b]).detach())

    def result(self) -> Dict[str, Dict[str, float]]:
        out = {}
        for group, d in self.acc.items():
            out[group] = {}
            for key, (s1, s2, n) in d.items():
                out[group][f"{key}_mae"] = s1 / n
                out[group][f"{key}_rmse"] = (s2 / n) ** 0.5
            out[group]["frames"] = d.get("energy_per_atom", [0, 0, 0])[2]
        return out
