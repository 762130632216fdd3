"""Preprocessed on-disk cache: frames converted once into sharded numpy arrays, memory-mapped for training.

Layout of a cache folder::

    manifest.json             format, counts, species, config types, groups, rejected count, sources
    rejected.tsv              one line per rejected frame: name <TAB> reason
    shard_00000/              one folder per shard (at most ``shard_frames`` frames)
        atom_ptr.npy          (F+1,) int64, atoms of frame f are atom_ptr[f]:atom_ptr[f+1]
        numbers.npy           (A,) int16
        positions.npy         (A, 3) float64, Å
        forces.npy            (A, 3) float64, eV/Å (NaN where a frame has none)
        cell.npy              (F, 3, 3) float64
        pbc.npy               (F, 3) bool
        energy.npy            (F,) float64, eV
        stress.npy            (F, 3, 3) float64, eV/Å^3 (NaN where a frame has none)
        weight.npy            (F,) float64
        config_type.npy       (F,) int32, index into manifest["config_types"]
        group.npy             (F,) int32, index into the shard's groups.json
        groups.json           the shard's group names (MPtrj trajectory ids)

Conversion holds one shard in memory at a time, so its peak memory does not depend on the size
of the input; each shard folder and then the manifest are written atomically
(``facetpot.io.atomic_write``), the manifest last, so an interrupted conversion never looks complete.
The manifest's ``sources`` (:func:`source_fingerprints`) tell whether a cache still matches its
input files (:func:`cache_matches`).
"""

from __future__ import annotations

import json
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence

import numpy as np
from ase.data import chemical_symbols

from ..io.atomic_write import atomic_write, atomic_write_text
from ..io.format_header import check_header, make_header
from .frame import Frame
from .readers import expand_paths

FORMAT = "facetpot-cache"
FORMAT_VERSION = 1
ARRAYS = (
    "atom_ptr",
    "numbers",
    "positions",
    "forces",
    "cell",
    "pbc",
    "energy",
    "stress",
    "weight",
    "config_type",
    "group",
)


class _ShardWriter:
    def __init__(self):
        self.frames: List[Frame] = []
        self.groups: Dict[str, int] = {}

    def add(self, frame: Frame) -> None:
        self.frames.append(frame)

    def write(self, folder: Path, config_types: Dict[str, int]) -> int:
        fr = self.frames
        n_atoms = np.array([len(f.numbers) for f in fr], dtype=np.int64)
        groups: Dict[str, int] = {}
        arrays = {
            "atom_ptr": np.concatenate([[0], np.cumsum(n_atoms)]).astype(np.int64),
            "numbers": np.concatenate([f.numbers for f in fr]).astype(np.int16),
            "positions": np.concatenate([f.positions for f in fr]).astype(np.float64),
            "forces": np.concatenate(
                [f.forces if f.forces is not None else np.full((len(f.numbers), 3), np.nan) for f in fr]
            ).astype(np.float64),
            "cell": np.stack([f.cell for f in fr]).astype(np.float64),
            "pbc": np.stack([f.pbc for f in fr]).astype(bool),
            "energy": np.array([f.energy for f in fr], dtype=np.float64),
            "stress": np.stack([f.stress if f.stress is not None else np.full((3, 3), np.nan) for f in fr]),
            "weight": np.array([f.weight for f in fr], dtype=np.float64),
            "config_type": np.array(
                [config_types.setdefault(f.config_type, len(config_types)) for f in fr], dtype=np.int32
            ),
            "group": np.array([groups.setdefault(f.group or f.name, len(groups)) for f in fr], dtype=np.int32),
        }

        def write_folder(tmp: Path) -> None:
            tmp.mkdir()
            for name, arr in arrays.items():
                np.save(tmp / f"{name}.npy", arr)
            (tmp / "groups.json").write_text(json.dumps(list(groups)))

        atomic_write(folder, write_folder)
        count = len(fr)
        self.frames = []
        return count


def source_fingerprints(paths) -> List[str]:
    """One "path|size|mtime" line per input file (globs expanded): a cache built from these files
    is reused while they are unchanged."""
    return [f"{p.resolve()}|{p.stat().st_size}|{int(p.stat().st_mtime)}" for p in expand_paths(paths)]


