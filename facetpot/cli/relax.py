"""``facet relax INPUTS -o OUT``: batched relaxation of many structures (relaxed.extxyz, results.csv)."""

from __future__ import annotations

import sys
from pathlib import Path

from ..workflows.relax_result import SMAX_GPA
from .options import (
    FAST,
    add_command,
    add_committee_option,
    add_dispersion_options,
    add_model_options,
    add_output_folder,
    add_progress_option,
    dispersion,
    model_and_inputs,
)


def add_to(sub) -> None:
    p = add_command(
        sub, "relax", "relax many structures (positions and cell), batched: OUTPUT/relaxed.extxyz and results.csv", run
    )
    p.add_argument("inputs", nargs="+", help="structure files in any format ASE or pymatgen reads, folders, globs")
    add_output_folder(p)
    add_model_options(p, "float32", FAST)
    p.add_argument("--fmax", type=float, default=0.05, help="force convergence: every atom's force below this, eV/Å")
    p.add_argument(
        "--smax",
        type=float,
        default=SMAX_GPA,
        help="stress convergence of cell relaxations: every stress "
        "component below this, GPa (0: no stress test, ASE's filter alone decides)",
    )
    p.add_argument("--max-steps", type=int, default=500, help="optimizer steps per structure")
    p.add_argument("--positions-only", action="store_true", help="keep the cell fixed (default: relax it too)")
    p.add_argument("--symmetry", action="store_true", help="keep the space group (ASE FixSymmetry)")
    p.add_argument("--optimizer", default="fire", choices=["fire", "bfgs"], help="ASE optimizer")
    p.add_argument(
        "--shard",
        default="0/1",
        help="I/N: relax every N-th structure from the I-th, I counted from 0 "
        "(a SLURM array --array=0-9 with --shard $SLURM_ARRAY_TASK_ID/10)",
    )
    p.add_argument("--max-atoms", type=int, default=2000, help="atoms relaxed together in one batch")
    add_dispersion_options(p)
    add_committee_option(p, "results.csv reports each structure's largest force std at its last step")
    p.add_argument(
        "--resume",
        action="store_true",
        help="relax only the structures OUTPUT/results.csv does not hold "
        "yet (an interrupted run), appending to its files",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an earlier run's results in OUTPUT")
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

    if args.smax < 0:
        raise ValueError(f"--smax must be >= 0 GPa (0: no stress test), got {args.smax}")
    model, inputs = model_and_inputs(args, args.inputs)
    total, converged, failed = relax_files(
        model,
        inputs,
        args.output,
        shard=shard(args.shard),
        device=args.device,
        dtype=args.dtype,
        progress=not args.no_progress,
        fmax=args.fmax,
        smax_gpa=args.smax or None,
        max_steps=args.max_steps,
        cell=not args.positions_only,
        optimizer=args.optimizer,
        symmetry=args.symmetry,
        max_atoms=args.max_atoms,
        min_distance=args.min_distance,
        dispersion=dispersion(args),
        resume=args.resume,
        overwrite=args.overwrite,
    )
    relaxed = Path(args.output) / "relaxed.extxyz"
    print(
        f"{total} structure(s){' relaxed by this resumed run' if args.resume else ''}: {converged} converged, "
        f"{total - converged - failed} not converged, {failed} failed; {Path(args.output) / 'results.csv'}"
        + (f", {relaxed}" if relaxed.is_file() else " (nothing relaxed)"),
        file=sys.stderr,
    )
    return 0 if converged == total else 1
