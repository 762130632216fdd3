"""Variants of the C++ inference engine's program, side by side in one process (issue 35).

    python benchmarks/engine_variants.py [--threads 2] [--rounds 8] [--chunks 24 96] [--model NAME] [--write]

The shipped default model (float32, energy + forces + stress through ``compute_properties``, the calculator's
path without ASE) runs its layers by ``facetpot.inference.frozen_program`` compiled as: ``dense`` (every block's
channel step one GEMM with M_u), ``factored, density steps`` (W per path and the CG non-zeros,
``frozen_program.channel_factors``, every atom's density summed over its neighbours), ``factored`` (what ships: the
same, edge first where a graph has few edges per distinct neighbour, ``frozen_program.slot_tables``) and
``factored, chunk C`` for every ``--chunks`` C (receiving atoms per density chunk, density steps; the default is the
backend's CPU choice). Workloads: 30 small MPtrj crystals (at most 20 atoms;
``workloads.small_crystals``) one by one, Si 64 and Si 512 (rattled 0.02 Å). The variants alternate within every
round; per workload and variant: best and median over ``--rounds`` rounds of the time per structure. Numbers are
the same in every variant (float32 summation order aside).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import append_results  # noqa: E402
from machine import machine  # noqa: E402
from systems import silicon  # noqa: E402
from workloads import small_crystals  # noqa: E402


def runner(program, edge_first: bool):
    """A layer runner (``FacetModel.use_layer_runner``) that runs ``program``, as ``frozen_program.run_layers``."""
    from facetpot.inference.frozen_program import run_program

    def run(model, features, edges):
        if edges.num_edges() == 0:
            return None  # isolated atoms: the Python layers (run_layers does the same)
        return run_program(program, features, edges, edge_first)

    return run


def timings(model, variants, graphs, rounds: int, reps: int):
    """{variant: [seconds per structure, one per round]}, the variants alternating within every round."""
    from facetpot.derivatives import compute_properties

    out = {name: [] for name in variants}
    for _ in range(rounds):
        for name, (program, edge_first) in variants.items():
            model.use_layer_runner(runner(program, edge_first))
            for g in graphs:  # warm-up: the density steps' scratch memory
                compute_properties(model, g, stress=True)
            start = time.perf_counter()
            for _ in range(reps):
                for g in graphs:
                    compute_properties(model, g, stress=True)
            out[name].append((time.perf_counter() - start) / reps / len(graphs))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--chunks", type=int, nargs="*", default=[])
    p.add_argument("--model", default=None, help="default: the shipped default model")
    p.add_argument("--write", action="store_true", help="record the table (RESULTS.md)")
    args = p.parse_args(argv)

    import torch

    from facetpot.inference.engine_library import load_engine
    from facetpot.inference.frozen_program import compile_layers
    from facetpot.inference.prepare import inference_model
    from facetpot.pretrained import DEFAULT_MODEL
    from facetpot.structure.graph import atoms_to_graph

    if not load_engine():
        sys.exit("the C++ engine cannot be built here: nothing to compare")
    torch.set_num_threads(args.threads)
    name = args.model or DEFAULT_MODEL
    model = inference_model(name, dtype="float32")
    factored = compile_layers(model)
    variants = {
        "dense": (compile_layers(model, factored=False), False),
        "factored, density steps": (factored, False),
        "factored": (factored, True),  # what ships: edge first where a graph allows (frozen_program.slot_tables)
    }
    for c in args.chunks:
        variants[f"factored, chunk {c}"] = (compile_layers(model, chunk=c), False)
    workloads = [
        ("30 small MPtrj crystals, one by one", small_crystals(30), 3),
        ("Si 64", [silicon(2, rattle=0.02)], 4),
        ("Si 512", [silicon(4, rattle=0.02)], 1),
    ]
    head = list(variants)
    lines = [
        f"### C++ engine variants: {name}, float32, {args.threads} threads ({time.strftime('%Y-%m-%d')})",
        "",
        f"Machine: {machine()}. Command: `python benchmarks/engine_variants.py {' '.join(sys.argv[1:])}` (one process,"
        f" the variants alternating, {args.rounds} rounds; ms per structure, best / median).",
        "",
        "| workload | " + " | ".join(head) + " |",
        "|---|" + "---|" * len(head),
    ]
    for label, structures, reps in workloads:
        graphs = [atoms_to_graph(a, model.cutoff, dtype=torch.float32) for a in structures]
        t = timings(model, variants, graphs, args.rounds, reps)
        cells = [f"{1e3 * min(t[k]):.1f} / {1e3 * statistics.median(t[k]):.1f}" for k in head]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        append_results(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
