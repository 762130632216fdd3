"""sha256 of files, each computed once per (path, size, mtime): the check of every shipped model file at load."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Dict, Tuple

_known: Dict[Tuple[str, int, int], str] = {}  # (path, size, mtime in ns) -> digest already computed


def file_sha256(path: Path) -> str:
    """The hex sha256 of the file's bytes (read in 1 MiB blocks; remembered while the file is unchanged)."""
    stat = path.stat()
    key = (str(path), stat.st_size, int(stat.st_mtime_ns))
    if key not in _known:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        _known[key] = digest.hexdigest()
    return _known[key]
