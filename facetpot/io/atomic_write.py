"""Atomic replacement of a file or folder: write beside the target, then rename into place.

    atomic_write(path, write)      # write(tmp) creates the file (or folder) tmp; then tmp -> path

A crash or an exception inside ``write`` leaves the previous ``path`` (if any) as it was and no
temporary behind. A new file gets the mode every new file gets (0666, or ``mode``, minus the
umask) rather than mkstemp's 0600, so a model or cache one user or job writes is readable by the
others. A folder target that already exists is removed just before the rename (a rename cannot
replace a non-empty folder); a reader then sees the old folder, nothing, or the new one, never a
partial one.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Any, Callable, Optional


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path, write: Callable[[Path], Any], mode: Optional[int] = 0o666) -> Path:
    """Run ``write(tmp)`` for a temporary path beside ``path``, then move it into place.

    ``mode``: permissions of a file target before the umask (0o777 for a shared library);
    None keeps what ``write`` left."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # the target's suffix kept last, for writers that insist on one (AOTInductor's .pt2)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp{path.suffix}")
    try:
        write(tmp)
        if tmp.is_dir():
            if path.is_dir():
                shutil.rmtree(path)
        elif mode is not None:
            os.chmod(tmp, mode & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
