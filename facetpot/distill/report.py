"""What a distillation generated and what the teacher said about it: ``report.json`` and ``report.png``.

Counts of structures by source and by element (structures containing it, and atoms), the dropped
and rejected counts, and histograms of the teacher's energy per atom and force components.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np
from ase import Atoms
from ase.data import chemical_symbols

from ..io.atomic_write import atomic_write, atomic_write_text
from ..plots import load_pyplot


def summarize(structures: Sequence[Atoms], labelled: Sequence[Atoms], dropped: Dict[str, int], rejected: int) -> Dict:
    by_source = Counter(a.info.get("source", "?") for a in structures)
    with_element: Counter = Counter()
    atoms_of: Counter = Counter()
    for a in structures:
        for z in set(a.numbers.tolist()):
            with_element[chemical_symbols[z]] += 1
        for z, n in zip(*np.unique(a.numbers, return_counts=True)):
            atoms_of[chemical_symbols[int(z)]] += int(n)
    e = [a.get_potential_energy() / len(a) for a in labelled]
    f = np.concatenate([a.get_forces().ravel() for a in labelled]) if labelled else np.zeros(0)
    return {
        "structures": len(structures),
        "labelled": len(labelled),
        "by_source": dict(sorted(by_source.items())),
        "structures_with_element": dict(sorted(with_element.items())),
        "atoms_by_element": dict(sorted(atoms_of.items())),
        "dropped": dropped,
        "rejected": rejected,
        "energy_per_atom_eV": _stats(np.array(e)),
        "force_component_eV_per_A": _stats(f),
    }


def _stats(x: np.ndarray) -> Dict[str, float]:
    if x.size == 0:
        return {}
    return {"min": float(x.min()), "max": float(x.max()), "mean": float(x.mean()), "std": float(x.std())}


def write_report(out, summary: Dict, labelled: Sequence[Atoms]) -> List[Path]:
    out = Path(out)
    paths = [atomic_write_text(out / "report.json", json.dumps(summary, indent=1) + "\n")]
    plt = load_pyplot()
    if plt is None or not labelled:
        return paths
    fig, ax = plt.subplots(1, 3, figsize=(13, 3.6))
    src = summary["by_source"]
    ax[0].bar(list(src), list(src.values()))
    ax[0].set_title("structures by source")
    ax[1].hist([a.get_potential_energy() / len(a) for a in labelled], bins=50)
    ax[1].set_xlabel("teacher energy (eV/atom)")
    ax[2].hist(np.concatenate([a.get_forces().ravel() for a in labelled]), bins=100, log=True)
    ax[2].set_xlabel("teacher force component (eV/Å)")
    fig.tight_layout()
    paths.append(atomic_write(out / "report.png", lambda tmp: fig.savefig(tmp, format="png", dpi=110)))
    plt.close(fig)
    return paths
