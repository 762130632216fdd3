"""Streaming readers: every reader yields :class:`Frame` objects one by one, never a whole file.

* extended XYZ (any ASE-readable trajectory): labels from the attached results or from ``info`` /
  ``arrays`` keys (``energy_key``, ``forces_key``, ``stress_key``, e.g. ``REF_energy``);
* ASE databases (``.db``): the row's calculator results or ``key_value_pairs`` / ``data``;
* MPtrj's own JSON (``MPtrj_2022.9_full.json``): see :mod:`facetpot.data.mptrj`.

``iter_frames(paths)`` takes a file, a glob, or a list of them and picks the reader by suffix.
"""

from __future__ import annotations

import glob
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Union

import numpy as np
from ase.db import connect
from ase.io import iread

from .frame import Frame, as_stress_matrix
from .mptrj import read_mptrj_json

STANDARD = {"energy": "energy", "forces": "forces", "stress": "stress"}


def _label(atoms, key: str, kind: str):
    """A label from info/arrays under ``key``, else from the attached calculator results."""
    if key in atoms.info:
        return atoms.info[key]
    if key in atoms.arrays:
        return atoms.arrays[key]
    calc = atoms.calc
    if calc is not None and key == STANDARD[kind] and kind in getattr(calc, "results", {}):
        return calc.results[kind]
    return None


def atoms_to_frame(atoms, keys: Optional[Dict[str, str]] = None, name: str = "", group: str = "") -> Frame:
    keys = {**STANDARD, **(keys or {})}
    energy = _label(atoms, keys["energy"], "energy")
    forces = _label(atoms, keys["forces"], "forces")
    stress = _label(atoms, keys["stress"], "stress")
    info = atoms.info
    return Frame(
        numbers=np.asarray(atoms.numbers, dtype=np.int64),
        positions=np.asarray(atoms.positions, dtype=np.float64),
        cell=np.asarray(atoms.cell.array, dtype=np.float64),
        pbc=np.asarray(atoms.pbc, dtype=bool),
        energy=float(energy) if energy is not None else float("nan"),
        forces=None if forces is None else np.asarray(forces, dtype=np.float64),
        stress=as_stress_matrix(stress),
        weight=float(info.get(keys.get("weight", "weight"), 1.0)),
        config_type=str(info.get("config_type", "default")),
        group=str(info.get(keys.get("group", "mptrj_traj_id"), group)),
        name=name,
    )


def read_extxyz(path, keys: Optional[Dict[str, str]] = None) -> Iterator[Frame]:
    for k, atoms in enumerate(iread(str(path), index=":")):
        yield atoms_to_frame(atoms, keys, name=f"{path}:{k}")


def read_ase_db(path, keys: Optional[Dict[str, str]] = None) -> Iterator[Frame]:
    with connect(str(path)) as db:
        for row in db.select():
            atoms = row.toatoms(add_additional_information=True)
            atoms.info.update(row.key_value_pairs)
            for k, v in (row.get("data") or {}).items():
                (atoms.arrays if np.ndim(v) == 2 and len(v) == len(atoms) else atoms.info)[k] = np.asarray(v)
            yield atoms_to_frame(atoms, keys, name=f"{path}:id={row.id}")


def expand_paths(paths: Union[str, Path, Sequence[Union[str, Path]]]) -> List[Path]:
    if isinstance(paths, (str, Path)):
        paths = [paths]
    out: List[Path] = []
    for p in paths:
        hits = sorted(glob.glob(str(p))) if any(c in str(p) for c in "*?[") else [str(p)]
        if not hits:
            raise FileNotFoundError(f"no file matches {p}")
        for h in hits:
            if not Path(h).is_file():
                raise FileNotFoundError(f"data file not found: {h}")
            out.append(Path(h))
    return out


def iter_frames(paths, keys: Optional[Dict[str, str]] = None, mptrj_energy: str = "uncorrected") -> Iterator[Frame]:
    """Frames of every file in ``paths`` (files, globs), reader chosen by suffix."""
    for path in expand_paths(paths):
        suffix = path.suffix.lower()
        if suffix == ".json":
            yield from read_mptrj_json(path, energy=mptrj_energy)
        elif suffix == ".db":
            yield from read_ase_db(path, keys)
        else:
            yield from read_extxyz(path, keys)


def read_structures(paths) -> List:
    """ASE Atoms of every frame of every file in ``paths`` (files, globs; any format ASE reads), labels ignored."""
    return [atoms for path in expand_paths(paths) for atoms in iread(str(path), ":")]
