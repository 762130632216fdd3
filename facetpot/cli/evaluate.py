"""``facet eval DATA``: errors of a model on labelled data (report.json, parity plots)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .options import (
    ERRORS,
    add_command,
    add_key_option,
    add_model_options,
    add_output_folder,
    add_progress_option,
    model_and_inputs,
    parse_keys,
)


def add_to(sub) -> None:
    p = add_command(
        sub,
        "eval",
        "errors of a model on labelled data (energy, forces, stress): MAE/RMSE overall and "
        "per config_type in OUTPUT/report.json, parity plots",
        run,
    )
    p.add_argument(
        "data",
        nargs="+",
        help="labelled structures: extxyz / ASE .db / MPtrj .json files or globs, or a training cache folder",
    )
    add_output_folder(p, default="eval")
    add_key_option(p, "energy=REF_energy (labels: energy, forces, stress)")
    add_model_options(p, "float64", ERRORS, structures=False)
    p.add_argument("--batch-atoms", type=int, default=2048, help="atoms per model call")
    p.add_argument("--no-plots", action="store_true", help="skip the parity plots")
    add_progress_option(p)


def run(args) -> int:
    from ..evaluate import evaluate_model  # lazy: facet --help start-up

    model, data = model_and_inputs(args, args.data)
    report = evaluate_model(
        model,
        data,
        out_dir=args.output,
        keys=parse_keys(args.key),
        device=args.device,
        dtype=args.dtype,
        batch_atoms=args.batch_atoms,
        plots=not args.no_plots,
        progress=not args.no_progress,
    )
    print(json.dumps(report["all"], indent=1))
    print(
        f"report: {Path(args.output) / 'report.json'}" + ("" if args.no_plots else " (+ parity plots with matplotlib)"),
        file=sys.stderr,
    )
    return 0
