"""The ``facet`` command: the parser built from one module per subcommand, and the error handling.

Each subcommand imports its implementation when it runs (the ``# lazy: facet --help start-up`` imports): with
all of them imported at the top (torch, e3nn, ase, the trainer) ``facet --help`` took 3.3-4.5 s, as it is
0.03 s (``time facet --help``, 2-core CPU, three runs each).
"""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from . import (convert, convert_sevennet, distill, evaluate, export, lammps, material_properties, md, models,
               predict, preset, relax, train)

#: the subcommands, in the order ``facet --help`` lists them; each module has ``add_to(subparsers)``
COMMANDS = (train, preset, distill, convert, convert_sevennet, evaluate, relax, predict, md, material_properties, models,
            export, lammps)


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="facet", description="Facet interatomic potential: train, evaluate, run")
    sub = ap.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_to(sub)
    return ap


def spelled_out(argv: List[str]) -> List[str]:
    """``facet convert sevennet ...`` (the documented spelling) is the command ``convert-sevennet``."""
    if argv[:2] == ["convert", "sevennet"]:
        return [convert_sevennet.NAME, *argv[2:]]
    return argv


def main(argv: Optional[List[str]] = None) -> int:
    args = parser().parse_args(spelled_out(list(sys.argv[1:] if argv is None else argv)))
    from ..lammps.build import BuildError  # lazy: facet --help start-up (it imports torch)

    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, ImportError, BuildError, TypeError) as exc:
        print(f"facet {args.command}: error: {exc}", file=sys.stderr)
        return 2
