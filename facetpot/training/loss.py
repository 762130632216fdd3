"""Predictions for labelled batches, losses on energy per atom, force components and stress
components, and the matching metrics.

Every term is a sum over the batch divided by a *global* count (frames, force components, stressed
frames) that the caller may all-reduce across ranks: then the sum of the ranks' gradients equals
the gradient of one process seeing the union of their batches.
"""

from __future__ import annotations

from typing import Dict, List

import torch

from ..derivatives import compute_properties


def predict(model, batch, create_graph: bool) -> Dict[str, torch.Tensor]:
    """Energies, and forces / stress where the batch has labels for them."""
    has_f = bool((~torch.isnan(batch.forces)).any())
    has_s = bool((~torch.isnan(batch.stress)).any())
    with torch.enable_grad():
        return compute_properties(model, batch.graph, forces=has_f, stress=has_s, create_graph=create_graph)


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
    """Accumulates MAE and RMSE of energy/atom, forces, stress, overall and per config_type.

    Per batch, absolute and squared errors are summed per frame (``index_add``), then per group."""

    def __init__(self):
        self.acc: Dict[str, Dict[str, list]] = {}

    def update(self, pred, batch) -> None:
        n = batch.num_atoms.to(pred["energy"].dtype)
        nf = len(n)
        sums = {"energy_per_atom": self._frame_sums((pred["energy"] - batch.energy) / n, torch.arange(nf), nf)}
        if "forces" in pred:
            d = pred["forces"] - batch.forces
            atom = batch.graph.batch.unsqueeze(-1).expand_as(d)
            ok = ~torch.isnan(d)
            sums["forces"] = self._frame_sums(d[ok], atom[ok], nf)
        if "stress" in pred:
            d = (pred["stress"] - batch.stress).flatten(1)
            frame = torch.arange(nf, device=d.device).unsqueeze(-1).expand_as(d)
            ok = ~torch.isnan(d)
            sums["stress"] = self._frame_sums(d[ok], frame[ok], nf)
        groups: Dict[str, List[int]] = {"all": list(range(nf))}
        for b, ct in enumerate(batch.config_type):
            groups.setdefault(ct, []).append(b)
        for group, frames in groups.items():
            sel = torch.tensor(frames)
            for key, (s1, s2, cnt) in sums.items():
                a = self.acc.setdefault(group, {}).setdefault(key, [0.0, 0.0, 0])
                a[0] += float(s1[sel].sum())
                a[1] += float(s2[sel].sum())
                a[2] += int(cnt[sel].sum())

    @staticmethod
    def _frame_sums(diff: torch.Tensor, frame: torch.Tensor, nf: int):
        diff = diff.detach().double().cpu()
        frame = frame.cpu()
        z = torch.zeros(nf, dtype=torch.float64)
        return (
            z.index_add(0, frame, diff.abs()),
            z.index_add(0, frame, diff**2),
            torch.zeros(nf, dtype=torch.long).index_add(0, frame, torch.ones_like(frame)),
        )

    def result(self) -> Dict[str, Dict[str, float]]:
        out = {}
        for group, d in self.acc.items():
            out[group] = {}
            for key, (s1, s2, n) in d.items():
                if n:
                    out[group][f"{key}_mae"] = s1 / n
                    out[group][f"{key}_rmse"] = (s2 / n) ** 0.5
            out[group]["frames"] = d.get("energy_per_atom", [0, 0, 0])[2]
        return out
