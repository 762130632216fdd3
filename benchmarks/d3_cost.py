"""What DFT-D3 adds to a model call (issue 22: at most 20% on MPtrj-size cells and Si 512).

    python benchmarks/d3_cost.py [--threads 2] [--reps 5] [--model facet-7net0-spline] [--write]

The shipped default model through ``FacetCalculator`` (float32, energy + forces + stress), without and with
``dispersion="d3"`` (PBE, BJ, s-dftd3's cutoffs: pairs to 31.75 Å, coordination numbers to 21.17 Å), in one
process, alternating: (1) 150 small MPtrj crystals (at most 20 atoms; ``workloads.small_crystals``) one by one,
total time (a new pair list for every structure); (2) Si 512 (diamond 4x4x4 conventional cells, rattled) and
(3) MgO 512 as MD steps: 10 calls, every atom displaced by 0.01 Å (normal, per component) before each, so D3's
Verlet pair list (skin 1 Å) is kept between calls as in MD and relaxations at fixed cell; (4) Si 512 with a new
pair list every call (``D3Dispersion(skin=0)``: what a relaxation of the cell pays, or a single point).
Median of ``--reps`` rounds after one warm-up. Prints the model's time, the time with D3, and D3's share.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import append_results  # noqa: E402
from machine import machine  # noqa: E402
from systems import rocksalt_mgo, silicon  # noqa: E402
from workloads import small_crystals  # noqa: E402


def seconds(calc, structures, steps: int = 1, step: float = 0.0) -> float:
    """Time of ``steps`` calls per structure, atoms displaced by ``step`` Å (normal, per component, the same
    sequence for every calculator) before each."""
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for atoms in structures:
        atoms = atoms.copy()
        for _ in range(steps):
            if step:
                atoms.positions += rng.normal(scale=step, size=atoms.positions.shape)
            calc.calculate(atoms, ["energy", "forces", "stress"], ["positions"])
    return time.perf_counter() - start


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--model", default=None, help="default: the shipped default model")
    p.add_argument("--write", action="store_true", help="append the table to RESULTS.md")
    args = p.parse_args(argv)

    import torch

    from facetpot.inference.calculator import FacetCalculator
    from facetpot.dispersion import D3Dispersion
    from facetpot.pretrained import DEFAULT_MODEL

    torch.set_num_threads(args.threads)
    model = args.model or DEFAULT_MODEL
    si, mgo = silicon(4, rattle=0.02), rocksalt_mgo(4, rattle=0.02, seed=2)
    plain, with_d3 = FacetCalculator(model), FacetCalculator(model, dispersion="d3")
    fresh_d3 = FacetCalculator(model, dispersion=D3Dispersion(skin=0.0))
    workloads = [
        ("150 small MPtrj crystals, one by one", small_crystals(), 1, 0.0, with_d3),
        ("Si 512, 10 MD-like steps (list kept)", [si], 10, 0.01, with_d3),
        ("MgO 512, 10 MD-like steps (list kept)", [mgo], 10, 0.01, with_d3),
        ("Si 512, new pair list every call", [si], 1, 0.0, fresh_d3),
    ]
    rows = []
    for name, structures, steps, step, d3_calc in workloads:
        times = {"model": [], "model + D3": []}
        for rep in range(args.reps + 1):
            for label, calc in (("model", plain), ("model + D3", d3_calc)):
                t = seconds(calc, structures, steps, step)
                if rep:
                    times[label].append(t)
        t0, t1 = statistics.median(times["model"]), statistics.median(times["model + D3"])
        atoms = sum(len(a) for a in structures)
        rows.append(f"| {name} | {atoms} | {1e3 * t0:,.0f} ms | {1e3 * t1:,.0f} ms | {100 * (t1 - t0) / t0:.0f}% |")
        print(rows[-1], flush=True)
    header = [
        f"### D3 cost ({datetime.date.today()}, {machine()}; `python benchmarks/d3_cost.py --threads {args.threads} "
        f"--reps {args.reps}`, {model}, float32, {args.threads} threads)",
        "",
        "| workload | atoms | model | model + D3(BJ) | D3 / model |",
        "|---|---|---|---|---|",
    ]
    table = "\n".join(header + rows)
    print(table)
    if args.write:
        append_results(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
