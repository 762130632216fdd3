"""Streaming reader of MPtrj's own JSON (``MPtrj_2022.9_full.json``, ~12 GB).

Layout: ``{mp_id: {frame_id: {"structure": <pymatgen dict>, "uncorrected_total_energy",
"corrected_total_energy", "energy_per_atom", "ef_per_atom", "force", "stress", "magmom", ...}}}``.

The file is read in 1 MB blocks; ``json.JSONDecoder.raw_decode`` parses one trajectory (one
``mp_id`` value) at a time, so memory is bounded by the largest trajectory, not the file.
Energies: ``uncorrected_total_energy`` by default (the convention of SevenNet-0 / MACE-MP-0),
``corrected_total_energy`` on request. Stress: MPtrj stores VASP's stress in kBar with the
compressive-positive sign; it is converted to eV/Å^3 with ASE's sign: sigma_ASE = -KBAR_TO_EV_PER_A3 * s
(``facetpot.structure.units``: 1 kBar = 0.1 GPa = 0.1/160.2 eV/Å^3).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator, Tuple

import numpy as np
from ase.data import atomic_numbers

from ..structure.units import KBAR_TO_EV_PER_A3
from .frame import Frame

BLOCK = 1 << 20


class _Stream:
    """A text stream with a sliding buffer and helpers for hand-parsing the outer JSON object."""

    def __init__(self, path: Path):
        self.f = open(path, "r", encoding="utf-8")
        self.buf = ""
        self.pos = 0
        self.eof = False
        self.offset = 0  # characters consumed before buf, for error messages

    def _more(self) -> bool:
        if self.eof:
            return False
        chunk = self.f.read(max(BLOCK, len(self.buf) - self.pos))  # geometric growth: linear time
        if not chunk:
            self.eof = True
            return False
        self.offset += self.pos
        self.buf = self.buf[self.pos :] + chunk
        self.pos = 0
        return True

    def peek(self) -> str:
        while True:
            while self.pos < len(self.buf) and self.buf[self.pos] in " \t\r\n":
                self.pos += 1
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self._more():
                return ""

    def expect(self, ch: str) -> None:
        got = self.peek()
        if got != ch:
            raise ValueError(
                f"malformed MPtrj JSON at character {self.offset + self.pos}: expected {ch!r}, got {got!r}"
            )
        self.pos += 1

    def value(self, decoder: json.JSONDecoder):
        self.peek()
        while True:
            try:
                obj, end = decoder.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as exc:
                if self._more():
                    continue
                raise ValueError(
                    f"malformed or truncated MPtrj JSON near character {self.offset + self.pos}: {exc}"
                ) from exc
            # a value at the very end of the buffer may be cut (a number): make sure more did not follow
            if end == len(self.buf) and not self.eof:
                if self._more():
                    continue
            self.pos = end
            return obj

    def close(self):
        self.f.close()


def iter_mptrj_entries(path) -> Iterator[Tuple[str, str, dict]]:
    """(mp_id, frame_id, entry) for every frame, streaming."""
    s = _Stream(Path(path))
    decoder = json.JSONDecoder()
    try:
        s.expect("{")
        if s.peek() == "}":
            return
        while True:
            mp_id = s.value(decoder)
            s.expect(":")
            frames = s.value(decoder)
            if not isinstance(frames, dict):
                raise ValueError(f"malformed MPtrj JSON: entry {mp_id!r} is not an object of frames")
            for frame_id, entry in frames.items():
                yield str(mp_id), str(frame_id), entry
            nxt = s.peek()
            if nxt == ",":
                s.pos += 1
                continue
            if nxt == "}":
                return
            raise ValueError(f"malformed MPtrj JSON after entry {mp_id!r}: got {nxt!r}")
    finally:
        s.close()


def entry_to_frame(mp_id: str, frame_id: str, entry: dict, energy: str = "uncorrected", name: str = "") -> Frame:
    st = entry["structure"]
    lattice = np.asarray(st["lattice"]["matrix"], dtype=np.float64)
    numbers, positions = [], []
    for site in st["sites"]:
        species = site["species"]
        if len(species) != 1 or abs(float(species[0].get("occu", 1.0)) - 1.0) > 1e-6:
            raise ValueError("disordered site (partial occupancy)")
        el = species[0]["element"]
        if el not in atomic_numbers:
            raise ValueError(f"unknown element {el!r}")
        numbers.append(atomic_numbers[el])
        if "xyz" in site:
            positions.append(site["xyz"])
        else:
            positions.append(np.asarray(site["abc"], dtype=float) @ lattice)
    key = {"uncorrected": "uncorrected_total_energy", "corrected": "corrected_total_energy"}[energy]
    e = entry.get(key)
    stress = entry.get("stress")
    forces = entry.get("force")
    return Frame(
        numbers=np.asarray(numbers, dtype=np.int64),
        positions=np.asarray(positions, dtype=np.float64).reshape(-1, 3),
        cell=lattice,
        pbc=np.ones(3, dtype=bool),
        energy=float(e) if e is not None else float("nan"),
        forces=None if forces is None else np.asarray(forces, dtype=np.float64),
        stress=None if stress is None else -KBAR_TO_EV_PER_A3 * np.asarray(stress, dtype=np.float64).reshape(3, 3),
        config_type="mptrj",
        group=str(entry.get("mp_id", mp_id)),
        name=name or f"{mp_id}/{frame_id}",
    )


def read_mptrj_json(path, energy: str = "uncorrected") -> Iterator[Frame]:
    if energy not in ("uncorrected", "corrected"):
        raise ValueError(f"mptrj energy must be 'uncorrected' or 'corrected', got {energy!r}")
    for mp_id, frame_id, entry in iter_mptrj_entries(path):
        try:
            yield entry_to_frame(mp_id, frame_id, entry, energy, name=f"{Path(path).name}:{mp_id}/{frame_id}")
        except (KeyError, ValueError, TypeError) as exc:
            # a broken entry becomes a frame that the converter rejects with this reason
            yield Frame(
                numbers=np.zeros(0, dtype=np.int64),
                positions=np.zeros((0, 3)),
                cell=np.eye(3),
                pbc=np.ones(3, dtype=bool),
                energy=float("nan"),
                group=mp_id,
                name=f"{Path(path).name}:{mp_id}/{frame_id} ({type(exc).__name__}: {exc})",
            )
