"""ms/step of pair_style facet in LAMMPS beside the same model's time in Python.

    python benchmarks/lammps.py [--model facet-s] [--sizes 8 16] [--steps 3] [--dtype float32]

``--model``: ``facet-s`` (default; Facet-S untrained: speed does not depend on the weights), or a pretrained
name / model file (``facet-7net0-spline``: the shipped default). Si diamond n x n x n cubic cells
(n = 4: 512 atoms; n = 8: 4,096 atoms; n = 16: 32,768 atoms), on this machine's cores:
  * python: one energy + forces + stress call of the model as the calculator runs it (``inference_model``:
    frozen weights, density backend, no checkpointed chunks, like the exported module), 1 and 2 torch threads;
  * lammps: ``run`` steps of NVE with ``pair_style facet`` on 1 rank x 1 thread, 1 rank x 2
    threads and 2 ranks x 1 thread (``mpirun -np 2``); ms/step from LAMMPS' own loop time, after
    warm-up steps (TorchScript optimises on its first calls).
overhead = lammps(1 rank, t threads) / python(t threads) - 1 (aim < 10%), and the pair style's own
account (printed by LAMMPS at the end of a run): time outside the model (feature exchange between
layers, edge list, tensors, force accumulation) / model time; rank speed-up =
lammps(1 x 1) / lammps(2 x 1) (aim >= 1.6 at 32k atoms). Every measurement runs in its own process,
one after another (nothing else may run). Results go to benchmarks/out/lammps.json and are
appended to benchmarks/RESULTS.md.
"""

import argparse
import datetime
import json
import os
import platform
import re
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
from harness import append_results, run_worker  # noqa: E402  (benchmarks/harness.py, before the folder leaves the path)
from systems import WORKER_IMPORT  # noqa: E402  (benchmarks/systems.py)
import machine  # noqa: E402, F401  (benchmarks/machine.py: harness.record_run imports it once the folder has left the path)

# this file's name would shadow the lammps package: drop its folder from the import path
sys.path = [p for p in sys.path if Path(p or ".").resolve() != HERE]

PYTHON_WORKER = (
    WORKER_IMPORT
    + r"""
import json, resource, sys
import torch
import facetpot
from systems import median_ms, silicon, time_calls
from facetpot.structure.graph import atoms_to_graph
from facetpot.inference.prepare import inference_model
from facetpot.derivatives import compute_properties
n, threads, reps, dtype, name = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
torch.set_num_threads(threads)
atoms = silicon(n, rattle=0.01)
torch.manual_seed(0)
model = inference_model(facetpot.build_model() if name == "facet-s" else name, dtype=dtype)
model.set_backend("density", chunk_atoms=0)
times = time_calls(lambda: compute_properties(model, atoms_to_graph(atoms, model.cutoff, dtype=model.dtype)), reps)
print("RESULT", json.dumps({"atoms": len(atoms), "ms": median_ms(times),
      "rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6}))
"""
)

INPUT = """units metal
atom_style atomic
boundary p p p
lattice diamond 5.43
region box block 0 {n} 0 {n} 0 {n}
create_box 1 box
create_atoms 1 box
mass 1 28.0855
displace_atoms all random 0.01 0.01 0.01 1
pair_style facet {threads}
pair_coeff * * model.pt Si
velocity all create 300 1
fix nve all nve
thermo 1000
run {warmup}
run {steps}
"""


def python_time(n, threads, reps, dtype, model):
    try:
        return run_worker(
            sys.executable,
            PYTHON_WORKER,
            [n, threads, reps, dtype, model],
            threads=threads,
            omp_wait_policy=os.environ.get("OMP_WAIT_POLICY"),
        )[0]
    except RuntimeError as exc:
        return {"error": str(exc)[-500:]}


