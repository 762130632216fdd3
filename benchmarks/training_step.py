"""Time of one training step: facetpot vs SevenNet-0 vs MACE-MP-0 medium, on the same batches of MPtrj frames.

    python benchmarks/training_step.py                          # 4 models x 5 batches of 8 frames x (1 + 3) steps
    python benchmarks/training_step.py --models facet-s mace --frames 16 --reps 5
    python benchmarks/training_step.py --smoke                  # the plumbing: 1 batch, 1 timed step, no record
    python3 benchmarks/training_step.py --device cuda --models facet-s facet-7net0 --here   # benchmarks/gpu.sh

One training step, the same work for every model (``training_step_worker.py`` says exactly what each code runs):
forward (energy), forces and stress by autograd with ``create_graph`` (model in training mode), an MSE loss on
energy per atom + forces + stress (weights 1, 1, 1), backward to the parameters, one Adam step; float32,
``--threads`` torch threads, ``--device`` (default the CPU; on cuda each timed step ends with a synchronize).
Each code's own training-step code and data pipeline:

* ``facet-s``: ``facet-s-universal``'s architecture (trained from its weights: the cost of a step does not
  depend on their values); ``facet-7net0``: the shipped default ``facet-7net0-spline`` (SevenNet-0's spline
  trim). The step is ``facet train``'s (``Trainer.train_step``: ``loss_backward``, ``batch.to(device, dtype)``).
* ``sevennet``: SevenNet-0 (``7net-0``, the checkpoint inside the ``sevenn`` wheel), sevenn's ``Trainer``.
* ``mace``: MACE-MP-0 medium's architecture with random weights (no download: ``ScaleShiftMACE`` built with its
  hyperparameters, ``training_step_worker.MACE_MP0_MEDIUM``), MACE's ``take_step``.

Batches: ``--batches`` x ``--frames`` distinct frames of ``SHARED_DATA/mptrj/mptrj-random-1k.extxyz``
(read-only), drawn once with numpy's ``default_rng(--seed)``; every model gets the same frames in the same
batches. Each batch: ``--warmup`` untimed steps, then ``--reps`` timed ones. Reported: the median over all timed
steps (seconds per step), atoms per batch (mean, min-max; the same for all models), edges per batch (each
model's own cutoff). Not timed: reading frames, building graphs (neighbour lists), collating each step's batch.

Every model runs in a fresh process (``harness.run_worker``) in its own venv: facetpot in this interpreter's,
SevenNet and MACE in the peer venvs of ``training_race.py`` (``~/.cache/facetpot-bench/venvs``, made there once
if missing); ``--here``: every model in this interpreter (the GPU machine, which has no venvs: a peer runs
only if it imports there). Models run one after another. The table is printed, and appended to benchmarks/RESULTS.md
(``harness.append_results``) unless ``--smoke`` or ``--no-record``.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import List

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import HERE, SHARED_DATA, append_results, run_worker  # noqa: E402
from training_race import MACE_VERSION, SEVENN_VERSION, TORCH, install_peer, peer_python  # noqa: E402

WORKER = str(HERE / "training_step_worker.py")
DATA = SHARED_DATA / "mptrj" / "mptrj-random-1k.extxyz"
#: key -> (label, worker kind, worker name, venv: "facet" or a training_race peer)
MODELS = {
    "facet-s": ("Facet-S (`facet-s-universal`)", "facet", "facet-s-universal", "facet"),
    "facet-7net0": ("`facet-7net0-spline` (SevenNet-0 trim)", "facet", "facet-7net0-spline", "facet"),
    "sevennet": ("SevenNet-0 (`7net-0`)", "sevennet", "7net-0", "sevennet"),
    "mace": ("MACE-MP-0 medium architecture, random weights", "mace", "mace-mp-0-medium", "mace"),
}
FACET_KEYS = ("facet-s", "facet-7net0")


def frame_sizes(path: Path) -> List[int]:
    """Atoms of every frame of an extended XYZ file, from its count lines (no parsing of the frames)."""
    sizes = []
    with open(path) as f:
        line = f.readline()
        while line.strip():
            n = int(line)
            sizes.append(n)
            for _ in range(n + 1):
                f.readline()
            line = f.readline()
    return sizes


def choose_batches(n_frames: int, batches: int, frames: int, seed: int) -> List[List[int]]:
    """``batches`` lists of ``frames`` distinct frame indices, a fixed seeded draw without replacement."""
    idx = np.random.default_rng(seed).choice(n_frames, batches * frames, replace=False)
    return [sorted(int(i) for i in idx[b * frames : (b + 1) * frames]) for b in range(batches)]


def python_for(venv: str, here: bool = False):
    """The interpreter of a model's venv (facet, or ``here``: this one); None and why, when a peer cannot be
    installed."""
    if venv == "facet" or here:
        return sys.executable, None
    why = install_peer(venv)  # a no-op once training_race.py (or this script) has made the venv
    return (None, why) if why else (str(peer_python(venv)), None)


def run_model(key: str, batches: List[List[int]], args) -> dict:
    """One model's worker in a fresh process: its RESULT, or {"error": ...}."""
    label, kind, name, venv = MODELS[key]
    python, why = python_for(venv, args.here)
    if python is None:
        return {"key": key, "error": why}
    flat = ",".join(str(i) for b in batches for i in b)
    cmd = [
        kind,
        name,
        "--data",
        str(args.data),
        "--indices",
        flat,
        "--frames",
        str(args.frames),
        "--reps",
        str(args.reps),
        "--warmup",
        str(args.warmup),
        "--device",
        args.device,
    ]
    t = time.time()
    try:
        res = run_worker(python, WORKER, cmd, threads=args.threads, timeout=args.timeout)[0]
    except (RuntimeError, subprocess.TimeoutExpired) as err:  # reported in the table; the other models go on
        return {"key": key, "error": str(err)[-600:]}
    steps = [s for per_batch in res["seconds"] for s in per_batch]
    res.update(
        key=key,
        wall=round(time.time() - t, 1),
        median=statistics.median(steps),
        steps=len(steps),
        batch_medians=[statistics.median(s) for s in res["seconds"]],
    )
    print(
        f"# {key}: {res['median']:.3f} s/step (batch medians "
        f"{', '.join(f'{m:.3f}' for m in res['batch_medians'])}), {res['wall']:.0f} s in all",
        file=sys.stderr,
        flush=True,
    )
    return res


