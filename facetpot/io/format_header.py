"""The header every facetpot file carries, and the one check of it.

    {"format": NAME, "format_version": V, "facetpot_version": "x.y.z"}

Model files (``facetpot-model``), training checkpoints (``facetpot-checkpoint``), data caches
(``facetpot-cache``) and exports (``facetpot-torchscript``, ``facetpot-aoti``) all start with it.
A reader calls :func:`check_header`, which refuses a file of another kind, or of a format version
this facetpot does not read, with a message that names the file and says what to do.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Sequence

from .. import __version__


class FormatError(ValueError):
    """A file is not of the expected kind or format version."""


def make_header(name: str, version: int) -> Dict[str, Any]:
    return {"format": name, "format_version": int(version), "facetpot_version": __version__}


def check_header(
    header: Mapping[str, Any], name: str, version: int, source, what: str, remedy: str = "", older: Sequence[int] = ()
) -> int:
    """The format version of ``header``: raise :class:`FormatError` unless it says format ``name``, version
    ``version`` or one of the ``older`` versions the reader upgrades.

    ``source`` names the file in the message, ``what`` the kind of file ("facetpot model file"),
    ``remedy`` what the user should do about another version ("export the model again")."""
    got = header.get("format")
    if got != name:
        raise FormatError(f"{source} is not a {what} (no '{name}' header" + (f"; it says {got!r})" if got else ")"))
    found = header.get("format_version")
    if found in older:
        return int(found)
    if found != version:
        writer = header.get("facetpot_version", "?")
        raise FormatError(
            f"{source} has {what} format version {found} (written by facetpot {writer}); this facetpot "
            f"({__version__}) reads version {version}"
            + (f" (and upgrades {', '.join(map(str, older))})" if older else "")
            + (f": {remedy}" if remedy else "")
        )
    return int(found)
