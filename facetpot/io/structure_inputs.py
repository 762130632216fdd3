"""Structures named on a command line: files in any format ASE (or pymatgen) reads, folders, globs.

Folders are searched recursively for files in a structure format (by extension, or VASP's POSCAR/CONTCAR
names); other files there (notes, images, JSON) are skipped, while a file named on its own is always read.
Every structure gets a name: the file's base name, or where two inputs share one (``a/POSCAR``, ``b/POSCAR``)
the path from their common folder, with ``@index`` for files of several frames (``relaxed.extxyz@17``). A file
that cannot be read yields one item carrying the error instead of structures, so a screening never stops on a
bad file. ``shard=(i, n)`` keeps items i, i+n, i+2n, ...
of the whole enumeration, so that n jobs (a SLURM array) split one screening and their outputs
concatenate.
"""

from __future__ import annotations

import glob
import os
from collections import Counter
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from ase import Atoms
from ase.io import iread
from ase.io.formats import ioformats

from ..structure.adaptors import to_atoms


#: extensions of formats ASE reads, and common ones it recognises by name; a folder's other files are skipped
STRUCTURE_SUFFIXES = (
    {e for f in ioformats.values() if f.can_read for e in f.extensions}
    | {"extxyz", "vasp", "db", "mcif", "res", "xsf", "lmp", "gen", "mol", "sdf"}
) - {"json", "md", "log", "dat", "data", "ascii", "in", "out", "config", "restart", "txt", "png", "pdf"}
#: VASP file names without an extension
VASP_NAMES = ("POSCAR", "CONTCAR", "OUTCAR", "XDATCAR")


def is_structure_file(path: Path) -> bool:
    """Whether a file met in a folder looks like a structure (by extension or VASP name); hidden files do not."""
    name = path.name
    if name.startswith("."):
        return False
    if name.upper().startswith(VASP_NAMES) or name.lower().startswith("vasprun"):
        return True
    return path.suffix.lower().lstrip(".") in STRUCTURE_SUFFIXES


def _folder_files(folder: Path) -> List[Path]:
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found.extend(Path(root) / f for f in sorted(files) if is_structure_file(Path(root) / f))
    if not found:
        raise FileNotFoundError(
            f"no structure file in folder {folder} (searched recursively; formats by extension: "
            "cif, extxyz, xyz, vasp/POSCAR, traj, ...)"
        )
    return found


def display_names(paths: Sequence[Path]) -> Dict[Path, str]:
    """Each path's base name, or its path from the common folder where two paths share a base name."""
    counts = Counter(p.name for p in paths)
    clash = [p for p in paths if counts[p.name] > 1]
    root = os.path.commonpath([str(p.resolve()) for p in clash]) if clash else ""
    return {p: (os.path.relpath(p.resolve(), root) if counts[p.name] > 1 else p.name) for p in paths}


def expand_inputs(inputs: Sequence[str]) -> List[Path]:
    """Files, the structure files of folders (recursive, sorted) and glob matches, in the given order."""
    out: List[Path] = []
    for item in inputs:
        item = str(item)
        path = Path(item)
        if path.is_dir():
            out.extend(_folder_files(path))
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


def _without_reader_baggage(atoms: Atoms) -> Atoms:
    """``atoms`` without what ASE's CIF reader attaches that says nothing, which every output frame would carry in
    its extxyz header: a P 1 space group (``spacegroup``, ``unit_cell``) and an occupancy of 1 for every site's own
    element (``occupancy``, ~2,000 characters of JSON for a large cell, and ``spacegroup_kinds``). A real space
    group or a partial occupancy is kept."""
    group = atoms.info.get("spacegroup")
    if group is not None and getattr(group, "no", None) == 1:
        atoms.info.pop("spacegroup")
        atoms.info.pop("unit_cell", None)
    occupancy = atoms.info.get("occupancy")
    if isinstance(occupancy, dict) and all(
        isinstance(site, dict) and len(site) == 1 and abs(float(next(iter(site.values()))) - 1.0) < 1e-9
        for site in occupancy.values()
    ):
        atoms.info.pop("occupancy")
        if "spacegroup_kinds" in atoms.arrays:
            del atoms.arrays["spacegroup_kinds"]
    return atoms


