"""Structures named on a command line: files in any format ASE (or pymatgen) reads, folders, globs.

Every structure gets a name: the file's base name, with ``@index`` for files of several frames
(``relaxed.extxyz@17``). A file that cannot be read yields one item carrying the error instead of
structures, so a screening never stops on a bad file. ``shard=(i, n)`` keeps items i, i+n, i+2n, ...
of the whole enumeration, so that n jobs (a SLURM array) split one screening and their outputs
concatenate.
"""
from __future__ import annotations

import glob
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Tuple

from ase import Atoms
from ase.io import iread

from ..structures import to_atoms


def expand_inputs(inputs: Sequence[str]) -> List[Path]:
    """Files, the files of folders (sorted, not recursive) and glob matches, in the given order."""
    out: List[Path] = []
    for item in inputs:
        item = str(item)
        path = Path(item)
        if path.is_dir():
            out.extend(sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")))
        elif any(c in item for c in "*?["):
            hits = sorted(glob.glob(item))
            if not hits:
                raise FileNotFoundError(f"no file matches {item}")
            out.extend(Path(h) for h in hits)
        elif path.is_file():
            out.append(path)
        else:
            raise FileNotFoundError(f"no such file or folder: {item}")
    return out


def _read(path: Path) -> List[Atoms]:
    """All frames of ``path`` with ASE; pymatgen (CIF, POSCAR ...) when ASE cannot and pymatgen is installed."""
    try:
        frames = list(iread(str(path), ":"))
        if frames:
            return frames
        raise ValueError("no structure in the file")
    except Exception as ase_error:  # noqa: BLE001 - every reader failure becomes the structure's error
        try:
            from pymatgen.core import Structure  # lazy: optional dependency (facetpot[pymatgen])
        except ImportError:
            raise ase_error from None
        try:
            return [to_atoms(Structure.from_file(str(path)))]
        except Exception:  # noqa: BLE001
            raise ase_error from None


def read_structure(path) -> Atoms:
    """The last frame of one structure file (ASE, else pymatgen), or ValueError saying why it cannot be read
    (ASE's readers raise StopIteration, KeyError ... on broken files)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such structure file: {path}")
    try:
        return _read(path)[-1]
    except Exception as exc:  # noqa: BLE001 - every reader failure, one message
        raise ValueError(f"cannot read {path}: {type(exc).__name__}: {exc}".splitlines()[0].rstrip(": ")) from None


def iter_structures(paths: Sequence[Path], shard: Tuple[int, int] = (0, 1)
                    ) -> Iterator[Tuple[str, Optional[Atoms], Optional[str]]]:
    """(name, atoms, None) for every structure, or (name, None, error) for a file that cannot be read; a bad
    ``shard`` is refused here, before the first item is asked for."""
    index, count = shard
    if not 0 <= index < count:
        raise ValueError(f"shard must be I/N with 0 <= I < N (I counted from 0), got {index}/{count}")
    return _structures(paths, index, count)


def _structures(paths: Sequence[Path], index: int, count: int) -> Iterator[Tuple[str, Optional[Atoms], Optional[str]]]:
    k = 0
    for path in paths:
        try:
            frames = _read(path)
        except Exception as exc:  # noqa: BLE001
            if k % count == index:
                yield path.name, None, f"cannot read {path}: {type(exc).__name__}: {exc}".splitlines()[0]
            k += 1
            continue
        for j, atoms in enumerate(frames):
            if k % count == index:
                yield (f"{path.name}@{j}" if len(frames) > 1 else path.name), atoms, None
            k += 1
