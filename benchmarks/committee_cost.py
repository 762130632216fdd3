"""What a committee costs beside one model (issue 22: one graph and one backward pass for all members).

    python benchmarks/committee_cost.py [--threads 2] [--reps 5] [--members 3] [--model facet-7net0-spline] [--write]

The shipped default model through ``FacetCalculator`` (float32, energy + forces + stress), alone and as a
committee of ``--members`` copies of it (the cost does not depend on the weights), in one process, alternating:
150 small MPtrj crystals one by one (total time), Si 64 and Si 512 (rattled diamond). Median of ``--reps``
rounds after one warm-up. Prints both times and their ratio (the members run one after another: the ideal is
``--members``x, less where the graph and the Python overhead are shared).
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import append_results  # noqa: E402
from machine import machine  # noqa: E402
from systems import silicon  # noqa: E402
from workloads import small_crystals  # noqa: E402


def seconds(calc, structures) -> float:
    start = time.perf_counter()
    for atoms in structures:
        calc.calculate(atoms, ["energy", "forces", "stress"], ["positions"])
    return time.perf_counter() - start


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--members", type=int, default=3)
    p.add_argument("--model", default=None, help="default: the shipped default model")
    p.add_argument("--write", action="store_true", help="append the table to RESULTS.md")
    args = p.parse_args(argv)

    import torch

    from facetpot.inference.calculator import FacetCalculator
    from facetpot.pretrained import DEFAULT_MODEL

    torch.set_num_threads(args.threads)
    model = args.model or DEFAULT_MODEL
    si64, si512 = silicon(2, rattle=0.02), silicon(4, rattle=0.02)
    workloads = [("150 small MPtrj crystals, one by one", small_crystals()), ("Si 64", [si64]), ("Si 512", [si512])]
    single, committee = FacetCalculator(model), FacetCalculator([model] * args.members)
    rows = []
    for name, structures in workloads:
        times = {"one": [], "committee": []}
        for rep in range(args.reps + 1):
            for label, calc in (("one", single), ("committee", committee)):
                t = seconds(calc, structures)
                if rep:
                    times[label].append(t)
        t0, t1 = statistics.median(times["one"]), statistics.median(times["committee"])
        atoms = sum(len(a) for a in structures)
        rows.append(f"| {name} | {atoms} | {1e3 * t0:,.0f} ms | {1e3 * t1:,.0f} ms | {t1 / t0:.2f}x |")
        print(rows[-1], flush=True)
    header = [
        f"### Committee cost ({datetime.date.today()}, {machine()}; `python benchmarks/committee_cost.py --threads {args.threads} "
        f"--reps {args.reps} --members {args.members}`, {model}, float32, {args.threads} threads)",
        "",
        f"| workload | atoms | one model | committee of {args.members} | ratio |",
        "|---|---|---|---|---|",
    ]
    table = "\n".join(header + rows)
    print(table)
    if args.write:
        append_results(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