def cache_matches(cache_dir, sources: Sequence[str]) -> bool:
    """Whether ``cache_dir`` holds a complete cache converted from files with these fingerprints."""
    manifest = Path(cache_dir) / "manifest.json"
    return manifest.is_file() and json.loads(manifest.read_text()).get("sources") == list(sources)


def _reason_key(reason: str) -> str:
    """The kind of a rejection, for the manifest's counts: the reason without its particulars."""
    return re.split(r":|\s\[", reason)[0]


@dataclass
class _Tally:
    """What a conversion has seen so far: frames in and kept, atoms, rejections by kind, atoms per element."""

    frames_in: int = 0
    frames: int = 0
    atoms: int = 0
    rejected_reasons: Dict[str, int] = field(default_factory=dict)
    elements: Dict[int, int] = field(default_factory=dict)

    def reject(self, reason: str) -> None:
        key = _reason_key(reason)
        self.rejected_reasons[key] = self.rejected_reasons.get(key, 0) + 1

    def keep(self, frame: Frame) -> None:
        self.frames += 1
        self.atoms += len(frame.numbers)
        for z in frame.numbers.tolist():
            self.elements[z] = self.elements.get(z, 0) + 1


def _rejection(frame: Frame, allowed: Optional[set]) -> Optional[str]:
    """Why ``frame`` cannot be used (its own problem, or elements outside ``allowed``), or None."""
    reason = frame.problem()
    if reason is None and allowed is not None:
        extra = sorted(set(frame.numbers.tolist()) - allowed)
        if extra:
            reason = "element(s) outside the species list: " + " ".join(chemical_symbols[z] for z in extra)
    return reason


def convert(
    frames: Iterable[Frame],
    out_dir,
    shard_frames: int = 50_000,
    species: Optional[List[int]] = None,
    sources: Optional[List[str]] = None,
    progress: bool = True,
    log=None,
) -> dict:
    """Write ``frames`` into a cache folder; returns the manifest. Frames that cannot be used are
    listed with their reason in ``rejected.tsv`` (and counted), never dropped silently."""
    log = log or sys.stderr  # looked up now, not at import: the stream may have been replaced
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / "manifest.json"
    if manifest_path.exists():
        manifest_path.unlink()  # the cache is incomplete until a new manifest is written
    allowed = set(int(z) for z in species) if species else None
    writer, tally = _ShardWriter(), _Tally()
    config_types: Dict[str, int] = {}
    shards: List[dict] = []

    def write_shard() -> None:
        name = f"shard_{len(shards):05d}"
        shards.append({"name": name, "frames": writer.write(out / name, config_types)})

    t0 = last = time.time()
    with open(out / "rejected.tsv", "w") as rej:
        rej.write("frame\treason\n")
        for frame in frames:
            tally.frames_in += 1
            reason = _rejection(frame, allowed)
            if reason is not None:
                rej.write(f"{frame.name}\t{reason}\n")
                tally.reject(reason)
                continue
            writer.add(frame)
            tally.keep(frame)
            if len(writer.frames) >= shard_frames:
                write_shard()
            if progress and time.time() - last > 5:
                last = _progress(tally, t0, log)
    if writer.frames:
        write_shard()
    manifest = _manifest(tally, shards, config_types, sources, time.time() - t0)
    atomic_write_text(manifest_path, json.dumps(manifest, indent=1))
    if progress:
        print(
            f"converted {tally.frames_in:,} frames -> {tally.frames:,} kept ({tally.atoms:,} atoms, {len(shards)} "
            f"shards), {manifest['rejected']:,} rejected (see {out / 'rejected.tsv'}) in {manifest['seconds']:.1f} s",
            file=log,
            flush=True,
        )
    return manifest


def _progress(tally: "_Tally", t0: float, log) -> float:
    """One progress line of a conversion started at ``t0``; returns the time it was printed."""
    now = time.time()
    print(
        f"  converted {tally.frames_in:,} frames ({tally.frames:,} kept, "
        f"{tally.frames_in - tally.frames:,} rejected), {tally.frames_in / (now - t0):,.0f} frames/s",
        file=log,
        flush=True,
    )
    return now


