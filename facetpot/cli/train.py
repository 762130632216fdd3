"""``facet train CONFIG``: train or fine-tune a model from a YAML config."""

from __future__ import annotations

from .options import add_command, add_run_folder_options


def add_to(sub) -> None:
    p = add_command(sub, "train", "train or fine-tune a model from a YAML config", run)
    p.add_argument("config", help="YAML config (examples in training/)")
    add_run_folder_options(p)


def run(args) -> int:
    from ..training.config import load_config  # lazy: facet --help start-up
    from ..training.trainer import Trainer  # lazy: facet --help start-up

    cfg = load_config(args.config)
    if args.output:
        cfg["training"]["output"] = args.output
    Trainer(cfg, resume=args.resume, overwrite=args.overwrite).run()
    return 0
