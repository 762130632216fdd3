"""Issue 22's active-learning table: distillation with and without active learning at the same number of teacher
labels, and how the committee's force std follows the true error.

    facet distill training/distill_si/active_si.yaml          # committee picks (about 25 min on 2 CPU cores)
    facet distill training/distill_si/active_si_random.yaml   # random picks from the same candidates
    python benchmarks/active_learning.py runs/active_si runs/active_si_random [--write]

Per run and round (from LABELS/active/summary.json): teacher labels so far, force MAE against the teacher on the
held-out structures (committee mean; student 0), and the Pearson / Spearman correlation over held-out structures of
the committee's largest per-atom force std with the largest per-atom force error of its mean. Then, against DFT
(../shared/data/mlearn/Si_test.extxyz, 25 structures; energy after each model's mean offset on Si_training, as
benchmarks/distill.py): student 0 of every round, and the same correlation for the last round's committee.
"""

from __future__ import annotations

import argparse
import datetime
import json
from pathlib import Path

import numpy as np

from distill import MLEARN, errors  # benchmarks/distill.py
from harness import append_results  # benchmarks/harness.py
from machine import machine  # benchmarks/machine.py


def dft_correlation(students, threads):
    """(Pearson, Spearman) of the committee's largest force std and its mean's largest force error against DFT,
    over the Si_test structures."""
    import torch
    from ase.io import read

    from facetpot.inference.committee import Committee
    from facetpot.distill.active import committee_spread

    torch.set_num_threads(threads)
    frames = read(MLEARN / "Si_test.extxyz", ":")
    spread = committee_spread(Committee(students, dtype="float64"), frames, 512)
    std = np.array([s.max() for _, s in spread])
    err = np.array([np.linalg.norm(f - a.get_forces(), axis=1).max() for (f, _), a in zip(spread, frames)])
    rank = lambda v: np.argsort(np.argsort(v))  # noqa: E731
    return float(np.corrcoef(std, err)[0, 1]), float(np.corrcoef(rank(std), rank(err))[0, 1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="training.output folders of facet distill runs with active.rounds > 0")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--write", action="store_true", help="append the table to benchmarks/RESULTS.md")
    args = ap.parse_args()
    lines = [
        "",
        f"### Active learning in facet distill (issue 22), {datetime.date.today()}, {machine()}",
        "",
        f"Command: `python benchmarks/active_learning.py {' '.join(args.runs)}`. Held-out: force MAE against the "
        "teacher on the run's held-out structures (committee mean / student 0) and the correlation over them of "
        "the committee's largest per-atom force std with its largest per-atom force error (Pearson / Spearman). "
        "DFT: student 0 on mlearn Si_test (25 structures; energy after its mean offset on Si_training).",
        "",
        "| run | strategy | round | teacher labels | held-out F MAE committee (meV/Å) | student 0 (meV/Å) | "
        "std-error r (Pearson / Spearman) | Si_test E MAE (meV/atom) | Si_test F MAE (meV/Å) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    last = {}
    for run in args.runs:
        summary = json.loads((Path(run) / "labels" / "active" / "summary.json").read_text())
        for h in summary["rounds"]:
            dft = errors(h["students"][0], args.threads)
            lines.append(
                f"| {run} | {summary['strategy']} | {h['round']} | {h['labels']} | "
                f"{1e3 * h['forces_mae_committee']:.1f} | {1e3 * h['forces_mae_student0']:.1f} | "
                f"{h['std_error_pearson']:.2f} / {h['std_error_spearman']:.2f} | {dft['energy_mae_meV']:.2f} | "
                f"{dft['forces_mae_meV']:.1f} |"
            )
            print(lines[-1], flush=True)
        last[run] = summary["rounds"][-1]["students"]
    lines += ["", "Committee std against the true error on Si_test (DFT), last round's committee:", ""]
    for run, students in last.items():
        pearson, spearman = dft_correlation(students, args.threads)
        lines.append(f"- {run}: Pearson {pearson:.3f}, Spearman {spearman:.3f} (25 structures)")
        print(lines[-1], flush=True)
    text = "\n".join(lines)
    print(text)
    if args.write:
        append_results(text)


if __name__ == "__main__":
    main()
