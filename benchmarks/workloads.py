"""What users run, facetpot's shipped default model against SevenNet-0, in one run (issue 19).

    python benchmarks/workloads.py [--peer-python PY] [--threads 2] [--only small stressed relax md] [--write]

Every (engine, workload) runs in a fresh process (``harness.run_worker`` on ``workloads_worker.py``), float32,
``--threads`` threads, OpenMP's default wait policy; SevenNet-0 through its own ASE calculator in
``--peer-python`` (default: this interpreter, which has sevenn through facetpot's [test] extra). Rows:

1. single points one by one through the ASE calculator, 150 small MPtrj crystals (:func:`small_crystals`);
2. single points of the 150 MPtrj frames of highest stress (:func:`stressed_frames`): one by one, and
   facetpot batched (``facetpot.predict``) against SevenNet-0 one by one;
3. relaxation of ``--relax-n`` (60) strained (3%) + rattled (0.05 Å) MPtrj crystals, cell free, FIRE to fmax 0.05
   (facetpot batched, ``facet relax``'s engine; SevenNet-0 one by one with ASE);
4. MD: Si 512, one velocity-Verlet step through ASE.

Prints the table (time, and SevenNet-0 / facetpot) and with --write appends it to RESULTS.md.
Structures come from ../shared/data/mptrj/mptrj-random-1k.extxyz (read-only).
"""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path
from typing import List

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import HERE, SHARED_DATA, append_results, run_worker  # noqa: E402

MPTRJ = SHARED_DATA / "mptrj" / "mptrj-random-1k.extxyz"
WORKER = str(HERE / "workloads_worker.py")


def _frames():
    from ase.io import read

    frames = read(MPTRJ, ":")
    for a in frames:
        a.calc = None  # the DFT labels are not needed; a stale calculator would answer instead of the model
    return frames


def small_crystals(n: int = 150, max_atoms: int = 20) -> List:
    """``n`` MPtrj frames of at most ``max_atoms`` atoms, evenly spread over the file's order (the size mix of
    the Materials Project / Alexandria crystals users screen: 1-20 atoms, median about 8)."""
    small = [a for a in _frames() if len(a) <= max_atoms]
    pick = np.linspace(0, len(small) - 1, min(n, len(small))).round().astype(int)
    return [small[k] for k in pick]


def stressed_frames(n: int = 150) -> List:
    """The ``n`` MPtrj frames with the largest DFT stress component (far from equilibrium)."""
    from ase.io import read

    frames = read(MPTRJ, ":")
    scale = [float(np.abs(a.get_stress()).max()) if a.calc is not None else 0.0 for a in frames]
    order = np.argsort(scale)[::-1][:n]
    out = []
    for k in sorted(order):
        a = frames[k]
        a.calc = None
        out.append(a)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--peer-python", default=sys.executable, help="python with sevenn (default: this one)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--model", default="facet-7net0-spline")
    ap.add_argument("--only", nargs="+", default=["small", "stressed", "relax", "md"])
    ap.add_argument("--no-sevennet", action="store_true")
    ap.add_argument("--relax-n", type=int, default=60, help="structures relaxed (SevenNet-0 takes ~30 s each)")
    ap.add_argument("--write", action="store_true", help="append the table to benchmarks/RESULTS.md")
    args = ap.parse_args()
    py = sys.executable

    def facet(workload, *extra):
        out = run_worker(py, WORKER, ["facet", workload, "--model", args.model, *extra], threads=args.threads)[0]
        print(f"  facetpot {workload}: {out}", flush=True)
        return out

    def peer(workload, *extra):
        if args.no_sevennet:
            return None
        out = run_worker(args.peer_python, WORKER, ["sevennet0", workload, *extra], threads=args.threads)[0]
        print(f"  SevenNet-0 {workload}: {out}", flush=True)
        return out

    rows = []  # (workload, facetpot figure, SevenNet-0 figure, ratio)

    def row(label, ours, theirs, unit):
        ratio = f"{theirs / ours:.1f}x" if theirs else "-"
        rows.append((label, f"{ours:.1f} {unit}", f"{theirs:.1f} {unit}" if theirs else "-", ratio))
        print(" | ".join(rows[-1]), flush=True)

    for kind in ("small", "stressed"):
        if kind not in args.only:
            continue
        f1 = facet(kind)
        fb = facet(kind + "-batched")
        s1 = peer(kind)
        what = (
            f"150 small MPtrj crystals (1-20 atoms, median {np.median([len(a) for a in small_crystals()]):.0f})"
            if kind == "small"
            else f"150 highest-stress MPtrj frames (median {np.median([len(a) for a in stressed_frames()]):.0f} atoms)"
        )
        row(
            f"single points one by one (ASE calculator), {what}: median per call",
            f1["median_ms"],
            s1 and s1["median_ms"],
            "ms",
        )
        row(f"the same, summed over all {f1['structures']}", 1e3 * f1["total_s"], s1 and 1e3 * s1["total_s"], "ms")
        row(
            "the same, facetpot batched (facetpot.predict) vs SevenNet-0 one by one",
            1e3 * fb["total_s"],
            s1 and 1e3 * s1["total_s"],
            "ms",
        )
    if "relax" in args.only:
        fr, sr = facet("relax", "--n", str(args.relax_n)), peer("relax", "--n", str(args.relax_n))
        row(
            f"relaxation of {fr['structures']} strained + rattled MPtrj crystals ({fr['atoms']} atoms), FIRE + cell, "
            f"fmax 0.05: facetpot batched ({fr['converged']} converged) vs SevenNet-0 one by one"
            + (f" ({sr['converged']} converged)" if sr else ""),
            fr["total_s"],
            sr and sr["total_s"],
            "s",
        )
    if "md" in args.only:
        fm, sm = facet("md"), peer("md")
        row("MD, Si 512, one velocity-Verlet step (ASE)", fm["median_ms"], sm and sm["median_ms"], "ms")
    from machine import machine  # benchmarks/machine.py

    lines = [
        f"\n### Workloads: {args.model} vs SevenNet-0, float32, {args.threads} threads "
        f"({datetime.date.today().isoformat()})\n",
        f"Machine: {machine()}. Command: `python benchmarks/workloads.py --only {' '.join(args.only)} --relax-n {args.relax_n}` "
        "(each row's runs in fresh processes, one after the other; OpenMP's default wait policy).\n",
        "| workload | facetpot | SevenNet-0 | SevenNet-0 / facetpot |",
        "|---|---|---|---|",
    ]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    text = "\n".join(lines)
    print(text)
    if args.write:
        append_results(text)


if __name__ == "__main__":
    main()
