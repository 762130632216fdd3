"""``facet relax INPUTS -o OUT``: batched relaxation of many structures (relaxed.extxyz, results.csv)."""
from __future__ import annotations

import sys
from pathlib import Path

from .options import (FAST, add_command, add_committee_option, add_dispersion_options, add_model_options,
                      add_output_folder, add_progress_option, dispersion, model_and_inputs)


def add_to(sub) -> None:
    p = add_command(sub, "relax", "relax many structures (positions and cell), batched: OUTPUT/relaxed.extxyz and "
                    "results.csv", run)
    p.add_argument("inputs", nargs="+", help="structure files in any format ASE or pymatgen reads, folders, globs")
    add_output_folder(p)
    add_model_options(p, "float32", FAST)
    p.add_argument("--fmax", type=float, default=0.05, help="force convergence, eV/Å")
    p.add_argument("--max-steps", type=int, default=500, help="optimizer steps per structure")
    p.add_argument("--positions-only", action="store_true", help="keep the cell fixed (default: relax it too)")
    p.add_argument("--symmetry", action="store_true", help="keep the space group (ASE FixSymmetry)")
    p.add_argument("--optimizer", default="fire", choices=["fire", "bfgs"], help="ASE optimizer")
    p.add_argument("--shard", default="0/1", help="I/N: relax every N-th structure from the I-th, I counted from 0 "
                   "(a SLURM array --array=0-9 with --shard $SLURM_ARRAY_TASK_ID/10)")
    p.add_argument("--max-atoms", type=int, default=2000, help="atoms relaxed together in one batch")
    add_dispersion_options(p)
    add_committee_option(p, "results.csv reports each structure's largest force std at its last step")
    add_progress_option(p)


def shard(text: str):
    """``--shard I/N`` -> (I, N)."""
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard must be I/N (e.g. 0/10), got {text}") from None
    return i, n


def run(args) -> int:
    from ..workflows.relax import relax_files  # lazy: facet --help start-up

    model, inputs = model_and_inputs(args, args.inputs)
    total, converged, failed = relax_files(model, inputs, args.output, shard=shard(args.shard), device=args.device,
                                           dtype=args.dtype, progress=not args.no_progress, fmax=args.fmax,
                                           max_steps=args.max_steps, cell=not args.positions_only,
                                           optimizer=args.optimizer, symmetry=args.symmetry, max_atoms=args.max_atoms,
                                           min_distance=args.min_distance, dispersion=dispersion(args))
    relaxed = Path(args.output) / "relaxed.extxyz"
    print(f"{total} structure(s): {converged} converged, {total - converged - failed} not converged, {failed} "
          f"failed; {Path(args.output) / 'results.csv'}" + (f", {relaxed}" if total > failed else " (nothing relaxed)"),
          file=sys.stderr)
    return 0 if converged == total else 1
