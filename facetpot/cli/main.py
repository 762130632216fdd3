"""The ``facet`` command: the parser built from one module per subcommand, and the error handling.

Each subcommand imports its implementation when it runs (the ``# lazy: facet --help start-up`` imports): with
all of them imported at the top (torch, e3nn, ase, the trainer) ``facet --help`` took 3.3-4.5 s, as it is
0.03 s (``time facet --help``, 2-core CPU, three runs each).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import warnings
from typing import List, Optional

from .. import __version__
from .options import optional_values_kept_apart
from . import (
    convert,
    convert_sevennet,
    distill,
    evaluate,
    export,
    lammps,
    material_properties,
    md,
    models,
    predict,
    preset,
    relax,
    train,
)

#: the subcommands, in the order ``facet --help`` lists them; each module has ``add_to(subparsers)``
COMMANDS = (
    train,
    preset,
    distill,
    convert,
    convert_sevennet,
    evaluate,
    relax,
    predict,
    md,
    material_properties,
    models,
    export,
    lammps,
)


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="facet", description="Facet interatomic potential: train, evaluate, run")
    ap.add_argument("--version", action="version", version=f"facet (facetpot) {__version__}")
    sub = ap.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_to(sub)
    return ap


def spelled_out(argv: List[str]) -> List[str]:
    """``facet convert sevennet ...`` (the documented spelling) is the command ``convert-sevennet``."""
    if argv[:2] == ["convert", "sevennet"]:
        return [convert_sevennet.NAME, *argv[2:]]
    return argv


#: what an interrupted command (Ctrl-C, or SIGTERM from a batch system) has kept and how to go on
INTERRUPTED = {
    "relax": "the finished structures are in OUTPUT/results.csv and relaxed.extxyz; the same command with "
    "--resume relaxes the rest",
    "md": "the trajectory up to the last saved frame is in OUTPUT; the same command with --restart goes on",
    "train": "checkpoint.pt in the run's output folder holds the last saved step; the same command with "
    "--resume goes on from it",
    "distill": "the finished stages are kept; the same command with --resume goes on",
    "predict": "the structures evaluated so far are in OUTPUT/results.csv and predicted.extxyz",
}

#: exit code of a command stopped by Ctrl-C or SIGTERM (128 + SIGINT, as the shell reports it)
EXIT_INTERRUPTED = 130


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    """A warning as the command line shows it: the text, not the source line that raised it."""
    return f"facet: warning: {message}\n"


def main(argv: Optional[List[str]] = None) -> int:
    args = parser().parse_args(spelled_out(optional_values_kept_apart(list(sys.argv[1:] if argv is None else argv))))
    from ..lammps.build import BuildError  # lazy: facet --help start-up (it imports torch)

    shown, warnings.formatwarning = warnings.formatwarning, _one_line_warning
    main_thread = threading.current_thread() is threading.main_thread()  # signal handlers live there only
    previous = signal.signal(signal.SIGTERM, _interrupt) if main_thread else None  # a batch system's stop: files
    try:  # closed as after Ctrl-C
        return args.func(args)
    except (ValueError, FileNotFoundError, ImportError, BuildError) as exc:  # what facetpot raises for users; any
        # other exception is a bug and keeps its traceback
        print(f"facet {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        kept = INTERRUPTED.get(args.command)
        if kept and getattr(args, "output", None):
            kept = kept.replace("OUTPUT", str(args.output))
        print(f"\nfacet {args.command}: interrupted" + (f"; {kept}" if kept else ""), file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        warnings.formatwarning = shown
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
