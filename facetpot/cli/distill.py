"""``facet distill CONFIG``: structures -> teacher labels -> training of a small model (and active learning)."""

from __future__ import annotations

from .options import add_command, add_run_folder_options

STAGES = ("generate", "label", "train", "all")


def add_to(sub) -> None:
    p = add_command(
        sub,
        "distill",
        "train a small model on a teacher's labels of generated structures "
        "(structures -> teacher labels -> facet train)",
        run,
    )
    p.add_argument(
        "config",
        help="YAML: teacher, structures, labels + the training sections (example: training/distill_si/distill_si.yaml)",
    )
    p.add_argument("--stage", choices=STAGES, default="all", help="stop after this stage; a rerun skips what is done")
    add_run_folder_options(p)


def run(args) -> int:
    from ..distill.config import load_distill_config  # lazy: facet --help start-up
    from ..distill.run import STAGES as RUN_STAGES, run_distill  # lazy: facet --help start-up

    cfg = load_distill_config(args.config)
    if args.output:
        cfg["train"]["training"]["output"] = args.output
    stages = RUN_STAGES if args.stage == "all" else RUN_STAGES[: RUN_STAGES.index(args.stage) + 1]
    run_distill(cfg, stages=stages, resume=args.resume, overwrite=args.overwrite)
    return 0
