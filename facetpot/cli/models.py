"""``facet models``: the pretrained models shipped with facetpot, with their cards."""
from __future__ import annotations

from ..pretrained import DEFAULT_MODEL, available


def add_to(sub) -> None:
    sub.add_parser("models", help="list the pretrained models shipped with facetpot").set_defaults(func=run)


def run(args) -> int:
    models = available()
    if not models:
        print("no pretrained model ships with this facetpot yet")
    for m in models:
        print(f"{m.name}{' (default)' if m.name == DEFAULT_MODEL else ''}: {m.description}\n    card: {m.card_path}")
    return 0
