"""The ``facet`` command: ``facet train``, ``eval``, ``convert``, ``predict``, ``relax``, ``md``, ``eos``, ``elastic``,
``phonons``, ``export``, ``lammps``.

Each subcommand imports its implementation when it runs (the ``# lazy: facet --help start-up``
imports): with all of them imported at the top (torch, e3nn, ase, the trainer) ``facet --help``
took 3.3-4.5 s, as it is 0.03 s (``time facet --help``, 2-core CPU, three runs each).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Dict, List, Tuple, Union

from .pretrained import DEFAULT_MODEL, PRETRAINED
from .validation import MIN_DISTANCE


#: how the help shows a model option's default
MODEL_HELP = (f"model file or pretrained name (default: {DEFAULT_MODEL}, the default model; see facet models). "
              "Also accepted as the first positional argument, as before")


def _keys(pairs: List[str]) -> Dict[str, str]:
    """``--key energy=REF_energy`` options -> {"energy": "REF_energy"}."""
    bad = [kv for kv in pairs if "=" not in kv]
    if bad:
        raise ValueError(f"--key takes LABEL=KEY (e.g. energy=REF_energy, forces=REF_forces), got {bad[0]!r}")
    return dict(kv.split("=", 1) for kv in pairs)


def _names_model(arg: str) -> bool:
    """A positional that names a model: a shipped name or a model file (.pt / .pth); structures never are."""
    return arg in PRETRAINED or Path(arg).suffix.lower() in (".pt", ".pth")


def _model_and_inputs(args, inputs: List[str]) -> Tuple[Union[str, List[str]], List[str]]:
    """(model, structure inputs): ``-m/--model``, else a first positional that names a model (the older
    ``facet relax MODEL INPUTS`` form), else the default model."""
    model, inputs = args.model, list(inputs)
    committee = getattr(args, "committee", None)
    if committee:
        if model is not None:
            raise ValueError("give the models either with -m/--model or with --committee, not both")
        return list(committee), inputs
    if model is None and len(inputs) > 1 and _names_model(inputs[0]):
        model, inputs = inputs[0], inputs[1:]
    return model or DEFAULT_MODEL, inputs


def _model_and_structure(args) -> Tuple[Union[str, List[str]], str]:
    model, inputs = _model_and_inputs(args, args.input)
    if len(inputs) != 1:
        raise ValueError(f"facet {args.command} takes one structure file, got {len(inputs)}: {' '.join(inputs)} "
                         "(the model goes in -m/--model)")
    return model, inputs[0]


def _train(args) -> int:
    from .training.config import load_config  # lazy: facet --help start-up
    from .training.trainer import Trainer  # lazy: facet --help start-up

    cfg = load_config(args.config)
    if args.output:
        cfg["training"]["output"] = args.output
    Trainer(cfg, resume=args.resume, overwrite=args.overwrite).run()
    return 0


def _distill(args) -> int:
    from .distill.config import load_distill_config  # lazy: facet --help start-up
    from .distill.run import STAGES, run_distill  # lazy: facet --help start-up

    cfg = load_distill_config(args.config)
    if args.output:
        cfg["train"]["training"]["output"] = args.output
    stages = STAGES if args.stage == "all" else STAGES[: STAGES.index(args.stage) + 1]
    run_distill(cfg, stages=stages, resume=args.resume, overwrite=args.overwrite)
    return 0


def _convert(args) -> int:
    if args.inputs[0] == "sevennet":
        return _convert_sevennet(args)
    from .data.cache import convert, source_fingerprints  # lazy: facet --help start-up
    from .data.readers import iter_frames  # lazy: facet --help start-up

    keys = _keys(args.key)
    convert(iter_frames(args.inputs, keys=keys, mptrj_energy=args.mptrj_energy), args.output,
            shard_frames=args.shard_frames, sources=source_fingerprints(args.inputs))
    return 0


def _convert_sevennet(args) -> int:
    """``facet convert sevennet NAME_OR_CHECKPOINT -o OUT.pt``: an exact port of a SevenNet model."""
    from .model_file import save_model  # lazy: facet --help start-up
    from .ports.sevennet import convert_sevennet  # lazy: facet --help start-up

    from .data.readers import read_structures  # lazy: facet --help start-up
    from .ports.spline_fit import fit_splines, pair_distances  # lazy: facet --help start-up

    if len(args.inputs) != 2:
        raise ValueError("usage: facet convert sevennet NAME_OR_CHECKPOINT -o OUT.pt [--splines K --fit-data FILES]")
    model = convert_sevennet(args.inputs[1])
    if args.splines:
        if not args.fit_data:
            raise ValueError("--splines needs --fit-data: structures whose pair distances the fit is weighted by")
        ported = model.num_parameters()
        distances = pair_distances(read_structures(args.fit_data), model.cutoff)
        model, errors = fit_splines(model, distances, args.splines, args.spline_start, rank=args.spline_rank)
        model.metadata["spline_fit"] = {"num_splines": args.splines, "spline_start": args.spline_start,
                                        "spline_rank": args.spline_rank,
                                        "distances": len(distances), "relative_rms_error_per_layer": errors}
        print(f"spline fit on {len(distances):,} pair distances, relative RMS error of the radial weights per "
              f"layer: {' '.join(f'{e:.2e}' for e in errors)}; parameters {ported:,} -> {model.num_parameters():,}")
    save_model(model, args.output, metadata=model.metadata)
    print(f"wrote {args.output}: {model.metadata['source']}, {model.num_parameters():,} parameters, "
          f"{len(model.species)} elements, cutoff {model.cutoff} A")
    return 0


def _relax(args) -> int:
    from .workflows.relax import relax_files  # lazy: facet --help start-up

    model, inputs = _model_and_inputs(args, args.inputs)
    try:
        shard = tuple(int(x) for x in args.shard.split("/"))
        assert len(shard) == 2
    except (ValueError, AssertionError):
        raise ValueError(f"--shard must be I/N (e.g. 0/10), got {args.shard}") from None
    total, converged, failed = relax_files(model, inputs, args.output, shard=shard, device=args.device,
                                           dtype=args.dtype, progress=not args.no_progress, fmax=args.fmax,
                                           max_steps=args.max_steps, cell=not args.positions_only,
                                           optimizer=args.optimizer, symmetry=args.symmetry, max_atoms=args.max_atoms,
                                           min_distance=args.min_distance, dispersion=_dispersion(args))
    relaxed = Path(args.output) / "relaxed.extxyz"
    print(f"{total} structure(s): {converged} converged, {total - converged - failed} not converged, {failed} "
          f"failed; {Path(args.output) / 'results.csv'}" + (f", {relaxed}" if total > failed else " (nothing relaxed)"),
          file=sys.stderr)
    return 0 if converged == total else 1


def _predict(args) -> int:
    from .workflows.predict_files import predict_files  # lazy: facet --help start-up

    model, inputs = _model_and_inputs(args, args.inputs)
    total, failed = predict_files(model, inputs, args.output, device=args.device, dtype=args.dtype,
                                  batch_atoms=args.batch_atoms, progress=not args.no_progress,
                                  min_distance=args.min_distance)
    print(f"{total} structure(s), {failed} failed; {Path(args.output) / 'results.csv'}, "
          f"{Path(args.output) / 'predicted.extxyz'}", file=sys.stderr)
    return 0 if failed == 0 else 1


def _md(args) -> int:
    from .workflows.md import run_md  # lazy: facet --help start-up

    model, structure = _model_and_structure(args)
    step = run_md(model, structure, args.output, ensemble=args.ensemble, steps=args.steps,
                  timestep_fs=args.timestep, temperature=args.temperature, pressure_gpa=args.pressure,
                  friction=args.friction, tdamp_fs=args.tdamp, pdamp_fs=args.pdamp, log_every=args.log_every,
                  traj_every=args.traj_every, seed=args.seed, restart=args.restart, device=args.device,
                  dtype=args.dtype, progress=not args.no_progress, min_distance=args.min_distance,
                  dispersion=_dispersion(args))
    print(f"MD at step {step}: {Path(args.output) / 'trajectory.extxyz'}, {Path(args.output) / 'thermo.csv'}", file=sys.stderr)
    return 0


def _property(args) -> int:
    from .workflows.material_properties import compute_for_file  # lazy: facet --help start-up

    model, structure = _model_and_structure(args)
    options = {"supercell": args.supercell} if args.command == "phonons" and args.supercell else {}
    result = compute_for_file(args.command, model, structure, args.output, device=args.device,
                              dtype=args.dtype, min_distance=args.min_distance, progress=not args.no_progress,
                              dispersion=_dispersion(args), **options)
    shown = {k: v for k, v in result.items() if not isinstance(v, (list, dict)) or k in ("C_voigt_GPa", "band_path")}
    print(json.dumps(shown, indent=1))
    names = (f"{args.command}.json", f"{args.command}.png", "phonopy_params.yaml")
    written = [str(Path(args.output) / n) for n in names if (Path(args.output) / n).is_file()]
    print(f"written: {', '.join(written)}", file=sys.stderr)
    return 0


def _models(args) -> int:
    from .pretrained import available  # lazy: facet --help start-up

    models = available()
    if not models:
        print("no pretrained model ships with this facetpot yet")
    for m in models:
        print(f"{m.name}{' (default)' if m.name == DEFAULT_MODEL else ''}: {m.description}\n    card: {m.card_path}")
    return 0


def _eval(args) -> int:
    from .evaluate import evaluate_model  # lazy: facet --help start-up

    model, data = _model_and_inputs(args, args.data)
    report = evaluate_model(model, data, out_dir=args.output, keys=_keys(args.key),
                            device=args.device, dtype=args.dtype, batch_atoms=args.batch_atoms,
                            plots=not args.no_plots, progress=not args.no_progress)
    print(json.dumps(report["all"], indent=1))
    print(f"report: {Path(args.output) / 'report.json'}" + ("" if args.no_plots else " (+ parity plots with matplotlib)"),
          file=sys.stderr)
    return 0


def _export(args) -> int:
    from ase.data import chemical_symbols  # lazy: facet --help start-up

    from .export.aoti import export_aoti  # lazy: facet --help start-up
    from .export.torchscript import export_torchscript  # lazy: facet --help start-up
    from .model_file import resolve_model  # lazy: facet --help start-up

    model = resolve_model(args.model or DEFAULT_MODEL, device="cpu", dtype=args.dtype)  # None: the file's own dtype
    dtype = str(model.dtype).replace("torch.", "")
    export = export_torchscript if args.format == "torchscript" else export_aoti
    path = export(model, args.output, dtype=dtype, device=args.device)
    print(f"wrote {path} ({args.format}, {dtype}, {args.device}; cutoff {model.cutoff} A, "
          f"{model.num_layers} layers, species {' '.join(chemical_symbols[z] for z in model.species)})")
    return 0


def _lammps(args) -> int:
    from .lammps.build import build_plugin, plugin_status  # lazy: facet --help start-up

    if args.action == "build":
        path = build_plugin(force=args.force, verbose=not args.quiet)
        print(f"pair_style facet plugin: {path}")
    else:
        print(plugin_status())
    return 0


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Shows every option's default; flags and options without one (None, False, []) say nothing."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False or action.default == [] or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def _sub(sub, name: str, text: str):
    return sub.add_parser(name, help=text, description=text, formatter_class=_Help)


def _common(p, dtype: str, why: str, structures: bool = True) -> None:
    """Options every model-running command shares, declared once."""
    p.add_argument("-m", "--model", default=None, help=MODEL_HELP)
    p.add_argument("--dtype", default=dtype, choices=["float32", "float64"], help=why)
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    if structures:
        p.add_argument("--min-distance", type=float, default=MIN_DISTANCE, help="Å: refuse structures with atoms "
                       "closer than this (overlapping atoms, where the model means nothing); 0 allows them")


def _dispersion_options(p) -> None:
    """--d3 and its choices, declared once for every command that can add dispersion."""
    p.add_argument("--d3", nargs="?", const="bj", default=None, choices=["bj", "zero"], metavar="DAMPING",
                   help="add DFT-D3 dispersion (two-body; damping bj, the default, or zero; facetpot[d3])")
    p.add_argument("--d3-functional", default=None, help="functional whose D3 parameters apply (default pbe: the "
                   "shipped models reproduce PBE)")


def _committee_option(p, what: str) -> None:
    p.add_argument("--committee", nargs="+", default=None, metavar="MODEL",
                   help=f"two or more models (files or names; same elements and cutoff) run as a committee, in place "
                   f"of -m: their mean drives the run and {what}")


def _dispersion(args):
    """The D3Dispersion the options ask for, or None."""
    if args.d3 is None:
        if args.d3_functional is not None:
            raise ValueError("--d3-functional needs --d3")
        return None
    from .dispersion import D3Dispersion  # lazy: facet --help start-up

    return D3Dispersion(args.d3_functional or "pbe", args.d3)


FAST = "float32: the fast choice for relaxations, MD and screening (as MACE-MP and SevenNet run)"
EXACT = "float64: finite differences of forces and stresses need it"


def _add_training(sub) -> None:
    t = _sub(sub, "train", "train or fine-tune a model from a YAML config")
    t.add_argument("config", help="YAML config (examples in training/)")
    t.add_argument("--resume", action="store_true", help="continue from OUTPUT/checkpoint.pt")
    t.add_argument("--output", help="override training.output")
    t.add_argument("--overwrite", action="store_true", help="replace a finished or interrupted run in OUTPUT")
    t.set_defaults(func=_train)
    d = _sub(sub, "distill", "train a small model on a teacher's labels of generated structures "
             "(structures -> teacher labels -> facet train)")
    d.add_argument("config", help="YAML: teacher, structures, labels + the training sections (example: training/distill_si/distill_si.yaml)")
    d.add_argument("--stage", choices=["generate", "label", "train", "all"], default="all",
                   help="stop after this stage; a rerun skips what is done")
    d.add_argument("--resume", action="store_true", help="continue training from OUTPUT/checkpoint.pt")
    d.add_argument("--output", help="override training.output")
    d.add_argument("--overwrite", action="store_true", help="replace a finished or interrupted training run in OUTPUT")
    d.set_defaults(func=_distill)
    c = _sub(sub, "convert", "convert data files into an on-disk training cache, or (facet convert sevennet "
             "NAME_OR_CHECKPOINT -o OUT.pt) a SevenNet model into a facetpot model")
    c.add_argument("inputs", nargs="+", help="extxyz / ASE .db / MPtrj .json files or globs; or: sevennet "
                   "NAME_OR_CHECKPOINT (7net-0, 7net-l3i5 or a checkpoint file; needs facetpot[sevennet])")
    c.add_argument("-o", "--output", required=True, help="cache folder (or the model file, for sevennet)")
    c.add_argument("--key", action="append", default=[], help="LABEL=KEY: read a label from another key, e.g. "
                   "energy=REF_energy, forces=REF_forces, stress=REF_stress (repeatable)")
    c.add_argument("--mptrj-energy", default="uncorrected", choices=["uncorrected", "corrected"],
                   help="MPtrj JSON: which energy is the label")
    c.add_argument("--shard-frames", type=int, default=50_000, help="frames per cache shard")
    c.add_argument("--splines", type=int, default=0, help="sevennet: replace the radial MLPs by K splines (Facet)")
    c.add_argument("--fit-data", nargs="+", default=[], help="sevennet --splines: structures (any ASE format) "
                   "whose pair distances weight the least-squares fit")
    c.add_argument("--spline-start", type=float, default=0.0, help="sevennet --splines: first knot (Å)")
    c.add_argument("--spline-rank", type=int, default=0, help="sevennet --splines: R > 0 fits the R principal "
                   "radial functions of each layer and mixes them (K R + R n_weights parameters per layer)")
    c.set_defaults(func=_convert)
    e = _sub(sub, "eval", "errors of a model on labelled data (energy, forces, stress): MAE/RMSE overall and per "
             "config_type in OUTPUT/report.json, parity plots")
    e.add_argument("data", nargs="+", help="labelled structures: extxyz / ASE .db / MPtrj .json files or globs, or a "
                   "training cache folder")
    e.add_argument("-o", "--output", default="eval", help="output folder")
    e.add_argument("--key", action="append", default=[], help="LABEL=KEY: read a label from another key, e.g. "
                   "energy=REF_energy (repeatable; labels: energy, forces, stress)")
    _common(e, "float64", "float64: errors of a few meV need it", structures=False)
    e.add_argument("--batch-atoms", type=int, default=2048, help="atoms per model call")
    e.add_argument("--no-plots", action="store_true", help="skip the parity plots")
    e.add_argument("--no-progress", action="store_true", help="no progress bar")
    e.set_defaults(func=_eval)


def _add_workflows(sub) -> None:
    r = _sub(sub, "relax", "relax many structures (positions and cell), batched: OUTPUT/relaxed.extxyz and results.csv")
    r.add_argument("inputs", nargs="+", help="structure files in any format ASE or pymatgen reads, folders, globs")
    r.add_argument("-o", "--output", required=True, help="output folder")
    _common(r, "float32", FAST)
    r.add_argument("--fmax", type=float, default=0.05, help="force convergence, eV/Å")
    r.add_argument("--max-steps", type=int, default=500, help="optimizer steps per structure")
    r.add_argument("--positions-only", action="store_true", help="keep the cell fixed (default: relax it too)")
    r.add_argument("--symmetry", action="store_true", help="keep the space group (ASE FixSymmetry)")
    r.add_argument("--optimizer", default="fire", choices=["fire", "bfgs"], help="ASE optimizer")
    r.add_argument("--shard", default="0/1", help="I/N: relax every N-th structure from the I-th, I counted from 0 "
                   "(a SLURM array --array=0-9 with --shard $SLURM_ARRAY_TASK_ID/10)")
    r.add_argument("--max-atoms", type=int, default=2000, help="atoms relaxed together in one batch")
    _dispersion_options(r)
    _committee_option(r, "results.csv reports each structure's largest force std at its last step")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    r.set_defaults(func=_relax)
    pr = _sub(sub, "predict", "energy, forces and stress of many structures, batched: OUTPUT/results.csv and "
              "predicted.extxyz")
    pr.add_argument("inputs", nargs="+", help="structure files in any format ASE or pymatgen reads, folders, globs")
    pr.add_argument("-o", "--output", required=True, help="output folder")
    _common(pr, "float32", FAST)
    pr.add_argument("--batch-atoms", type=int, default=None, help="atoms per model call (default: 512 on a CPU, "
                    "4096 on CUDA)")
    pr.add_argument("--no-progress", action="store_true", help="no progress bar")
    pr.set_defaults(func=_predict)
    m = _sub(sub, "md", "molecular dynamics (NVE, Langevin or Nose-Hoover NVT, MTK NPT): OUTPUT/trajectory.extxyz, "
             "thermo.csv")
    m.add_argument("input", nargs="+", help="structure file (any format ASE or pymatgen reads; its last frame)")
    m.add_argument("-o", "--output", required=True, help="output folder")
    _common(m, "float32", FAST)
    m.add_argument("--ensemble", default="nve", choices=["nve", "langevin", "nhc", "npt"], help="integrator")
    m.add_argument("--steps", type=int, default=1000, help="total steps (a restart continues up to this)")
    m.add_argument("--timestep", type=float, default=1.0, help="fs")
    m.add_argument("--temperature", type=float, default=300.0, help="K (initial velocities; target of NVT/NPT)")
    m.add_argument("--pressure", type=float, default=0.0, help="GPa (npt)")
    m.add_argument("--friction", type=float, default=0.01, help="1/fs (langevin)")
    m.add_argument("--tdamp", type=float, default=100.0, help="fs (nhc, npt)")
    m.add_argument("--pdamp", type=float, default=1000.0, help="fs (npt)")
    m.add_argument("--log-every", type=int, default=10, help="steps between thermo.csv rows")
    m.add_argument("--traj-every", type=int, default=10, help="steps between trajectory frames")
    m.add_argument("--seed", type=int, default=0, help="initial velocities (and Langevin noise)")
    m.add_argument("--restart", action="store_true", help="continue from OUTPUT/trajectory.extxyz")
    _dispersion_options(m)
    _committee_option(m, "thermo.csv gets the largest force std of every logged step")
    m.add_argument("--no-progress", action="store_true", help="no progress bar")
    m.set_defaults(func=_md)
    for kind, text in (("eos", "equation of state: E(V), Birch-Murnaghan V0 and bulk modulus; eos.png"),
                       ("elastic", "elastic tensor (GPa) and Voigt-Reuss-Hill moduli"),
                       ("phonons", "phonon band structure (seekpath path), DOS, thermal properties, imaginary modes")):
        pp = _sub(sub, kind, f"{text} (matcalc/phonopy: facetpot[properties])")
        pp.add_argument("input", nargs="+", help="crystal structure file (any format ASE or pymatgen reads; its last frame)")
        pp.add_argument("-o", "--output", required=True, help="output folder")
        _common(pp, "float64", EXACT)
        if kind == "phonons":
            pp.add_argument("--supercell", type=int, nargs=3, help="supercell diagonal (default: at least 20 Å)")
        _dispersion_options(pp)
        pp.add_argument("--no-progress", action="store_true", help="no progress bar (model calls)")
        pp.set_defaults(func=_property)


def _add_deployment(sub) -> None:
    sub.add_parser("models", help="list the pretrained models shipped with facetpot").set_defaults(func=_models)
    x = _sub(sub, "export", "export a model for LAMMPS / C++ (TorchScript) or AOTInductor")
    x.add_argument("model", nargs="?", default=None, help=f"model file or pretrained name (default: {DEFAULT_MODEL})")
    x.add_argument("-o", "--output", required=True, help="output file (.pt for torchscript, .pt2 for aoti)")
    x.add_argument("--format", default="torchscript", choices=["torchscript", "aoti"], help="archive kind")
    x.add_argument("--dtype", default=None, choices=["float32", "float64"], help="default: the model file's")
    x.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where the archive computes")
    x.set_defaults(func=_export)
    lm = _sub(sub, "lammps", "build the LAMMPS plugin (pair_style facet) or show its state")
    lm.add_argument("action", choices=["build", "status"], help="build: compile (cached); status: where it is")
    lm.add_argument("--force", action="store_true", help="rebuild even if up to date")
    lm.add_argument("--quiet", action="store_true", help="no build messages")
    lm.set_defaults(func=_lammps)


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="facet", description="Facet interatomic potential: train, evaluate, run")
    sub = ap.add_subparsers(dest="command", required=True)
    _add_training(sub)
    _add_workflows(sub)
    _add_deployment(sub)
    return ap


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    from .lammps.build import BuildError  # lazy: facet --help start-up (it imports torch)

    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, ImportError, BuildError, TypeError) as exc:
        print(f"facet {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
