"""The output folder of a training run (``training.output``) and its logs.

Files: ``checkpoint.pt`` (``checkpoint.py``), ``best.pt`` / ``last.pt`` (model files),
``statistics.json``, ``metrics.csv`` (one row per validation; also TensorBoard scalars in
``tensorboard/`` when it is installed and enabled), ``final_metrics.json`` and
``learning_curve.png`` (``facetpot.plots``).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Dict

from ..io.atomic_write import atomic_write_text
from ..io.output_folder import check_output_folder
from .distributed import log

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.csv"
#: what a new run (``--overwrite``) removes from a folder that holds an earlier one
RUN_FILES = ("metrics.csv", "checkpoint.pt", "best.pt", "last.pt", "final_metrics.json")
METRIC_FIELDS = [
    "step",
    "epoch",
    "lr",
    "train_loss",
    "valid_energy_mae_meV_per_atom",
    "valid_forces_mae",
    "valid_stress_mae",
    "seconds",
    "valid_replay_energy_mae_meV_per_atom",
    "valid_replay_forces_mae",
    "valid_replay_stress_mae",
]


def prepare_run_dir(out: Path, resume: bool, overwrite: bool) -> Path:
    """Create ``out``; refuse to start over an earlier run unless ``overwrite`` (which removes its files), and a
    folder that cannot be written (``io.output_folder``) before any data is read."""
    check_output_folder(out)
    if not resume and not overwrite and (out / CHECKPOINT).exists():
        raise ValueError(
            f"{out} already holds a training run: continue it with --resume, or choose "
            "another training.output (--overwrite replaces it)"
        )
    if overwrite and not resume:
        for name in RUN_FILES:
            (out / name).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    return out


def write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=1))


def _summary_writer(folder: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter  # lazy: optional dependency (pip install .[train])
    except ImportError:
        log("TensorBoard not installed (pip install tensorboard): logging to metrics.csv only")
        return None
    return SummaryWriter(str(folder))


class MetricsLog:
    """Rows appended to ``metrics.csv`` and, when ``tensorboard``, written as TensorBoard scalars."""

    def __init__(self, out: Path, tensorboard: bool):
        self.path = out / METRICS
        self.writer = _summary_writer(out / "tensorboard") if tensorboard else None

    def write(self, row: Dict[str, Any]) -> None:
        new = not self.path.exists()
        with open(self.path, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=METRIC_FIELDS, extrasaction="ignore")
            if new:
                w.writeheader()
            w.writerow(row)
        if self.writer is not None:
            for k, v in row.items():
                if k not in ("step", "epoch") and v not in ("", None):
                    self.writer.add_scalar(k, float(v), row["step"])
            self.writer.flush()
