"""Figures: parity plots of ``facet eval`` and the learning curve of ``facet train``.

matplotlib is optional (``pip install .[train]``): without it no figure is drawn and the callers
carry on.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from .structure.units import EV_PER_A3_TO_GPA

#: at most this many points per parity panel (sampled evenly)
MAX_PARITY_POINTS = 200_000


def load_pyplot():
    """matplotlib.pyplot with the file-only Agg backend, or None when matplotlib is not installed."""
    try:
        import matplotlib  # lazy: optional dependency (pip install .[train])

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # lazy: optional dependency
    except ImportError:
        return None
    return plt


def mae_title(kind: str, mae: float) -> str:
    """A parity panel's title in the report's units: energy ``e`` in meV/atom (``mae`` in eV/atom), forces ``f``
    in eV/Å, stress ``s`` in eV/Å³ and GPa."""
    if kind == "e":
        return f"MAE {1e3 * mae:.3g} meV/atom"
    if kind == "f":
        return f"MAE {mae:.3g} eV/Å"
    return f"MAE {mae:.3g} eV/Å³ ({mae * EV_PER_A3_TO_GPA:.3g} GPa)"


def parity_plots(p: Dict[str, np.ndarray], out: Path) -> List[Path]:
    """``out/parity.png``: predicted against reference energy/atom, force and stress components
    (``p["e_ref"]``, ``p["e_pred"]``, ``f_*``, ``s_*``; empty panels left out)."""
    plt = load_pyplot()
    if plt is None:
        print("matplotlib not installed: no plots (pip install matplotlib)")
        return []
    panels = [("e", "energy (eV/atom)"), ("f", "force component (eV/Å)"), ("s", "stress component (eV/Å³)")]
    panels = [(k, label) for k, label in panels if len(p[f"{k}_ref"])]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4))
    axes = np.atleast_1d(axes)
    for ax, (k, label) in zip(axes, panels):
        ref, pred = p[f"{k}_ref"], p[f"{k}_pred"]
        if len(ref) > MAX_PARITY_POINTS:
            sel = np.linspace(0, len(ref) - 1, MAX_PARITY_POINTS).astype(int)
            ref, pred = ref[sel], pred[sel]
        ax.scatter(ref, pred, s=2, alpha=0.4)
        lo, hi = float(min(ref.min(), pred.min())), float(max(ref.max(), pred.max()))
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        mae = float(np.abs(ref - pred).mean())
        ax.set_title(mae_title(k, mae))
        ax.set_xlabel(f"reference {label}")
        ax.set_ylabel(f"predicted {label}")
    fig.tight_layout()
    path = Path(out) / "parity.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return [path]


def learning_curve(run_dir) -> Optional[Path]:
    """Plot ``metrics.csv`` of a training run into ``learning_curve.png`` (None without rows or matplotlib)."""
    run = Path(run_dir)
    with open(run / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return None
    plt = load_pyplot()
    if plt is None:
        return None
    step = [int(r["step"]) for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for ax, key, label in zip(
        axes,
        ["train_loss", "valid_energy_mae_meV_per_atom", "valid_forces_mae"],
        ["training loss", "valid energy MAE (meV/atom)", "valid force MAE (eV/Å)"],
    ):
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
