"""``facet predict INPUTS -o OUT``: energy, forces and stress of many structures, batched."""

from __future__ import annotations

import sys
from pathlib import Path

from .options import FAST, add_command, add_model_options, add_output_folder, add_progress_option, model_and_inputs


def add_to(sub) -> None:
    p = add_command(
        sub,
        "predict",
        "energy, forces and stress of many structures, batched: OUTPUT/results.csv and predicted.extxyz",
        run,
    )
    p.add_argument("inputs", nargs="+", help="structure files in any format ASE or pymatgen reads, folders, globs")
    add_output_folder(p)
    add_model_options(p, "float32", FAST)
    p.add_argument(
        "--batch-atoms", type=int, default=None, help="atoms per model call (default: 512 on a CPU, 4096 on CUDA)"
    )
    add_progress_option(p)


def run(args) -> int:
    from ..workflows.predict_files import predict_files  # lazy: facet --help start-up

    model, inputs = model_and_inputs(args, args.inputs)
    total, failed = predict_files(
        model,
        inputs,
        args.output,
        device=args.device,
        dtype=args.dtype,
        batch_atoms=args.batch_atoms,
        progress=not args.no_progress,
        min_distance=args.min_distance,
    )
    written = [p for p in (Path(args.output) / "results.csv", Path(args.output) / "predicted.extxyz") if p.is_file()]
    print(
        f"{total} structure(s), {failed} failed; "
        + ", ".join(map(str, written))
        + ("" if total > failed else " (nothing evaluated)"),
        file=sys.stderr,
    )
    return 0 if failed == 0 else 1
