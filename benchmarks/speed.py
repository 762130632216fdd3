"""Speed and memory of a force + stress call of Facet-S through the ASE calculator.

    python benchmarks/speed.py [--peer-python peer-venv/bin/python] [--max-atoms] [--threads 2]
    python benchmarks/speed.py --baseline /tmp/base   # this tree against another checkout, alternating

Every system runs in a fresh subprocess (so peak RSS belongs to that system alone), float32,
median of repeated calls after a warm-up. With --peer-python, SevenNet-0 and CHGNet are timed in
that interpreter in the same run (their own venv: see ../shared/notes/peers.md) and the ratios are
printed. --max-atoms grows a Si supercell until peak RSS passes 16 GB or 100k atoms is reached.
--baseline DIR times the same systems with the facetpot of another checkout (``git worktree add
DIR REV``), alternating the two trees over --rounds rounds so that drifts of a shared machine hit
both alike, and prints the medians and their ratio.
Results are appended to benchmarks/RESULTS.md with the machine they ran on.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
from pathlib import Path

from harness import append_results, run_worker  # benchmarks/harness.py
from machine import machine  # benchmarks/machine.py
from systems import WORKER_IMPORT  # benchmarks/systems.py

HERE = Path(__file__).resolve().parent

WORKER = (
    WORKER_IMPORT
    + r"""
import json, resource, sys
import torch
from systems import median_ms, rocksalt_mgo, silicon, time_calls
which, system, reps, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads)
kind, n = system.split(":")
atoms = {"si": silicon, "mgo": rocksalt_mgo}[kind](int(n), rattle=0.01)
if which == "facet":
    import facetpot
    torch.manual_seed(0)
    calc = facetpot.FacetCalculator(facetpot.build_model(), dtype="float32")
elif which == "sevennet0":
    from sevenn.calculator import SevenNetCalculator
    calc = SevenNetCalculator("7net-0", device="cpu")
elif which == "chgnet":
    from chgnet.model import CHGNetCalculator
    calc = CHGNetCalculator(use_device="cpu")
atoms.calc = calc
def call():
    atoms.get_forces(); atoms.get_stress()
def move():
    atoms.positions[0, 0] += 1e-4  # force a new calculation
