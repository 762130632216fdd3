"""Speed of two checkouts of facetpot in one run: the before/after of a change that must not change speed.

    python benchmarks/checkouts.py --before ../before --after . --threads 2 --rounds 3 --write

Each (checkout, system) runs in a fresh process (``harness.run_worker`` with ``cwd`` = the checkout, so
``import facetpot`` is that checkout's), alternating between the checkouts round by round so machine drift
hits both alike: the shipped default model through ``FacetCalculator`` (float32, energy + forces + stress),
``--reps`` calls after 3 warm-up calls, median; the table gives each checkout's median over the rounds and
the ratio after / before. Systems: Si 2 (primitive), Si 64, Si 512 (diamond, rattled 0.05 Å), MgO 64.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

from harness import record_run, run_worker
from machine import machine
from systems import WORKER_IMPORT

SYSTEMS = ("Si 2", "Si 64", "Si 512", "MgO 64")

WORKER = (
    WORKER_IMPORT
    + r"""
import json, sys
from facetpot import FacetCalculator
from systems import median_ms, rocksalt_mgo, silicon, time_calls
name, reps = sys.argv[1], int(sys.argv[2])
atoms = {"Si 2": lambda: silicon(None), "Si 64": lambda: silicon(2), "Si 512": lambda: silicon(4),
         "MgO 64": lambda: rocksalt_mgo(2)}[name]()
atoms.rattle(0.05, seed=1)
atoms.calc = FacetCalculator()
def call():
    atoms.get_potential_energy(); atoms.get_forces(); atoms.get_stress()
def move():
    atoms.positions += 1e-4
print("RESULT " + json.dumps({"system": name, "ms": median_ms(time_calls(call, reps, warmup=3, before=move))}))
"""
)


def commit_of(path: Path) -> str:
    out = subprocess.run(["git", "-C", str(path), "log", "-1", "--format=%h"], capture_output=True, text=True)
    return out.stdout.strip() or "?"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", type=Path, required=True, help="checkout measured first in every round")
    ap.add_argument("--after", type=Path, default=Path("."))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--write", action="store_true", help="append the table to benchmarks/RESULTS.md")
    args = ap.parse_args()
    trees = {"before": args.before.resolve(), "after": args.after.resolve()}
    times = {(t, s): [] for t in trees for s in SYSTEMS}
    for r in range(args.rounds):
        for system in SYSTEMS:
            for label, tree in trees.items():
                res = run_worker(sys.executable, WORKER, [system, args.reps], threads=args.threads, cwd=tree)
                times[(label, system)].append(res[0]["ms"])
                print(f"round {r + 1} {system:7s} {label:6s} {res[0]['ms']:8.1f} ms", flush=True)
    lines = [
        f"\n### Speed of two checkouts, {commit_of(trees['before'])} (before) and {commit_of(trees['after'])} "
        f"(after) ({machine()})\n",
        f"`python benchmarks/checkouts.py {' '.join(sys.argv[1:])}`: default model, float32, energy + forces + "
        f"stress through FacetCalculator, {args.threads} threads, fresh process per (checkout, system), median "
        f"of {args.reps} calls, median over {args.rounds} alternating rounds.\n",
        "| system | before | after | after / before |",
        "|---|---|---|---|",
    ]
    rows = []
    for system in SYSTEMS:
        b, a = statistics.median(times[("before", system)]), statistics.median(times[("after", system)])
        lines.append(f"| {system} | {b:,.1f} ms | {a:,.1f} ms | {a / b:.3f} |")
        rows.append({"system": system, "before_ms": times[("before", system)], "after_ms": times[("after", system)]})
    print("\n".join(lines))
    if args.write:
        record_run("\n".join(lines), rows)


if __name__ == "__main__":
    main()
