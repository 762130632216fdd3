"""Structures for a replay set: small prototype crystals over a base model's elements, strained and rattled.

A universal model's training data (MPtrj) is mostly inorganic crystals: oxides and other ionic compounds,
intermetallics, elements. Without shipping that data, a replay set covering the same kinds of
chemistry is generated from prototypes whose nearest-neighbour distance is the sum of the covalent
radii (``ase.data.covalent_radii``; the elements' own lattices from ASE's reference states where ASE
has them):

    element     fcc / bcc / hcp / diamond of one element (ASE's reference lattice), supercell
    b2, l12     AB (CsCl) and A3B (Cu3Au) intermetallics of two metals
    rocksalt, zincblende, wurtzite   MX of a metal M and an anion X
    fluorite    MX2;   perovskite   ABX3 (cubic)

then x' = x (1 + eps) + sigma n with a random symmetric strain (components uniform in +-``strain``) and
a Gaussian rattle (sigma uniform in ``rattle`` Å). A structure is redrawn when two atoms are closer than
0.75 (r_i + r_j). With ``focus`` f, a fraction f of the structures pairs an element of the new data with
other elements (what fine-tuning must not break: a Cu fine-tune keeps Cu oxides); every structure holds
at least one element outside the new data, so replay never contradicts the new labels. Deterministic:
structure k comes from ``default_rng([seed, k])``.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import numpy as np
from ase import Atoms
from ase.build import bulk
from ase.data import atomic_numbers, chemical_symbols, covalent_radii, reference_states

from ..structure.neighbors import radius_graph

#: anions, with the weight of each in the draw (oxides dominate MPtrj)
ANIONS: Dict[str, float] = {
    "O": 8.0,
    "S": 2.0,
    "F": 2.0,
    "N": 1.5,
    "Cl": 1.5,
    "Se": 1.0,
    "P": 1.0,
    "Br": 0.7,
    "I": 0.7,
    "Te": 0.7,
    "C": 0.7,
    "H": 0.7,
}
NOBLE_GASES = {"He", "Ne", "Ar", "Kr", "Xe", "Rn"}
#: prototype -> (number of metal sites, number of anion sites, weight in the draw)
PROTOTYPES: Dict[str, tuple] = {
    "element": (1, 0, 2.0),
    "b2": (2, 0, 1.0),
    "l12": (2, 0, 1.0),
    "rocksalt": (1, 1, 2.0),
    "zincblende": (1, 1, 1.0),
    "wurtzite": (1, 1, 1.0),
    "fluorite": (1, 1, 1.0),
    "perovskite": (2, 1, 2.0),
}


def bond(a: str, b: str) -> float:
    """Nearest-neighbour distance (Å) of elements a and b: the sum of their covalent radii."""
    return float(covalent_radii[atomic_numbers[a]] + covalent_radii[atomic_numbers[b]])


def element_crystal(m: str) -> Atoms:
    """ASE's reference lattice of ``m`` when it is fcc/bcc/hcp/diamond, else fcc at the covalent distance."""
    ref = reference_states[atomic_numbers[m]] or {}
    if ref.get("symmetry") in ("fcc", "bcc", "hcp", "diamond"):
        return bulk(m, cubic=ref["symmetry"] != "hcp")
    return bulk(m, "fcc", a=np.sqrt(2) * bond(m, m), cubic=True)


def prototype(kind: str, metals: Sequence[str], anion: Optional[str]) -> Atoms:
    """One prototype crystal (conventional cell) of ``metals`` and ``anion``."""
    m, x = metals[0], anion
    if kind == "element":
        return element_crystal(m)
    if kind == "b2":
        return bulk(m + metals[1], "cesiumchloride", a=2 * bond(m, metals[1]) / np.sqrt(3))
    if kind == "l12":
        a = bulk(m, "fcc", a=np.sqrt(2) * bond(m, metals[1]), cubic=True)
        a.symbols[0] = metals[1]
        return a
    if kind == "rocksalt":
        return bulk(m + x, "rocksalt", a=2 * bond(m, x), cubic=True)
    if kind == "zincblende":
        return bulk(m + x, "zincblende", a=4 * bond(m, x) / np.sqrt(3), cubic=True)
    if kind == "wurtzite":
        d = bond(m, x)
        return bulk(m + x, "wurtzite", a=d * np.sqrt(8 / 3), c=d * 8 / 3)
    if kind == "fluorite":
        return bulk(m + x + x, "fluorite", a=4 * bond(m, x) / np.sqrt(3), cubic=True)
    a = 2 * bond(metals[1], x)  # perovskite ABX3: B-X = a / 2
    return Atoms(
        [m, metals[1], x, x, x],
        cell=[a, a, a],
        pbc=True,
        scaled_positions=[[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]],
    )


