"""``facet preset NAME``: a starter ``facet train`` config (as ``sevenn_preset``), printed or written to a file."""

from __future__ import annotations

import os
from pathlib import Path

from ..training.presets import preset_names, preset_text
from .options import add_command


def add_to(sub) -> None:
    p = add_command(sub, "preset", "write a starter facet train config (small-data, finetune)", run)
    p.add_argument(
        "name",
        choices=preset_names(),
        help="small-data: a new model for one system; finetune: the shipped default model on your data",
    )
    p.add_argument(
        "--train",
        nargs="+",
        metavar="FILE",
        help="training data files or globs (else TRAIN_FILES to "
        "edit); written relative to the config's folder with -o, absolute when printed",
    )
    p.add_argument("-o", "--output", help="write the config here (an existing file is never overwritten)")


def run(args) -> int:
    out = Path(args.output) if args.output else None
    train = None
    if args.train:  # facet train reads relative data paths from the config file's folder
        train = [
            os.path.relpath(os.path.abspath(f), os.path.abspath(out.parent)) if out else os.path.abspath(f)
            for f in args.train
        ]
    text = preset_text(args.name, train)
    if out is None:
        print(text, end="")
        return 0
    try:
        with open(out, "x") as f:
            f.write(text)
    except FileExistsError:
        raise ValueError(f"{out} exists: choose another name or remove it") from None
    except OSError as exc:
        raise ValueError(f"cannot write {out}: {exc}") from exc
    print(f"wrote {out}; then: facet train {out}")
    return 0