def read_error(path: Path, exc: BaseException) -> str:
    """One line saying why ``path`` could not be read; where the reader's exception says nothing (ASE's CIF
    reader raises a bare AssertionError, others StopIteration), the file's kind instead."""
    detail = (str(exc).strip().splitlines() or [""])[0].rstrip(": ")
    if detail:
        return f"cannot read {path}: {type(exc).__name__}: {detail}"
    kind = path.suffix.lstrip(".").upper() or "structure"
    return f"cannot read {path}: not a valid {kind} file (its reader failed with a bare {type(exc).__name__})"


def _read(path: Path) -> List[Atoms]:
    """All frames of ``path`` with ASE; pymatgen (CIF, POSCAR ...) when ASE cannot and pymatgen is installed."""
    try:
        frames = [_without_reader_baggage(a) for a in iread(str(path), ":")]
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


def _xyz_frames(path: Path) -> Optional[int]:
    """Frames of an (ext)xyz file, counted from the atom-count lines without parsing them; None if malformed."""
    count = 0
    with open(path) as f:
        for line in f:
            if not line.strip():
                continue
            try:
                n = int(line.split()[0])
            except ValueError:
                return None
            for _ in range(n + 1):
                f.readline()
            count += 1
    return count


def count_structures(paths: Sequence[Path], shard: Tuple[int, int] = (0, 1)) -> Optional[int]:
    """How many items :func:`iter_structures` will give (a progress bar's total), or None when a file's frame
    count cannot be known cheaply (multi-frame formats other than xyz/extxyz/traj, malformed files)."""
    from ase.io.trajectory import Trajectory  # lazy: only for .traj inputs

    total = 0
    for path in paths:
        suffix = path.suffix.lower().lstrip(".")
        try:
            if suffix in ("xyz", "extxyz"):
                n = _xyz_frames(path)
            elif suffix == "traj":
                with Trajectory(str(path)) as traj:
                    n = len(traj)
            elif suffix in ("db", "json", "dcd", "pdb", "gro", "arc", "con"):
                n = None
            else:
                n = 1
        except Exception:  # noqa: BLE001 - an unreadable file is one (failed) item
            n = 1
        if n is None:
            return None
        total += max(n, 1)
    index, count = shard
    return len(range(index, total, count))


def read_structure(path) -> Atoms:
    """The last frame of one structure file (ASE, else pymatgen), or ValueError saying why it cannot be read
    (ASE's readers raise StopIteration, KeyError ... on broken files)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such structure file: {path}")
    try:
        return _read(path)[-1]
    except Exception as exc:  # noqa: BLE001 - every reader failure, one message
        raise ValueError(read_error(path, exc)) from None


def iter_structures(
    paths: Sequence[Path], shard: Tuple[int, int] = (0, 1)
) -> Iterator[Tuple[str, Optional[Atoms], Optional[str]]]:
    """(name, atoms, None) for every structure, or (name, None, error) for a file that cannot be read; a bad
    ``shard`` is refused here, before the first item is asked for."""
    index, count = shard
    if not 0 <= index < count:
        raise ValueError(f"shard must be I/N with 0 <= I < N (I counted from 0), got {index}/{count}")
    return _structures(list(paths), index, count)


def _structures(paths: List[Path], index: int, count: int) -> Iterator[Tuple[str, Optional[Atoms], Optional[str]]]:
    names = display_names(paths)
    k = 0
    for path in paths:
        try:
            frames = _read(path)
        except Exception as exc:  # noqa: BLE001
            if k % count == index:
                yield names[path], None, read_error(path, exc)
            k += 1
            continue
        for j, atoms in enumerate(frames):
            if k % count == index:
                yield (f"{names[path]}@{j}" if len(frames) > 1 else names[path]), atoms, None
            k += 1
