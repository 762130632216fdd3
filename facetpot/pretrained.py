"""Registry of the pretrained models shipped inside the package (files under ``pretrained/``).

Nothing is downloaded: a name resolves to a file in the installed package (``facetpot/pretrained_models``,
a link to the repository's ``pretrained/`` folder) whose sha256 must match the registry's, and each
model has a card (a markdown file beside it) saying what it is, where it comes from, how it was made
and how accurate and fast it is.

    facetpot.pretrained.available()          # [PretrainedModel(name, description, file, sha256, card)]
    FacetCalculator("facet-7net0-spline")    # every command and function taking a model takes a name
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

from .io.sha256 import file_sha256


@dataclass(frozen=True)
class PretrainedModel:
    name: str
    description: str  # one line
    file: str  # model file name in the pretrained folder
    sha256: str
    card: str  # model card (markdown) in the pretrained folder

    @property
    def card_path(self) -> Optional[Path]:
        return _find(self.card)


#: name -> shipped model; filled as models are made and shipped
PRETRAINED: Dict[str, PretrainedModel] = {
    m.name: m
    for m in [
        PretrainedModel(
            "facet-7net0-spline",
            "SevenNet-0 (MPtrj, 89 elements, PBE/PBE+U) with Facet spline radial weights: 75% of the parameters",
            "facet-7net0-spline.pt",
            "9cfc863769d880c8406e225c2a32df22c60dae8d5f3638a049bbe1ceba2a6171",
            "facet-7net0-spline.md",
        ),
        PretrainedModel(
            "facet-7net-l3i5-spline",
            "SevenNet-l3i5 (MPtrj, 89 elements, l_max 3) with Facet spline radial weights, layer-output refit to "
            "its exact port (forces 13% worse than the original on held-out frames): 75% of the parameters",
            "facet-7net-l3i5-spline.pt",
            "64ccdeb91ad9ef8b1db819f814d00284614d75321f7b46ed34ff966a250b2693",
            "facet-7net-l3i5-spline.md",
        ),
        PretrainedModel(
            "facet-7net-mf0-pbe-spline",
            "SevenNet-MF-0's PBE/PBE+U head (MPtrj fidelity, 89 elements) with Facet spline radial weights, "
            "layer-output refit to its exact port: 75% of the parameters",
            "facet-7net-mf0-pbe-spline.pt",
            "88cafeea32d232e9dd7a329e7e648930af3cc1f229eef3199333c7c3f1ce40eb",
            "facet-7net-mf0-spline.md",
        ),
        PretrainedModel(
            "facet-7net-mf0-r2scan-spline",
            "SevenNet-MF-0's r2SCAN head (MP-r2SCAN fidelity, 89 elements) with Facet spline radial weights: "
            "the PBE head's trim with the r2SCAN biases and energies",
            "facet-7net-mf0-r2scan-spline.pt",
            "9c08dbbf9266c9c8ef05dddd4361a02656d472d5963c8d2727c6ba7db8463fdd",
            "facet-7net-mf0-spline.md",
        ),
        PretrainedModel(
            "facet-s-universal",
            "Facet-S (splines + spherical-grid layer, 89 elements) distilled 2 h on 2 CPU cores from "
            "facet-7net-l3i5-spline: NOT converged (held-out MPtrj force error 11x its teacher's); for trials and fine-tuning",
            "facet-s-universal.pt",
            "659accfc505ddc44b2e8037c46d4059a5c5f8d6a94c359747e8a1de65ef725a6",
            "facet-s-universal.md",
        ),
    ]
}

#: the model ``FacetCalculator()`` uses when none is named: the recommended shipped one
DEFAULT_MODEL: Optional[str] = "facet-7net0-spline"

#: where shipped files are looked for: in the installed package, then in the source tree
SEARCH_DIRS: List[Path] = [
    Path(__file__).resolve().parent / "pretrained_models",
    Path(__file__).resolve().parent.parent / "pretrained",
]


def available() -> List[PretrainedModel]:
    """The shipped models, the recommended one first."""
    return sorted(PRETRAINED.values(), key=lambda m: (m.name != DEFAULT_MODEL, m.name))


def _find(file: str) -> Optional[Path]:
    for folder in SEARCH_DIRS:
        path = folder / file
        if path.is_file():
            return path
    return None


def _known() -> str:
    return ", ".join(f"{m.name} ({m.description})" for m in available()) or "none shipped yet"


def pretrained_path(name: str) -> Path:
    """The checked file of the shipped model ``name``; an unknown name, a missing file or a file whose
    sha256 differs from the registry's is an error that lists what exists."""
    if name not in PRETRAINED:
        raise ValueError(f"unknown pretrained model {name!r}; known names: {_known()}")
    entry = PRETRAINED[name]
    path = _find(entry.file)
    if path is None:
        raise FileNotFoundError(
            f"pretrained model {name!r} is registered but its file {entry.file} is not in "
            f"{', '.join(str(d) for d in SEARCH_DIRS)}: reinstall facetpot"
        )
    digest = file_sha256(path)
    if digest != entry.sha256:
        raise ValueError(
            f"pretrained model {name!r}: {path} has sha256 {digest}, the registry expects {entry.sha256} "
            "(a damaged or replaced file): reinstall facetpot"
        )
    return path
