"""The shipped default model on a GPU, on what users run (issue 19, item 7); one process, CUDA, float32.

    python benchmarks/gpu_workloads.py [--model facet-7net0-spline]

Rows (structures from ../shared/data/mptrj, or $FACETPOT_SHARED_DATA on the device machine, which gets a
carried copy):

1. single points one by one through ``FacetCalculator(device="cuda")``: 150 small MPtrj crystals and the 150
   MPtrj frames of highest stress (``workloads.small_crystals`` / ``stressed_frames``), median per call;
2. the same structures batched (``facetpot.predict``), total time;
3. MD: one velocity-Verlet step through ASE, Si 4096 and Si 32,768 (neighbour list on the CPU included);
4. batched relaxation of 60 strained + rattled MPtrj crystals (``relax.structures``), FIRE + cell, fmax 0.05.

Prints each row as it goes and writes $OUT/gpu_workloads.json (or ./gpu_workloads.json).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import workloads  # noqa: E402
from workloads_worker import one_by_one  # noqa: E402
import relax as relax_bench  # noqa: E402
from systems import median_ms, silicon, time_calls  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="facet-7net0-spline")
    ap.add_argument("--device", default="cuda", help="cpu: a smoke test of the script (with small --n)")
    ap.add_argument("--n", type=int, default=150, help="structures per single-point set (relaxation: 60 of 150)")
    ap.add_argument("--md-cells", type=int, nargs="+", default=[8, 16], help="Si supercells k x k x k (8 atoms each)")
    args = ap.parse_args()
    dev = args.device
    cuda = dev == "cuda"
    import facetpot
    from ase import units
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
    from ase.md.verlet import VelocityVerlet

    out_dir = Path(os.environ.get("OUT", "."))
    report = {
        "device": torch.cuda.get_device_name(0) if cuda else dev,
        "torch": torch.__version__,
        "model": args.model,
        "rows": [],
    }

    def say(**row):
        report["rows"].append(row)
        print(json.dumps(row), flush=True)
        (out_dir / "gpu_workloads.json").write_text(json.dumps(report, indent=1))

    calc = facetpot.FacetCalculator(args.model, device=dev, dtype="float32")
    say(what="backend", backend=calc.model.backend)
    for kind, structures in (
        ("small", workloads.small_crystals(args.n)),
        ("stressed", workloads.stressed_frames(args.n)),
    ):
        times = one_by_one(calc, structures)
        say(
            what=f"{kind} one by one",
            structures=len(structures),
            median_ms=1e3 * statistics.median(times),
            total_s=sum(times),
        )
        facetpot.predict(structures[:20], model=calc.model, device=dev)
        t = time.perf_counter()
        rows = facetpot.predict(structures, model=calc.model, device=dev)
        say(
            what=f"{kind} batched",
            structures=len(structures),
            total_s=time.perf_counter() - t,
            errors=sum(bool(r["error"]) for r in rows),
        )
    for k in args.md_cells:
        atoms = silicon(k, rattle=0.01)
        MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=np.random.default_rng(0))
        atoms.calc = calc
        dyn = VelocityVerlet(atoms, 1.0 * units.fs)
        try:
            times = time_calls(lambda: dyn.run(1), 5, warmup=2)
            say(
                what="md step",
                atoms=len(atoms),
                median_ms=median_ms(times),
                peak_gb=torch.cuda.max_memory_allocated() / 1e9 if cuda else None,
            )
        except torch.cuda.OutOfMemoryError:
            say(what="md step", atoms=len(atoms), oom=True)
    items = relax_bench.structures(max(1, 60 * args.n // 150))
    seconds, results = relax_bench.facet_run(calc.model, items, 2000, 0.05, 500)
    say(
        what="batched relax",
        structures=len(items),
        atoms=sum(len(a) for _, a in items),
        total_s=seconds,
        converged=sum(r.converged for r in results),
        steps=sum(r.steps for r in results),
    )


if __name__ == "__main__":
    main()
