"""One workload of ``benchmarks/workloads.py`` in a fresh process (``harness.run_worker``); prints RESULT lines.

    python benchmarks/workloads_worker.py ENGINE WORKLOAD [--model NAME] [--dtype float32] [--n N]

ENGINE: ``facet`` (facetpot, the shipped default model unless --model) or ``sevennet0`` (SevenNet-0 through
its own ASE calculator, float32 as shipped). WORKLOAD:

* ``small``: single points one by one through the ASE calculator (energy, forces, stress) of the small
  MPtrj crystals (``workloads.small_crystals``); per-call median and the sum over all;
* ``stressed``: the same for the MPtrj frames of highest stress (``workloads.stressed_frames``);
* ``small-batched`` / ``stressed-batched`` (facet): the same structures through ``facetpot.predict``;
* ``relax``: strained + rattled MPtrj crystals (``relax.structures``) relaxed, cell free, FIRE to fmax 0.05
  (facet: batched, ``facet relax``'s engine; sevennet0: one by one with ASE);
* ``md``: Si 512 (rattled), velocity Verlet 1 fs, ms per step (median of --n steps after 3).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import report  # noqa: E402
import workloads  # noqa: E402  (the structure sets)
from systems import median_ms, silicon, time_calls  # noqa: E402


def calculator(engine: str, model: str, dtype: str):
    """The engine's ASE calculator: facetpot's ``model``; SevenNet-0 (its own calculator); MACE-MP-0 medium's
    architecture with random weights (``training_step_worker.mace_model``; speed does not depend on the values)
    through ``MACECalculator``."""
    if engine == "facet":
        import facetpot

        return facetpot.FacetCalculator(model, dtype=dtype)
    if engine == "mace":
        from mace import tools
        from mace.calculators import MACECalculator

        from training_step_worker import MPTRJ_ZS, mace_model  # benchmarks/training_step_worker.py

        torch.set_default_dtype(getattr(torch, dtype))
        torch.manual_seed(0)
        net = mace_model(tools.AtomicNumberTable(MPTRJ_ZS)).to(getattr(torch, dtype))
        return MACECalculator(models=net, device="cpu", default_dtype=dtype)
    from sevenn.calculator import SevenNetCalculator

    return SevenNetCalculator("7net-0", device="cpu")


def one_by_one(calc, structures):
    """Every structure's energy + forces + stress with ``calc``; one warm-up call on the first one first."""
    warm = structures[0].copy()
    warm.calc = calc
    warm.get_forces()
    times = []
    for atoms in structures:
        atoms = atoms.copy()
        atoms.calc = calc
        t = time.perf_counter()
        atoms.get_potential_energy()
        atoms.get_forces()
        atoms.get_stress()
        times.append(time.perf_counter() - t)
    return times


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("engine", choices=["facet", "sevennet0", "mace"])
    ap.add_argument("workload", choices=["small", "stressed", "small-batched", "stressed-batched", "relax", "md"])
    ap.add_argument("--model", default="facet-7net0-spline")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--n", type=int, default=0, help="structures (0: the workload's default) or MD steps")
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    kind = args.workload.replace("-batched", "")
    if kind in ("small", "stressed"):
        structures = (
            workloads.small_crystals(args.n or 150) if kind == "small" else workloads.stressed_frames(args.n or 150)
        )
        atoms_total = sum(len(a) for a in structures)
        if args.workload.endswith("-batched"):
            import facetpot

            facetpot.predict(structures[:20], model=args.model, dtype=args.dtype)  # warm-up (loads the model)
            t = time.perf_counter()
            rows = facetpot.predict(structures, model=args.model, dtype=args.dtype)
            total = time.perf_counter() - t
            assert not any(r["error"] for r in rows), [r["error"] for r in rows if r["error"]][:3]
            report(
                structures=len(structures),
                atoms=atoms_total,
                total_s=total,
                per_structure_ms=1e3 * total / len(structures),
            )
        else:
            times = one_by_one(calculator(args.engine, args.model, args.dtype), structures)
            report(
                structures=len(structures),
                atoms=atoms_total,
                total_s=sum(times),
                median_ms=1e3 * statistics.median(times),
                per_structure_ms=1e3 * sum(times) / len(times),
            )
    elif kind == "relax":
        import relax as relax_bench  # benchmarks/relax.py: the structures and both relaxation drivers

        items = relax_bench.structures(args.n or 60)
        if args.engine == "facet":
            from facetpot.inference.prepare import inference_model

            model = inference_model(args.model, dtype=args.dtype)
            seconds, results = relax_bench.facet_run(model, items, 2000, 0.05, 500)
            steps = [r.steps for r in results]
            converged = sum(r.converged for r in results)
        else:
            seconds, results = relax_bench.sevennet_run(items, 0.05, 500)
            steps = [r["steps"] for r in results]
            converged = sum(r["converged"] for r in results)
        report(
            structures=len(items),
            atoms=sum(len(a) for _, a in items),
            total_s=seconds,
            steps=int(sum(steps)),
            converged=int(converged),
        )
    else:  # md
        from ase.md.verlet import VelocityVerlet
        from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
        from ase import units

        atoms = silicon(4, rattle=0.01)
        MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=np.random.default_rng(0))
        atoms.calc = calculator(args.engine, args.model, args.dtype)
        dyn = VelocityVerlet(atoms, 1.0 * units.fs)
        report(atoms=len(atoms), median_ms=median_ms(time_calls(lambda: dyn.run(1), args.n or 10, warmup=3)))


if __name__ == "__main__":
    main()
