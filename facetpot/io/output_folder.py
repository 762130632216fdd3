"""The folder a command writes into, checked before anything is computed.

    check_output_folder(path)      # ValueError with the reason, or the Path; nothing is created

A command that finds out at its first write that ``-o`` names a file, or a folder on a read-only file system,
has already spent its model calls; this check runs first and creates nothing, so a refused command leaves no
empty folder behind. The test is the one the kernel makes: the nearest existing ancestor must be a folder that
this process may write into (``access(2)`` answers ``EROFS`` for a read-only mount, for root too).
"""

from __future__ import annotations

import os
from pathlib import Path


def check_output_folder(path) -> Path:
    """``path`` as a Path, once it is an existing folder this process may write into, or can be made as one."""
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"cannot write into {folder}: it is a file, not a folder (give a folder with -o)")
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"cannot make the folder {folder}: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        reason = "a read-only file system" if _read_only(existing) else "no write permission"
        raise ValueError(f"cannot write into {folder}: {existing} is not writable ({reason})")
    return folder


def _read_only(folder: Path) -> bool:
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):  # no statvfs (Windows)
        return False