def too_close(atoms: Atoms, factor: float = 0.75) -> bool:
    """Whether some pair is closer than ``factor`` (r_i + r_j)."""
    i, j, shifts = radius_graph(atoms.get_positions(), atoms.cell.array, atoms.pbc, 2 * factor * covalent_radii.max())
    if len(i) == 0:
        return False
    dist = np.linalg.norm(atoms.positions[j] - atoms.positions[i] + shifts @ atoms.cell.array, axis=1)
    return bool((dist < factor * (covalent_radii[atoms.numbers[i]] + covalent_radii[atoms.numbers[j]])).any())


def perturbed(atoms: Atoms, rng: np.random.Generator, strain: float, rattle: Sequence[float], min_atoms: int) -> Atoms:
    """A supercell of ``atoms`` with at least ``min_atoms`` atoms (its shortest axis doubled until then),
    strained and rattled."""
    reps = np.ones(3, dtype=int)
    while len(atoms) * reps.prod() < min_atoms:
        reps[np.argmin(atoms.cell.lengths() * reps)] += 1
    a = atoms.repeat(tuple(int(r) for r in reps))
    eps = rng.uniform(-strain, strain, (3, 3))
    a.set_cell(a.cell.array @ (np.eye(3) + 0.5 * (eps + eps.T)), scale_atoms=True)
    a.positions += rng.normal(0.0, rng.uniform(*rattle), a.positions.shape)
    return a


class ElementDraw:
    """Metals and anions among ``species`` (symbols) to draw from, and the data's elements (``data_elements``)."""

    def __init__(self, species: Sequence[str], data_elements: Sequence[str]):
        usable = [s for s in species if s not in NOBLE_GASES]
        self.anions = [s for s in usable if s in ANIONS]
        self.metals = [s for s in usable if s not in ANIONS]
        self.data = set(data_elements)
        w = np.array([ANIONS[s] for s in self.anions])
        self.anion_p = w / w.sum() if len(w) else w

    def metal(self, rng) -> str:
        return str(rng.choice(self.metals))

    def anion(self, rng) -> str:
        return str(rng.choice(self.anions, p=self.anion_p))


def draw(rng: np.random.Generator, elements: ElementDraw, focus: bool) -> Optional[Atoms]:
    """One prototype with random elements; with ``focus``, one site is an element of the data."""
    kinds = [k for k, (nm, nx, _) in PROTOTYPES.items() if (nx == 0 or elements.anions) and elements.metals]
    w = np.array([PROTOTYPES[k][2] for k in kinds])
    kind = str(rng.choice(kinds, p=w / w.sum()))
    n_metal, n_anion = PROTOTYPES[kind][:2]
    metals = [elements.metal(rng) for _ in range(n_metal)]
    anion = elements.anion(rng) if n_anion else None
    if focus and elements.data:
        pick = str(rng.choice(sorted(elements.data)))
        if pick in elements.anions and n_anion:
            anion = pick
        elif pick in elements.metals:
            metals[int(rng.integers(n_metal))] = pick
    if set(metals) | {anion} - {None} <= elements.data:
        return None  # only the data's elements: the new labels decide there
    return prototype(kind, metals, anion)


def prototype_structures(
    n: int,
    species: Sequence[int],
    data_species: Sequence[int],
    seed: int = 0,
    focus: float = 0.5,
    strain: float = 0.03,
    rattle: Sequence[float] = (0.01, 0.1),
    min_atoms: int = 8,
    tries: int = 50,
) -> List[Atoms]:
    """``n`` replay structures over the elements ``species`` (atomic numbers; see the module's recipe)."""
    elements = ElementDraw([chemical_symbols[z] for z in species], [chemical_symbols[z] for z in data_species])
    if not elements.metals:
        raise ValueError("no metal among the base model's elements: give finetune.replay.structures")
    out = []
    for k in range(n):
        rng = np.random.default_rng([int(seed), k])
        focus_k = bool(rng.random() < focus)
        for _ in range(tries):
            atoms = draw(rng, elements, focus_k)
            if atoms is not None:
                atoms = perturbed(atoms, rng, strain, rattle, min_atoms)
                if not too_close(atoms):
                    break
        else:
            continue
        atoms.info.update(config_type="replay", replay_id=k)
        out.append(atoms)
    return out
