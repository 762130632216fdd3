"""Issue 12's tables: the silicon example (teacher vs distilled vs refined on the mlearn Si DFT test set,
and speed) and facet-s-universal beside its teacher on held-out MPtrj frames.

    facet distill training/distill_si/distill_si.yaml            # ~45 min on 2 CPU cores
    python benchmarks/distill.py --student runs/distill_si/best.pt [--refined runs/distill_si_refined/best.pt]
    python benchmarks/distill.py --universal runs/facet_s_universal/best.pt [--universal-teacher NAME]

--universal: energy (meV/atom, no offset: both predict MPtrj's uncorrected energies), force (meV/Å) and
stress (meV/Å^3) MAE against the DFT labels of the ODD frames of ../shared/data/mptrj/mptrj-random-1k.extxyz,
which training/facet_s_universal/distill.yaml never uses (its seeds are the even frames), float64.

Errors against DFT on ../shared/data/mlearn/Si_test.extxyz (25 structures): energy MAE in meV/atom after
removing each model's mean per-atom offset on Si_training.extxyz (the teacher was trained on Materials
Project energies, mlearn's DFT has another zero; the offset is one number per model, fitted on the training
set, never on the test set), and force MAE in meV/Å. Speed: one energy + forces + stress call on Si 64 and Si 512 (float32, --threads
threads, median of --reps calls after warm-up), each model in a fresh process.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

import numpy as np

from harness import append_results, run_worker  # benchmarks/harness.py
from machine import machine  # benchmarks/machine.py
from systems import WORKER_IMPORT  # benchmarks/systems.py

HERE = Path(__file__).resolve().parent
MLEARN = HERE.parent.parent / "shared" / "data" / "mlearn"
MPTRJ = HERE.parent.parent / "shared" / "data" / "mptrj" / "mptrj-random-1k.extxyz"

SPEED = (
    WORKER_IMPORT
    + r"""
import json, sys, torch
import facetpot
from systems import median_ms, silicon, time_calls
model, reps, threads, rep = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads)
atoms = silicon(rep, rattle=0.01)
atoms.calc = facetpot.FacetCalculator(model, dtype="float32")
def call():
    atoms.get_potential_energy(); atoms.get_forces(); atoms.get_stress()
def move():
    atoms.positions[0, 0] += 1e-4
