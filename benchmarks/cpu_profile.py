"""Where a CPU energy + forces + stress call spends its time, per op, and the FLOP/s it achieves.

    python benchmarks/cpu_profile.py [--model facet-7net0-spline|facet-s] [--atoms 64 512] [--threads 2]

For each Si cell: torch.profiler over --reps calls (after warm-up) with shapes and FLOP estimates
(torch counts matrix products: mm, bmm, addmm, matmul); prints the ops by self time, the share of the
GEMMs, their FLOP/s, and the whole call's FLOP/s, against the machine's nominal peak:

    peak = cores used x clock (cpu MHz of /proc/cpuinfo) x FLOP per cycle per core (float32)

with 64 FLOP/cycle for AVX-512 (two 512-bit FMA units) and 32 for AVX2 (two 256-bit FMA units); the
clock is the one /proc/cpuinfo reports (turbo and the FMA-unit count are assumptions, stated in the output).
"""

from __future__ import annotations

import argparse
from collections import defaultdict

import torch

import facetpot
from facetpot.structure.graph import atoms_to_graph
from facetpot.inference.prepare import inference_model
from facetpot.derivatives import compute_properties
from systems import silicon_atoms, time_calls  # benchmarks/systems.py


def nominal_peak(threads: int):
    flags, mhz = "", 0.0
    for line in open("/proc/cpuinfo"):
        if line.startswith("flags") and not flags:
            flags = line
        if line.startswith("cpu MHz") and not mhz:
            mhz = float(line.split(":")[1])
    per_cycle = 64 if " avx512f" in flags else 32 if " avx2" in flags else 16
    return threads * mhz * 1e6 * per_cycle, f"{threads} cores x {mhz:.0f} MHz x {per_cycle} FLOP/cycle (float32)"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="facet-7net0-spline", help="pretrained name, model file, or facet-s (random)")
    ap.add_argument("--atoms", type=int, nargs="+", default=[64, 512])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--top", type=int, default=12)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.model == "facet-s":
        torch.manual_seed(0)
        model = inference_model(facetpot.build_model(), dtype="float32")
    else:
        model = inference_model(args.model, dtype="float32")
    peak, how = nominal_peak(args.threads)
    print(
        f"model {args.model}, {model.backend} backend, {args.threads} threads; nominal peak {peak / 1e9:.0f} GFLOP/s ({how})"
    )
    for n in args.atoms:
        atoms = silicon_atoms(n, rattle=0.01)
        g = atoms_to_graph(atoms, model.cutoff, dtype=torch.float32)
        wall = sum(time_calls(lambda: compute_properties(model, g), args.reps, warmup=2)) / args.reps
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], with_flops=True) as prof:
            for _ in range(args.reps):
                compute_properties(model, g)
        self_us, flops, calls = defaultdict(float), defaultdict(float), defaultdict(int)
        for ev in prof.key_averages():
            self_us[ev.key] += ev.self_cpu_time_total
            flops[ev.key] += ev.flops or 0
            calls[ev.key] += ev.count
        total_us = sum(self_us.values())
        gemm = [k for k in self_us if k in ("aten::mm", "aten::bmm", "aten::addmm", "aten::baddbmm")]
        gemm_us = sum(self_us[k] for k in gemm)
        gemm_flops = sum(flops[k] for k in gemm)
        print(
            f"\nSi {len(atoms)}: {1e3 * wall:.1f} ms per call (unprofiled); GEMMs {100 * gemm_us / total_us:.0f}% of "
            f"op time at {gemm_flops / (gemm_us * 1e-6) / 1e9:.1f} GFLOP/s ({100 * gemm_flops / (gemm_us * 1e-6) / peak:.0f}% "
            f"of peak); whole call {gemm_flops / args.reps / wall / 1e9:.1f} GFLOP/s of GEMM work per wall second "
            f"({100 * gemm_flops / args.reps / wall / peak:.0f}% of peak); {gemm_flops / args.reps / 1e9:.2f} GFLOP of "
            f"GEMMs and {sum(calls.values()) // args.reps} profiled op calls (views included) per call"
        )
        print("| op | self ms per call | share | calls per call | GFLOP/s |\n|---|---|---|---|---|")
        for key in sorted(self_us, key=self_us.get, reverse=True)[: args.top]:
            rate = f"{flops[key] / (self_us[key] * 1e-6) / 1e9:.1f}" if flops[key] else ""
            print(
                f"| {key} | {self_us[key] / 1e3 / args.reps:.2f} | {100 * self_us[key] / total_us:.1f}% | "
                f"{calls[key] // args.reps} | {rate} |"
            )


if __name__ == "__main__":
    main()
