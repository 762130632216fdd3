"""Options and argument handling that several ``facet`` commands share, each declared once.

Nothing here imports torch: ``facet --help`` builds every parser from this module and stays fast.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Dict, List, Tuple, Union

from ..pretrained import DEFAULT_MODEL, PRETRAINED
from ..structure.validation import MIN_DISTANCE

#: how the help shows a model option's default
MODEL_HELP = (
    f"model file or pretrained name (default: {DEFAULT_MODEL}, the default model; see facet models). "
    "Also accepted as the first positional argument, as before"
)

#: the --dtype defaults and why they differ by command (the help shows the reason beside the default)
FAST = "float32: the fast choice for relaxations, MD and screening (as MACE-MP and SevenNet run)"
EXACT = "float64: finite differences of forces and stresses need it"
ERRORS = "float64: errors of a few meV need it"


#: D3's damping choices (``--d3 [DAMPING]``) and the one a bare ``--d3`` means
D3_DAMPINGS = ("bj", "zero")
D3_DEFAULT_DAMPING = "bj"
#: options whose value is optional -> (the words they take as their value, the value they mean alone)
OPTIONAL_VALUES = {"--d3": (D3_DAMPINGS, D3_DEFAULT_DAMPING)}


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows every option's default; flags and options without one (None, False, []) say nothing."""

    def _get_help_string(self, action):
        if (
            action.default is None
            or action.default is False
            or action.default == []
            or "default" in (action.help or "")
        ):
            return action.help
        return super()._get_help_string(action)


def add_command(sub, name: str, text: str, run) -> argparse.ArgumentParser:
    """A subcommand whose help is ``text`` and which runs ``run(args) -> exit code``."""
    p = sub.add_parser(name, help=text, description=text, formatter_class=HelpFormatter)
    p.set_defaults(func=run)
    return p


def add_model_options(p, dtype: str, why: str, structures: bool = True) -> None:
    """-m/--model, --dtype (its default and the reason), --device and, for commands reading structures,
    --min-distance."""
    p.add_argument("-m", "--model", default=None, help=MODEL_HELP)
    p.add_argument("--dtype", default=dtype, choices=["float32", "float64"], help=why)
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    if structures:
        p.add_argument(
            "--min-distance",
            type=float,
            default=MIN_DISTANCE,
            help="Å: refuse structures with atoms "
            "closer than this (overlapping atoms, where the model means nothing); 0 allows them",
        )


def add_run_folder_options(p) -> None:
    """--resume, --output, --overwrite of the commands that train into a run folder."""
    p.add_argument("--resume", action="store_true", help="continue from OUTPUT/checkpoint.pt")
    p.add_argument("--output", help="override training.output")
    p.add_argument("--overwrite", action="store_true", help="replace a finished or interrupted run in OUTPUT")


def add_output_folder(p, default=None) -> None:
    """-o/--output: the folder a command writes into (required unless it has a default)."""
    if default is None:
        p.add_argument("-o", "--output", required=True, help="output folder")
    else:
        p.add_argument("-o", "--output", default=default, help="output folder")


def add_progress_option(p, what: str = "") -> None:
    p.add_argument("--no-progress", action="store_true", help=f"no progress bar{what}")


def add_key_option(p, labels: str) -> None:
    """--key LABEL=KEY (repeatable): read a label from another key of the files."""
    p.add_argument(
        "--key",
        action="append",
        default=[],
        help=f"LABEL=KEY: read a label from another key, e.g. {labels} (repeatable)",
    )


def add_dispersion_options(p) -> None:
    """--d3 and its choices, for every command that can add dispersion."""
    p.add_argument(
        "--d3",
        nargs="?",
        const=D3_DEFAULT_DAMPING,
        default=None,
        choices=D3_DAMPINGS,
        metavar="DAMPING",
        help="add DFT-D3 dispersion (two-body; damping bj, the default, or zero; facetpot[d3])",
    )
    p.add_argument(
        "--d3-functional",
        default=None,
        help="functional whose D3 parameters apply (default pbe: the shipped models reproduce PBE)",
    )


def add_committee_option(p, what: str) -> None:
    p.add_argument(
        "--committee",
        nargs="+",
        default=None,
        metavar="MODEL",
        help=f"two or more models (files or names; same elements and cutoff) run as a committee, in place "
        f"of -m: their mean drives the run and {what}",
    )


def optional_values_kept_apart(argv: List[str]) -> List[str]:
    """``--d3 layered/`` means D3 with its default damping and the input ``layered/``: an option whose value is
    optional (``--d3 [DAMPING]``) takes the next word only when it is one of its choices (argparse would take any
    word and then refuse it). ``--d3 zero`` and ``--d3=zero`` keep their meaning."""
    out = list(argv)
    for k, word in enumerate(out):
        if word in OPTIONAL_VALUES:
            choices, alone = OPTIONAL_VALUES[word]
            if k + 1 == len(out) or out[k + 1] not in choices:
                out[k] = f"{word}={alone}"
    return out


def dispersion(args):
    """The D3Dispersion the options ask for, or None."""
    if args.d3 is None:
        if args.d3_functional is not None:
            raise ValueError("--d3-functional needs --d3")
        return None
    from ..dispersion import D3Dispersion  # lazy: facet --help start-up

    return D3Dispersion(args.d3_functional or "pbe", args.d3)


def parse_keys(pairs: List[str]) -> Dict[str, str]:
    """``--key energy=REF_energy`` options -> {"energy": "REF_energy"}."""
    bad = [kv for kv in pairs if "=" not in kv]
    if bad:
        raise ValueError(f"--key takes LABEL=KEY (e.g. energy=REF_energy, forces=REF_forces), got {bad[0]!r}")
    return dict(kv.split("=", 1) for kv in pairs)


def names_model(arg: str) -> bool:
    """A positional that names a model: a shipped name or a model file (.pt / .pth); structures never are."""
    return arg in PRETRAINED or Path(arg).suffix.lower() in (".pt", ".pth")


def model_and_inputs(args, inputs: List[str]) -> Tuple[Union[str, List[str]], List[str]]:
    """(model, structure inputs): ``--committee``, else ``-m/--model``, else a first positional that names a
    model (the older ``facet relax MODEL INPUTS`` form), else the default model."""
    model, inputs = args.model, list(inputs)
    committee = getattr(args, "committee", None)
    if committee:
        if model is not None:
            raise ValueError("give the models either with -m/--model or with --committee, not both")
        return list(committee), inputs
    if model is None and len(inputs) > 1 and names_model(inputs[0]):
        model, inputs = inputs[0], inputs[1:]
    return model or DEFAULT_MODEL, inputs


def add_structure_argument(p, text: str) -> None:
    """The one STRUCTURE of ``md``, ``eos``, ``elastic``, ``phonons``; the older ``facet md MODEL STRUCTURE`` form
    is still read (a second positional that the usage does not show)."""
    p.add_argument("input", metavar="STRUCTURE", help=text)
    p.add_argument("structure_after_model", nargs="?", help=argparse.SUPPRESS)


def model_and_structure(args) -> Tuple[Union[str, List[str]], str]:
    """(model, the one structure file) of the commands that take one structure."""
    given = [args.input] + ([args.structure_after_model] if args.structure_after_model is not None else [])
    model, inputs = model_and_inputs(args, given)
    if len(inputs) != 1:
        raise ValueError(
            f"facet {args.command} takes one structure file, got {len(inputs)}: {' '.join(inputs)} "
            "(the model goes in -m/--model)"
        )
    return model, inputs[0]