def lammps_time(workdir, n, ranks, threads, steps, warmup):
    from facetpot.lammps.runner import run_lammps

    (workdir / "in.bench").write_text(INPUT.format(n=n, threads=f"threads {threads}", steps=steps, warmup=warmup))
    env = {"OMP_NUM_THREADS": str(threads)}
    proc = run_lammps("in.bench", workdir, nprocs=ranks, env=env, timeout=7200)
    loops = re.findall(r"Loop time of ([0-9.eE+-]+) on \d+ procs for (\d+) steps", proc.stdout)
    seconds, nsteps = float(loops[-1][0]), int(loops[-1][1])
    # the pair style's own breakdown of the timed run (rank 0): model vs exchange + interface
    parts = re.findall(
        r"pair_style facet, rank 0, \d+ calls \((\d+) whole-domain calls of the C\+\+ engine\): model ([0-9.]+) "
        r"ms/call, feature exchange ([0-9.]+) "
        r"ms/call, interface \(edges, tensors, forces\) ([0-9.]+) ms/call",
        proc.stdout,
    )
    engine_calls, model_ms, comm_ms, other_ms = (float(v) for v in parts[-1])
    return {
        "ms_per_step": 1e3 * seconds / nsteps,
        "engine_calls": int(engine_calls),
        "steps": nsteps,
        "model_ms": model_ms,
        "exchange_ms": comm_ms,
        "interface_ms": other_ms,
        "internal_overhead": (comm_ms + other_ms) / model_ms,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="facet-s", help="facet-s (untrained Facet-S), or a pretrained name / model file")
    ap.add_argument("--sizes", type=int, nargs="+", default=[8, 16], help="cubic Si cells per side (8: 4,096 atoms)")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args()
    import torch

    import facetpot
    from facetpot.export.torchscript import export_torchscript
    from facetpot.lammps.build import build_plugin

    build_plugin()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        torch.manual_seed(0)
        from facetpot.inference.model_source import load_model

        model = facetpot.build_model() if args.model == "facet-s" else load_model(args.model)
        export_torchscript(model, work / "model.pt", dtype=args.dtype)
        for n in args.sizes:
            row = {"atoms": 8 * n**3}
            for t in (1, 2):
                row[f"python_{t}t_ms"] = python_time(n, t, args.steps, args.dtype, args.model).get("ms")
                print(json.dumps(row), flush=True)
            for ranks, threads in ((1, 1), (1, 2), (2, 1)):
                res = lammps_time(work, n, ranks, threads, args.steps, args.warmup)
                row[f"lammps_{ranks}r{threads}t_ms"] = res["ms_per_step"]
                row[f"lammps_{ranks}r{threads}t_internal_overhead"] = res["internal_overhead"]
                row[f"lammps_{ranks}r{threads}t_exchange_ms"] = res["exchange_ms"]
                print(json.dumps(row), flush=True)
            for t in (1, 2):
                if row.get(f"python_{t}t_ms"):
                    row[f"overhead_{t}t"] = row[f"lammps_1r{t}t_ms"] / row[f"python_{t}t_ms"] - 1
            row["rank_speedup"] = row["lammps_1r1t_ms"] / row["lammps_2r1t_ms"]
            rows.append(row)
            print(json.dumps(row), flush=True)
    out = HERE / "out"
    out.mkdir(exist_ok=True)
    (out / "lammps.json").write_text(json.dumps(rows, indent=1))
    if args.no_record:
        return
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    lines = [
        f"\n### LAMMPS pair_style facet vs Python ({datetime.date.today()}, {cpu}, {os.cpu_count()} cores, "
        f"{'Facet-S' if args.model == 'facet-s' else args.model} {args.dtype}, torch {torch.__version__})\n",
        "`python benchmarks/lammps.py " + " ".join(sys.argv[1:]) + "`\n",
        "| atoms | Python 1t | Python 2t | LAMMPS 1 rank x 1t | 1 rank x 2t | 2 ranks x 1t | vs Python 1t | vs Python 2t | "
        "plugin's own overhead (1r1t / 1r2t / 2r1t) | 2 ranks / 1 rank |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['atoms']:,} | {r['python_1t_ms']:.0f} ms | {r['python_2t_ms']:.0f} ms | {r['lammps_1r1t_ms']:.0f} ms | "
            f"{r['lammps_1r2t_ms']:.0f} ms | {r['lammps_2r1t_ms']:.0f} ms | {100 * r['overhead_1t']:+.1f}% | "
            f"{100 * r['overhead_2t']:+.1f}% | "
            + " / ".join(f"{100 * r[f'lammps_{c}_internal_overhead']:.1f}%" for c in ("1r1t", "1r2t", "2r1t"))
            + f" | {r['rank_speedup']:.2f}x |"
        )
    append_results("\n".join(lines))


if __name__ == "__main__":
    main()