def _manifest(tally: _Tally, shards: List[dict], config_types: Dict[str, int], sources, seconds: float) -> dict:
    return {
        **make_header(FORMAT, FORMAT_VERSION),
        "frames_in": tally.frames_in,
        "frames": tally.frames,
        "atoms": tally.atoms,
        "rejected": tally.frames_in - tally.frames,
        "rejected_reasons": tally.rejected_reasons,
        "shards": shards,
        "config_types": list(config_types),
        "species": sorted(tally.elements),
        "element_counts": {str(z): c for z, c in sorted(tally.elements.items())},
        "sources": sources or [],
        "seconds": seconds,
    }


class FrameCache:
    """Read-only view of a cache folder; arrays are memory-mapped, nothing is loaded eagerly."""

    def __init__(self, path):
        self.path = Path(path)
        mpath = self.path / "manifest.json"
        if not mpath.is_file():
            raise FileNotFoundError(
                f"{self.path} is not a complete facetpot cache (no manifest.json); convert the data again"
            )
        self.manifest = json.loads(mpath.read_text())
        check_header(
            self.manifest,
            FORMAT,
            FORMAT_VERSION,
            self.path,
            "facetpot cache",
            "convert the data again (delete the folder, or facet convert)",
        )
        self.shards = []
        starts = [0]
        for sh in self.manifest["shards"]:
            folder = self.path / sh["name"]
            arrs = {name: np.load(folder / f"{name}.npy", mmap_mode="r") for name in ARRAYS}
            arrs["groups"] = json.loads((folder / "groups.json").read_text())
            self.shards.append(arrs)
            starts.append(starts[-1] + sh["frames"])
        self.starts = np.asarray(starts, dtype=np.int64)
        self.config_types = self.manifest["config_types"]

    def __len__(self) -> int:
        return int(self.starts[-1])

    def _locate(self, idx: int):
        s = int(np.searchsorted(self.starts, idx, side="right") - 1)
        return self.shards[s], idx - int(self.starts[s])

    @property
    def species(self) -> List[int]:
        """The elements (atomic numbers, sorted) of the cached frames."""
        return sorted(int(z) for z in self.manifest["species"])

    def frame_numbers(self, idx: int) -> np.ndarray:
        """(n,) atomic numbers of frame ``idx``, without reading the rest of the frame."""
        sh, i = self._locate(int(idx))
        return np.asarray(sh["numbers"][int(sh["atom_ptr"][i]) : int(sh["atom_ptr"][i + 1])])

    def energies(self, indices: Sequence[int]) -> np.ndarray:
        """(len(indices),) total energies (eV) of those frames."""
        out = np.empty(len(indices), dtype=np.float64)
        for r, idx in enumerate(indices):
            sh, i = self._locate(int(idx))
            out[r] = sh["energy"][i]
        return out

    def num_atoms(self) -> np.ndarray:
        """(F,) atoms per frame, for batching."""
        return np.concatenate([np.diff(sh["atom_ptr"]) for sh in self.shards]) if self.shards else np.zeros(0, int)

    def groups(self) -> np.ndarray:
        """(F,) a global group label per frame (shard-qualified names made unique)."""
        names: Dict[str, int] = {}
        out = []
        for sh in self.shards:
            table = np.array([names.setdefault(g, len(names)) for g in sh["groups"]], dtype=np.int64)
            out.append(table[np.asarray(sh["group"])])
        return np.concatenate(out) if out else np.zeros(0, int)

    def __getitem__(self, idx: int) -> Frame:
        sh, i = self._locate(int(idx))
        a, b = int(sh["atom_ptr"][i]), int(sh["atom_ptr"][i + 1])
        forces = np.array(sh["forces"][a:b])
        stress = np.array(sh["stress"][i])
        return Frame(
            numbers=np.array(sh["numbers"][a:b], dtype=np.int64),
            positions=np.array(sh["positions"][a:b]),
            cell=np.array(sh["cell"][i]),
            pbc=np.array(sh["pbc"][i]),
            energy=float(sh["energy"][i]),
            forces=None if np.isnan(forces).any() else forces,
            stress=None if np.isnan(stress).any() else stress,
            weight=float(sh["weight"][i]),
            config_type=self.config_types[int(sh["config_type"][i])],
            group=sh["groups"][int(sh["group"][i])],
        )
