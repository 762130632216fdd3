"""``facet models``: the pretrained models shipped with facetpot, with their cards."""

from __future__ import annotations

from ..pretrained import DEFAULT_MODEL, available
from .options import add_command


def add_to(sub) -> None:
    add_command(
        sub,
        "models",
        "list the pretrained models shipped with facetpot (names for -m/--model, "
        "FacetCalculator and load_model) with their model cards",
        run,
    )


def run(args) -> int:
    models = available()
    if not models:
        print("no pretrained model ships with this facetpot yet")
    for m in models:
        print(f"{m.name}{' (default)' if m.name == DEFAULT_MODEL else ''}: {m.description}\n    card: {m.card_path}")
    return 0
