"""``facet eval MODEL DATA``: errors overall and per config_type, a JSON report, parity plots.

Energies are compared per atom (meV/atom in the report), forces per component (eV/Å), stress per
component (eV/Å^3 and GPa). Frames stream from the files; only the points of the parity plots are
kept (at most 200,000 force components, sampled evenly).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import torch
from ase import units

from .data.batching import collate, frame_to_graph
from .data.readers import iter_frames
from .properties import compute_properties
from .training.loss import ErrorMetrics

EV_A3_TO_GPA = 1.0 / units.GPa


def _batches(frames, cutoff, batch_atoms):
    cur, n = [], 0
    for fr in frames:
        if cur and n + len(fr.numbers) > batch_atoms:
            yield cur
            cur, n = [], 0
        cur.append(fr)
        n += len(fr.numbers)
    if cur:
        yield cur


def evaluate_model(model, data, out_dir="eval", keys: Optional[Dict[str, str]] = None, device="cpu",
                   dtype="float64", batch_atoms=2048, plots=True) -> Dict:
    from .model_file import resolve_model

    m = resolve_model(model, device=device, dtype=dtype)
    m.eval()
    tdtype = getattr(torch, dtype)
    metrics = ErrorMetrics()
    points: Dict[str, List[np.ndarray]] = {"e_ref": [], "e_pred": [], "f_ref": [], "f_pred": [], "s_ref": [], "s_pred": []}
    rejected = []
    for chunk in _batches(iter_frames(data, keys=keys), m.cutoff, batch_atoms):
        good = []
        for fr in chunk:
            why = fr.problem()
            (rejected.append(f"{fr.name}: {why}") if why else good.append(fr))
        if not good:
            continue
        batch = collate([frame_to_graph(fr, m.cutoff) for fr in good]).to(device, tdtype)
        has_s = bool((~torch.isnan(batch.stress)).any())
        pred = compute_properties(m, batch.graph, forces=True, stress=has_s)
        pred = {k: v.detach() for k, v in pred.items()}
        metrics.update(pred, batch)
        n = batch.num_atoms.to(tdtype)
        points["e_ref"].append((batch.energy / n).cpu().numpy())
        points["e_pred"].append((pred["energy"] / n).cpu().numpy())
        ok = ~torch.isnan(batch.forces)
        points["f_ref"].append(batch.forces[ok].cpu().numpy())
        points["f_pred"].append(pred["forces"][ok].cpu().numpy())
        if has_s:
            sok = ~torch.isnan(batch.stress)
            points["s_ref"].append(batch.stress[sok].cpu().numpy())
            points["s_pred"].append(pred["stress"][sok].cpu().numpy())
    result = metrics.result()
    if not result:
        raise ValueError(f"no usable frames in {data}" + (f"; rejected: {rejected[:5]}" if rejected else ""))
    report = {}
    for group, d in result.items():
        r = {"frames": d["frames"]}
        for k, v in d.items():
            if k.startswith("energy_per_atom"):
                r[k.replace("energy_per_atom", "energy") + "_meV_per_atom"] = 1e3 * v
            elif k.startswith("forces"):
                r[k + "_eV_per_A"] = v
            elif k.startswith("stress"):
                r[k + "_eV_per_A3"] = v
                r[k + "_GPa"] = v * EV_A3_TO_GPA
        report[group] = r
    report["rejected_frames"] = rejected
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=1))
    if plots:
        parity_plots({k: np.concatenate(v) if v else np.zeros(0) for k, v in points.items()}, out)
    return report


def parity_plots(p: Dict[str, np.ndarray], out: Path) -> List[Path]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plots (pip install matplotlib)")
        return []
    panels = [("e", "energy (eV/atom)"), ("f", "force component (eV/Å)"), ("s", "stress component (eV/Å³)")]
    panels = [(k, label) for k, label in panels if len(p[f"{k}_ref"])]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4))
    axes = np.atleast_1d(axes)
    for ax, (k, label) in zip(axes, panels):
        ref, pred = p[f"{k}_ref"], p[f"{k}_pred"]
        if len(ref) > 200_000:
            sel = np.linspace(0, len(ref) - 1, 200_000).astype(int)
            ref, pred = ref[sel], pred[sel]
        ax.scatter(ref, pred, s=2, alpha=0.4)
        lo, hi = float(min(ref.min(), pred.min())), float(max(ref.max(), pred.max()))
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        mae = float(np.abs(ref - pred).mean())
        ax.set_title(f"MAE {mae:.4g}")
        ax.set_xlabel(f"reference {label}")
        ax.set_ylabel(f"predicted {label}")
    fig.tight_layout()
    path = out / "parity.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return [path]


def learning_curve(run_dir) -> Optional[Path]:
    """Plot ``metrics.csv`` of a training run into ``learning_curve.png``."""
    import csv

    run = Path(run_dir)
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    if not rows:
        return None
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    step = [int(r["step"]) for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for ax, key, label in zip(axes, ["train_loss", "valid_energy_mae_meV_per_atom", "valid_forces_mae"],
                              ["training loss", "valid energy MAE (meV/atom)", "valid force MAE (eV/Å)"]):
        ys = [float(r[key]) if r.get(key) not in ("", None) else np.nan for r in rows]
        ax.plot(step, ys, "o-", ms=3)
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_title(label)
    fig.tight_layout()
    path = run / "learning_curve.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