times = time_calls(call, max(reps, 1), warmup=min(reps, 1), before=move)
print("RESULT", json.dumps({"atoms": len(atoms), "ms": median_ms(times),
      "rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6}))
"""
)


#: extra environment of every timed process (``--omp-passive`` adds OMP_WAIT_POLICY=PASSIVE, which the tables
#: up to 2026-12-01 used; without it OpenMP spins between parallel regions, as it does for users)
EXTRA_ENV = {}


def run(python, which, system, reps, threads, timeout=3600, tree=None):
    """One system in a fresh interpreter; ``tree``: the checkout whose facetpot it imports (default: this one)."""
    return run_worker(
        python,
        WORKER,
        [which, system, reps, threads],
        threads=threads,
        omp_wait_policy=EXTRA_ENV.get("OMP_WAIT_POLICY"),
        timeout=timeout,
        cwd=tree or HERE.parent,
    )[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--peer-python", help="python of a venv with sevenn and chgnet installed")
    ap.add_argument("--max-atoms", action="store_true", help="find the largest Si cell under 16 GB")
    ap.add_argument("--no-write", action="store_true", help="print only; do not append to RESULTS.md")
    ap.add_argument("--baseline", help="another checkout (e.g. git worktree add /tmp/base REV) to compare with")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds with --baseline")
    ap.add_argument("--omp-passive", action="store_true", help="OMP_WAIT_POLICY=PASSIVE in every timed process")
    args = ap.parse_args()
    if args.omp_passive:
        EXTRA_ENV["OMP_WAIT_POLICY"] = "PASSIVE"
    if args.baseline:
        return compare(sys.executable, Path(args.baseline), args)
    py = sys.executable
    rows = []
    systems = [("Si 64", "si:2", 5), ("Si 512", "si:4", 5), ("MgO 512", "mgo:4", 5), ("Si 4096", "si:8", 2)]
    for label, system, reps in systems:
        r = run(py, "facet", system, reps, args.threads)
        rows.append((label, r))
        print(
            f"facet  {label:8s} {r['ms']:9.1f} ms/call {1e3 * r['ms'] / r['atoms']:8.1f} us/atom "
            f"peak RSS {r['rss_gb']:.2f} GB",
            flush=True,
        )
    peers = []
    if args.peer_python:
        facet_ms = {label: r["ms"] for label, r in rows}
        # SevenNet-0 on both 512-atom cells (issue 11's CPU aim), CHGNet on Si 512
        for which, label, system in (
            ("sevennet0", "Si 512", "si:4"),
            ("sevennet0", "MgO 512", "mgo:4"),
            ("chgnet", "Si 512", "si:4"),
        ):
            try:
                r = run(args.peer_python, which, system, 3, args.threads)
            except Exception as exc:  # a peer that fails to run is reported, not fatal
                print(f"{which} {label}: {exc}")
                continue
            peers.append((which, label, r, r["ms"] / facet_ms[label]))
            print(
                f"{which:9s} {label:8s} {r['ms']:9.1f} ms/call  -> facet is {r['ms'] / facet_ms[label]:.1f}x faster",
                flush=True,
            )
    largest = None
    if args.max_atoms:
        for n in (12, 16, 20, 24, 26, 28, 30):
            r = run(py, "facet", f"si:{n}", 0, args.threads)
            print(f"facet  Si {r['atoms']:7d} {r['ms'] / 1e3:8.1f} s/call  peak RSS {r['rss_gb']:.2f} GB", flush=True)
            if r["rss_gb"] > 16:
                break
            largest = r
            if r["atoms"] >= 100_000:
                break
    if args.no_write:
        return
    lines = [
        f"\n### Facet-S force+stress call, float32, {args.threads} threads ({datetime.date.today().isoformat()})\n",
        f"Machine: {machine()}. Command: `python benchmarks/speed.py"
        f"{' --peer-python ' + args.peer_python if args.peer_python else ''}"
        f"{' --max-atoms' if args.max_atoms else ''}{' --omp-passive' if args.omp_passive else ''}`"
        f"{'' if args.omp_passive else ' (OpenMP wait policy: its default)'}\n",
        "| system | atoms | ms/call | µs/atom | peak RSS (GB) |",
        "|---|---|---|---|---|",
    ]
    for label, r in rows:
        lines.append(
            f"| {label} | {r['atoms']} | {r['ms']:.1f} | {1e3 * r['ms'] / r['atoms']:.1f} | {r['rss_gb']:.2f} |"
        )
    if peers:
        lines += ["", "| peer, same run | system | ms/call | Facet-S speed-up |", "|---|---|---|---|"]
        for which, label, r, ratio in peers:
            lines.append(f"| {which} | {label} | {r['ms']:.1f} | {ratio:.1f}x |")
    if largest:
        lines += [
            "",
            f"Largest Si cell measured under 16 GB peak RSS: {largest['atoms']} atoms "
            f"({largest['rss_gb']:.1f} GB, {largest['ms'] / 1e3:.1f} s per force+stress call).",
        ]
    append_results("\n".join(lines))
    print(f"appended to {HERE / 'RESULTS.md'}")


def compare(py, baseline: Path, args) -> None:
    """Median ms/call of this tree and ``baseline``, alternating the order every round."""
    trees = [("this tree", HERE.parent), ("baseline", baseline)]
    systems = [("Si 512", "si:4", 7), ("MgO 512", "mgo:4", 7), ("Si 4096", "si:8", 3)]
    times = {(name, label): [] for name, _ in trees for label, _, _ in systems}
    for rnd in range(args.rounds):
        for name, tree in trees if rnd % 2 == 0 else trees[::-1]:
            for label, system, reps in systems:
                ms = run(py, "facet", system, reps, args.threads, tree=tree)["ms"]
                times[(name, label)].append(ms)
                print(f"round {rnd} {name:9s} {label:8s} {ms:9.1f} ms/call", flush=True)
    lines = [
        f"\n### Facet-S force+stress call against a baseline checkout, float32, {args.threads} threads "
        f"({datetime.date.today().isoformat()})\n",
        f"Machine: {machine()}. Command: `python benchmarks/speed.py --baseline {baseline} --rounds {args.rounds}` "
        f"(median of {args.rounds} alternating rounds, each a fresh process)\n",
        "| system | baseline ms/call | this tree ms/call | this / baseline |",
        "|---|---|---|---|",
    ]
    for label, _, _ in systems:
        b, a = statistics.median(times[("baseline", label)]), statistics.median(times[("this tree", label)])
        print(f"{label}: baseline {b:.1f} ms, this tree {a:.1f} ms, ratio {a / b:.3f}")
        lines.append(f"| {label} | {b:.1f} | {a:.1f} | {a / b:.3f} |")
    if not args.no_write:
        append_results("\n".join(lines))
        print(f"appended to {HERE / 'RESULTS.md'}")


if __name__ == "__main__":
    main()
