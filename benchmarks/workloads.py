"""What users run, facetpot's shipped default model against SevenNet-0 and MACE-MP-0 medium, in one run.

    python benchmarks/workloads.py [--peer-python PY] [--peers sevennet0 mace] [--threads 2]
                                   [--only small stressed relax md] [--write]

Every (engine, workload) runs in a fresh process (``harness.run_worker`` on ``workloads_worker.py``), float32,
``--threads`` threads, OpenMP's default wait policy; SevenNet-0 through its own ASE calculator in
``--peer-python`` (default: this interpreter, which has sevenn through facetpot's [test] extra); MACE-MP-0
medium's architecture (random weights: speed does not depend on the values) through ``MACECalculator`` in its
own venv (``training_race.install_peer``: mace-torch pins an old e3nn). Rows:

1. single points one by one through the ASE calculator, 150 small MPtrj crystals (:func:`small_crystals`);
2. single points of the 150 MPtrj frames of highest stress (:func:`stressed_frames`): one by one, and
   facetpot batched (``facetpot.predict``) against the peers one by one;
3. relaxation of ``--relax-n`` (60) strained (3%) + rattled (0.05 Å) MPtrj crystals, cell free, FIRE to fmax 0.05
   (facetpot batched, ``facet relax``'s engine; SevenNet-0 one by one with ASE; no MACE row: random forces);
4. MD: Si 512, one velocity-Verlet step through ASE.

Prints the table (time, and each peer / facetpot) and with --write records it (``harness.record_run``).
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
from harness import HERE, SHARED_DATA, record_run, run_worker  # noqa: E402

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


#: peer engine -> its column's name (workloads_worker.calculator builds its ASE calculator)
PEERS = {"sevennet0": "SevenNet-0", "mace": "MACE-MP-0 medium"}


def peer_pythons(args) -> dict:
    """The interpreter of every peer asked for: SevenNet-0 in ``--peer-python``, MACE (which pins an old e3nn) in
    its own venv, made once by ``training_race.install_peer`` (mace-torch 0.3.16, torch 2.13.0)."""
    out = {}
    for peer in args.peers:
        if peer == "mace":
            import training_race  # benchmarks/training_race.py: the peers' venvs

            why = training_race.install_peer("mace")
            if why:
                sys.exit(f"MACE's venv could not be made: {why}")
            out[peer] = str(training_race.peer_python("mace"))
        else:
            out[peer] = args.peer_python
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--peer-python", default=sys.executable, help="python with sevenn (default: this one)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--model", default="facet-7net0-spline")
    ap.add_argument("--only", nargs="+", default=["small", "stressed", "relax", "md"])
    ap.add_argument(
        "--peers", nargs="*", default=list(PEERS), choices=list(PEERS), help="peer columns (none: facetpot only)"
    )
    ap.add_argument("--relax-n", type=int, default=60, help="structures relaxed (SevenNet-0 takes ~30 s each)")
    ap.add_argument("--write", action="store_true", help="record the table (benchmarks/records, RESULTS.md)")
    args = ap.parse_args()
    py = sys.executable
    pythons = peer_pythons(args)

    def facet(workload, *extra):
        out = run_worker(py, WORKER, ["facet", workload, "--model", args.model, *extra], threads=args.threads)[0]
        print(f"  facetpot {workload}: {out}", flush=True)
        return out

    def peers(workload, *extra):
        got = {}
        for peer, python in pythons.items():
            if workload == "relax" and peer != "sevennet0":
                continue  # the one-by-one relaxation driver is SevenNet's (relax.sevennet_run)
            got[peer] = run_worker(python, WORKER, [peer, workload, *extra], threads=args.threads)[0]
            print(f"  {PEERS[peer]} {workload}: {got[peer]}", flush=True)
        return got

    rows = []  # (workload, facetpot figure, then each peer's figure and ratio)

    def row(label, ours, theirs, unit, key):
        cells = [label, f"{ours:.1f} {unit}"]
        for peer in pythons:
            value = key(theirs[peer]) if peer in theirs else None
            cells += [f"{value:.1f} {unit}", f"{value / ours:.1f}x"] if value else ["-", "-"]
        rows.append(cells)
        print(" | ".join(cells), flush=True)

    for kind in ("small", "stressed"):
        if kind not in args.only:
            continue
        f1, fb, p1 = facet(kind), facet(kind + "-batched"), peers(kind)
        what = (
            f"150 small MPtrj crystals (1-20 atoms, median {np.median([len(a) for a in small_crystals()]):.0f})"
            if kind == "small"
            else f"150 highest-stress MPtrj frames (median {np.median([len(a) for a in stressed_frames()]):.0f} atoms)"
        )
        per_call = f"single points one by one (ASE calculator), {what}: median per call"
        row(per_call, f1["median_ms"], p1, "ms", lambda r: r["median_ms"])
        row(
            f"the same, summed over all {f1['structures']}", 1e3 * f1["total_s"], p1, "ms", lambda r: 1e3 * r["total_s"]
        )
        row(
            "the same, facetpot batched (facetpot.predict) vs the peers one by one",
            1e3 * fb["total_s"],
            p1,
            "ms",
            lambda r: 1e3 * r["total_s"],
        )
    if "relax" in args.only:
        fr, pr = facet("relax", "--n", str(args.relax_n)), peers("relax", "--n", str(args.relax_n))
        done = ", ".join(f"{PEERS[k]} {r['converged']}" for k, r in pr.items())
        row(
            f"relaxation of {fr['structures']} strained + rattled MPtrj crystals ({fr['atoms']} atoms), FIRE + cell, "
            f"fmax 0.05: facetpot batched vs the peers one by one (converged: facetpot {fr['converged']}"
            + (f", {done})" if done else ")"),
            fr["total_s"],
            pr,
            "s",
            lambda r: r["total_s"],
        )
    if "md" in args.only:
        row(
            "MD, Si 512, one velocity-Verlet step (ASE)",
            facet("md")["median_ms"],
            peers("md"),
            "ms",
            lambda r: r["median_ms"],
        )
    from machine import machine  # benchmarks/machine.py

    names = [PEERS[p] for p in pythons]
    command = " ".join(["python benchmarks/workloads.py", *sys.argv[1:]])
    mace_note = (
        " MACE-MP-0 medium: its architecture with random weights (speed does not depend on the values) through "
        "`MACECalculator`, mace-torch 0.3.16 in its own venv; no relaxation row (random forces do not relax)."
        if "mace" in pythons
        else ""
    )
    header = ["workload", "facetpot"] + [c for n in names for c in (n, f"{n} / facetpot")]
    lines = [
        f"\n### Workloads: {args.model} vs {', '.join(names) or 'no peer'}, float32, {args.threads} threads "
        f"({datetime.date.today().isoformat()})\n",
        f"Machine: {machine()}. Command: `{command}` (each row's runs in fresh processes, one after the other; "
        f"OpenMP's default wait policy).{mace_note}\n",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    text = "\n".join(lines)
    print(text)
    if args.write:
        record_run(text, [dict(zip(header, cells)) for cells in rows])


if __name__ == "__main__":
    main()
