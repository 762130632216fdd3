"""Registry of pretrained models shipped inside the package (files under ``pretrained/``).

Nothing is downloaded: a name resolves to a file in the installed package or the source tree.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional

#: name -> file name in the pretrained folder; filled as models are trained and shipped.
PRETRAINED: Dict[str, str] = {}

#: the model ``FacetCalculator()`` uses when none is named: the recommended shipped one (none yet)
DEFAULT_MODEL: Optional[str] = None


def pretrained_dirs():
    here = Path(__file__).resolve().parent
    return [here / "pretrained_models", here.parent / "pretrained"]


def pretrained_path(name: str) -> Path:
    if name not in PRETRAINED:
        known = ", ".join(sorted(PRETRAINED)) or "none shipped yet"
        raise ValueError(f"unknown pretrained model {name!r}; known names: {known}")
    for d in pretrained_dirs():
        p = d / PRETRAINED[name]
        if p.is_file():
            return p
    raise FileNotFoundError(f"pretrained model {name!r} is registered but its file {PRETRAINED[name]} is missing")