def spread(values: List[int]) -> str:
    return f"{np.mean(values):,.0f} ({min(values):,}-{max(values):,})"


def table(results: List[dict], atoms: List[int]) -> str:
    """Markdown: model, parameters, median s/step, atoms and edges per batch, facetpot's speed-up vs each."""
    base = {k: r["median"] for r in results for k in [r["key"]] if k in FACET_KEYS and "error" not in r}
    cols = [k for k in FACET_KEYS if k in base]
    lines = [
        "| model | trainable parameters | median s/step | atoms per batch | edges per batch | "
        + " | ".join(f"{MODELS[k][0]} faster by" for k in cols)
        + " |",
        "|---" * (5 + len(cols)) + "|",
    ]
    for r in results:
        label = MODELS[r["key"]][0]
        if "error" in r:
            lines.append(
                f"| {label} | failed: {r['error'][-300:].replace('|', '/').replace(chr(10), ' ')} |"
                + " |" * (3 + len(cols))
            )
            continue
        if r["atoms"] != atoms:
            label += " (**atoms differ from the chosen frames**)"
        speed = " | ".join(f"{r['median'] / base[k]:.2f}x" for k in cols)
        lines.append(
            f"| {label} | {r['params']:,} | {r['median']:.3f} | {spread(r['atoms'])} | {spread(r['edges'])} | {speed} |"
        )
    return "\n".join(lines)


