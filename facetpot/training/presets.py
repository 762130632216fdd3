"""Starter configs for ``facet train`` (``facet preset NAME``), as ``sevenn_preset`` writes SevenNet's.

Each preset is a commented YAML file in ``preset_configs/`` whose ``data.train`` is the placeholder
``TRAIN_FILES``; ``preset_text(name, train)`` puts the user's files there."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional, Sequence

FOLDER = Path(__file__).resolve().parent / "preset_configs"
PLACEHOLDER = "TRAIN_FILES"


def preset_names() -> List[str]:
    return sorted(p.stem for p in FOLDER.glob("*.yaml"))


def preset_text(name: str, train: Optional[Sequence[str]] = None) -> str:
    """The preset's YAML text; with ``train``, those files (one, or a list, as they should stand in the config:
    ``facet train`` reads relative paths from the config file's folder) in place of ``TRAIN_FILES``."""
    path = FOLDER / f"{name}.yaml"
    if not path.is_file():
        raise ValueError(f"unknown preset {name!r}; presets: {', '.join(preset_names())}")
    text = path.read_text()
    if train:
        value = json.dumps(train[0]) if len(train) == 1 else json.dumps(list(train))  # JSON strings are YAML
        text = text.replace(PLACEHOLDER, value, 1)
    return text
