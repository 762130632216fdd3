"""``facet preset NAME``: a starter ``facet train`` config (as ``sevenn_preset``), printed or written to a file."""
from __future__ import annotations

from pathlib import Path

from ..training.presets import preset_names, preset_text
from .options import add_command


def add_to(sub) -> None:
    p = add_command(sub, "preset", "write a starter facet train config (small-data, finetune)", run)
    p.add_argument("name", choices=preset_names(), help="small-data: a new model for one system; "
                   "finetune: the shipped default model on your data")
    p.add_argument("--train", nargs="+", metavar="FILE", help="training data files (else TRAIN_FILES to edit)")
    p.add_argument("-o", "--output", help="write the config here (an existing file is never overwritten)")


def run(args) -> int:
    text = preset_text(args.name, args.train)
    if not args.output:
        print(text, end="")
        return 0
    out = Path(args.output)
    if out.exists():
        raise ValueError(f"{out} exists: choose another name or remove it")
    try:
        out.write_text(text)
    except OSError as exc:
        raise ValueError(f"cannot write {out}: {exc.strerror}") from exc
    print(f"wrote {out}; then: facet train {out}")
    return 0