def section(args, results: List[dict], atoms: List[int], seconds: float) -> str:
    """The RESULTS.md section: heading, machine, command, what is timed, the table."""
    from machine import machine  # benchmarks/machine.py (imports torch)

    walls = ", ".join(f"{r['key']} {r['wall']:.0f} s" for r in results if "wall" in r)
    head = (
        f"\n### Training step: facetpot vs SevenNet-0 vs MACE-MP-0 medium, same batches "
        f"({datetime.date.today().isoformat()})\n\n"
        f"Machine: {machine()}. Command: `{' '.join(['python benchmarks/training_step.py', *args.argv])}` "
        f"({time.strftime('%H:%M', time.gmtime())} UTC; {seconds / 60:.1f} min in all: {walls}). "
        f"{args.batches} batches of {args.frames} MPtrj frames (mptrj-random-1k, seeded draw, seed {args.seed}, "
        f"the same batches for every model), {args.warmup} untimed + {args.reps} timed steps per batch, "
        f"float32, {args.threads} torch threads, device {args.device}"
        f"{' (' + results[0].get('device_name', '') + ')' if args.device != 'cpu' and results else ''}, "
        f"models one after another, each in a fresh process "
        + (
            "in this interpreter (`--here`: no peer venvs)"
            if args.here
            else f"in its own venv ({SEVENN_VERSION}, {MACE_VERSION}, each with {TORCH})"
        )
        + ". One step: forward, forces and stress by "
        "autograd with create_graph, MSE loss on energy per atom + forces + stress (weights 1, 1, 1), backward, "
        "Adam step (no clipping, EMA or schedule), with each code's own step code (facet: `loss_backward` as in "
        "`Trainer.train_step`; SevenNet: `Trainer.run_one_epoch`; MACE: `take_step`); graph building and "
        "collation not timed. MACE: `ScaleShiftMACE` with MACE-MP-0 medium's hyperparameters (89 elements, "
        "r_max 6 Å, 8 Bessel, p=5, max_ell 3, 2 RealAgnosticResidualInteractionBlock, 128x0e+128x1o, MLP "
        "16x0e, correlation 3, silu, radial MLP [64, 64, 64], avg_num_neighbors 61.96, E0 0, scale 1, shift 0), "
        "random weights. Speed-up = the row's s/step / the facet model's s/step.\n"
    )
    return head + "\n" + table(results, atoms)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    p.add_argument("--frames", type=int, default=8, help="MPtrj frames per batch")
    p.add_argument("--batches", type=int, default=5, help="different batches")
    p.add_argument("--reps", type=int, default=3, help="timed steps per batch")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps per batch before the timed ones")
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.add_argument("--seed", type=int, default=0, help="seed of the draw of frames")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--here", action="store_true", help="every model in this interpreter (no peer venvs)")
    p.add_argument("--data", type=Path, default=DATA, help="the MPtrj extxyz file (default: SHARED_DATA's)")
    p.add_argument("--timeout", type=float, default=3600, help="seconds per model before its worker is stopped")
    p.add_argument("--smoke", action="store_true", help="1 batch, 1 timed step, no record")
    p.add_argument("--no-record", action="store_true", help="do not append to benchmarks/RESULTS.md")
    args = p.parse_args(argv)
    args.data = args.data.resolve()  # the workers run from the repository root
    args.argv = sys.argv[1:] if argv is None else list(argv)
    if args.smoke:
        args.batches, args.reps = 1, 1
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    t = time.time()
    sizes = frame_sizes(args.data)
    batches = choose_batches(len(sizes), args.batches, args.frames, args.seed)
    atoms = [sum(sizes[i] for i in b) for b in batches]
    print(f"# {len(batches)} batches of {args.frames} frames: {atoms} atoms", file=sys.stderr, flush=True)
    results = [run_model(key, batches, args) for key in args.models]
    text = section(args, results, atoms, time.time() - t)
    print(text)
    if not (args.smoke or args.no_record):
        append_results(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