print("RESULT", json.dumps({"ms": median_ms(time_calls(call, reps, warmup=3, before=move))}))
"""
)


def errors(model_name, threads):
    import torch
    from ase.io import read

    import facetpot
    from facetpot.inference.single_points import predict_structures

    torch.set_num_threads(threads)
    model = facetpot.load_model(model_name, dtype="float64")
    for p in model.parameters():
        p.requires_grad_(False)
    out = {}
    for split in ("training", "test"):
        frames = read(MLEARN / f"Si_{split}.extxyz", ":")
        pred = predict_structures(model, frames, 512)
        de = np.array([(p[0] - a.get_potential_energy()) / len(a) for a, p in zip(frames, pred)])
        df = np.concatenate([(p[1] - a.get_forces()).ravel() for a, p in zip(frames, pred)])
        out[split] = (de, df)
    offset = float(out["training"][0].mean())
    de, df = out["test"]
    return {
        "offset_eV_per_atom": offset,
        "energy_mae_meV": 1e3 * float(np.abs(de - offset).mean()),
        "forces_mae_meV": 1e3 * float(np.abs(df).mean()),
        "parameters": model.num_parameters(),
    }


def mptrj_errors(model_name, threads):
    """MAEs of one model on the odd (held-out) MPtrj frames against their DFT labels."""
    import torch
    from ase.io import read

    import facetpot
    from facetpot.inference.single_points import predict_structures

    torch.set_num_threads(threads)
    model = facetpot.load_model(model_name, dtype="float64")
    for p in model.parameters():
        p.requires_grad_(False)
    frames = read(MPTRJ, "1::2")
    pred = predict_structures(model, frames, 512)
    de = [(p[0] - a.get_potential_energy()) / len(a) for a, p in zip(frames, pred)]
    df = np.concatenate([(p[1] - a.get_forces()).ravel() for a, p in zip(frames, pred)])
    ds = np.concatenate([p[2] - a.get_stress() for a, p in zip(frames, pred)])
    return {
        "frames": len(frames),
        "energy_mae_meV": 1e3 * float(np.abs(de).mean()),
        "forces_mae_meV": 1e3 * float(np.abs(df).mean()),
        "stress_mae_meV_A3": 1e3 * float(np.abs(ds).mean()),
        "parameters": model.num_parameters(),
    }


def universal_table(args):
    models = {"teacher " + args.universal_teacher: args.universal_teacher, "facet-s-universal": args.universal}
    rows = {label: mptrj_errors(path, args.threads) for label, path in models.items()}
    for label in rows:
        print(label, json.dumps(rows[label]), flush=True)
    t = rows["teacher " + args.universal_teacher]
    sizes = {64: 2, 512: 4}
    times = {(label, n): [] for label in models for n in sizes}
    for _ in range(args.rounds):
        for n, rep in sizes.items():
            for label, path in models.items():
                times[label, n].append(speed(path, args.reps, args.threads, rep))
    ms = {key: statistics.median(v) for key, v in times.items()}
    teacher = "teacher " + args.universal_teacher
    lines = [
        "",
        f"### facet-s-universal beside its teacher (issue 12), {machine()}",
        "",
        f"Command: `python benchmarks/distill.py --universal {args.universal}`. MAE against the DFT labels of "
        f"the {t['frames']} odd frames of mptrj-random-1k (held out from the distillation), float64; speed: one "
        f"energy + forces + stress call on Si 64 and Si 512, float32, {args.threads} threads, median of "
        f"{args.reps} calls, median over {args.rounds} alternating rounds.",
        "",
        "| model | parameters | E MAE (meV/atom) | F MAE (meV/Å) | S MAE (meV/Å³) | E / teacher | F / teacher "
        "| S / teacher | Si 64 (ms) | Si 512 (ms) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label, r in rows.items():
        lines.append(
            f"| {label} | {r['parameters']:,} | {r['energy_mae_meV']:.2f} | {r['forces_mae_meV']:.1f} | "
            f"{r['stress_mae_meV_A3']:.3f} | {r['energy_mae_meV'] / t['energy_mae_meV']:.2f} | "
            f"{r['forces_mae_meV'] / t['forces_mae_meV']:.2f} | "
            f"{r['stress_mae_meV_A3'] / t['stress_mae_meV_A3']:.2f} | "
            + " | ".join(f"{ms[label, n]:.1f} ({ms[teacher, n] / ms[label, n]:.1f}x)" for n in sizes)
            + " |"
        )
    return "\n".join(lines)


def speed(model_name, reps, threads, rep):
    return run_worker(
        sys.executable,
        SPEED,
        [model_name, reps, threads, rep],
        threads=threads,
        omp_wait_policy=os.environ.get("OMP_WAIT_POLICY"),
    )[0]["ms"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--teacher", default="facet-7net0-spline")
    ap.add_argument("--student", default="runs/distill_si/best.pt")
    ap.add_argument("--refined", default=None, help="the student refined on Si_training.extxyz (optional)")
    ap.add_argument("--universal", default=None, help="facet-s-universal's model file: its table instead of Si's")
    ap.add_argument("--universal-teacher", default="facet-7net-l3i5-spline")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=2, help="alternating speed rounds (median over rounds)")
    ap.add_argument("--write", action="store_true", help="append the table to benchmarks/RESULTS.md")
    args = ap.parse_args()
    if args.universal:
        text = universal_table(args)
        print(text)
        if args.write:
            append_results(text)
        return
    models = {"teacher " + args.teacher: args.teacher, "distilled": args.student}
    if args.refined:
        models["distilled + refined on Si_training"] = args.refined
    rows = {}
    for label, path in models.items():
        rows[label] = errors(path, args.threads)
        print(label, json.dumps(rows[label]), flush=True)
    sizes = {64: 2, 512: 4}  # Si atoms -> cubic-cell repeat
    times = {(label, n): [] for label in models for n in sizes}
    for _ in range(args.rounds):
        for n, rep in sizes.items():
            for label, path in models.items():
                times[label, n].append(speed(path, args.reps, args.threads, rep))
    teacher = next(iter(models))
    ms = {key: statistics.median(t) for key, t in times.items()}
    lines = [
        "",
        f"### Distilled silicon (issue 12), {machine()}",
        "",
        f"Command: `python benchmarks/distill.py --student {args.student}"
        + (f" --refined {args.refined}" if args.refined else "")
        + f" --threads {args.threads}`. "
        "Errors on mlearn Si_test (25 DFT structures); energy after each model's mean offset on Si_training; "
        f"speed: one energy + forces + stress call on Si 64 and Si 512, float32, {args.threads} threads, "
        f"median of {args.reps} calls, median over {args.rounds} alternating rounds (fresh process each).",
        "",
        "| model | parameters | E MAE (meV/atom) | F MAE (meV/Å) | F vs teacher | Si 64 call (ms) | faster | "
        "Si 512 call (ms) | faster |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for label in models:
        r = rows[label]
        lines.append(
            f"| {label} | {r['parameters']:,} | {r['energy_mae_meV']:.2f} | {r['forces_mae_meV']:.1f} | "
            f"{r['forces_mae_meV'] / rows[teacher]['forces_mae_meV']:.2f}x | "
            + " | ".join(f"{ms[label, n]:.1f} | {ms[teacher, n] / ms[label, n]:.1f}x" for n in sizes)
            + " |"
        )
    text = "\n".join(lines)
    print(text)
    if args.write:
        append_results(text)


if __name__ == "__main__":
    main()
