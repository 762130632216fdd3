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

    keys = dict(kv.split("=", 1) for kv in args.key)
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

    try:
        shard = tuple(int(x) for x in args.shard.split("/"))
        assert len(shard) == 2
    except (ValueError, AssertionError):
        raise ValueError(f"--shard must be I/N (e.g. 0/10), got {args.shard}") from None
    total, converged, failed = relax_files(args.model, args.inputs, args.output, shard=shard, device=args.device,
                                           dtype=args.dtype, progress=not args.no_progress, fmax=args.fmax,
                                           max_steps=args.max_steps, cell=not args.positions_only,
                                           optimizer=args.optimizer, symmetry=args.symmetry, max_atoms=args.max_atoms)
    print(f"{total} structure(s): {converged} converged, {total - converged - failed} not converged, {failed} "
          f"failed; {Path(args.output) / 'results.csv'}, {Path(args.output) / 'relaxed.extxyz'}", file=sys.stderr)
    return 0 if converged == total else 1


def _predict(args) -> int:
    from .workflows.predict_files import predict_files  # lazy: facet --help start-up

    if args.batch_atoms is not None and args.batch_atoms < 1:
        raise ValueError(f"--batch-atoms must be at least 1, got {args.batch_atoms}")
    total, failed = predict_files(args.model, args.inputs, args.output, device=args.device, dtype=args.dtype,
                                  batch_atoms=args.batch_atoms, progress=not args.no_progress)
    print(f"{total} structure(s), {failed} failed; {Path(args.output) / 'results.csv'}, "
          f"{Path(args.output) / 'predicted.extxyz'}", file=sys.stderr)
    return 0 if failed == 0 else 1


def _md(args) -> int:
    from .workflows.md import run_md  # lazy: facet --help start-up

    step = run_md(args.model, args.input, args.output, ensemble=args.ensemble, steps=args.steps,
                  timestep_fs=args.timestep, temperature=args.temperature, pressure_gpa=args.pressure,
                  friction=args.friction, tdamp_fs=args.tdamp, pdamp_fs=args.pdamp, log_every=args.log_every,
                  traj_every=args.traj_every, seed=args.seed, restart=args.restart, device=args.device,
                  dtype=args.dtype, progress=not args.no_progress)
    print(f"MD at step {step}: {Path(args.output) / 'trajectory.extxyz'}, {Path(args.output) / 'thermo.csv'}", file=sys.stderr)
    return 0


def _property(args) -> int:
    from .workflows.material_properties import compute_for_file  # lazy: facet --help start-up

    options = {"supercell": args.supercell} if args.command == "phonons" and args.supercell else {}
    result = compute_for_file(args.command, args.model, args.input, args.output, device=args.device,
                              dtype=args.dtype, **options)
    shown = {k: v for k, v in result.items() if not isinstance(v, (list, dict)) or k in ("C_voigt_GPa", "band_path")}
    print(json.dumps(shown, indent=1))
    print(f"written to {Path(args.output) / (args.command + '.json')} (+ .png with matplotlib)", file=sys.stderr)
    return 0


def _models(args) -> int:
    from .pretrained import DEFAULT_MODEL, available  # lazy: facet --help start-up

    models = available()
    if not models:
        print("no pretrained model ships with this facetpot yet")
    for m in models:
        print(f"{m.name}{' (default)' if m.name == DEFAULT_MODEL else ''}: {m.description}\n    card: {m.card_path}")
    return 0


def _eval(args) -> int:
    from .evaluate import evaluate_model  # lazy: facet --help start-up

    report = evaluate_model(args.model, args.data, out_dir=args.output, keys=dict(kv.split("=", 1) for kv in args.key),
                            device=args.device, dtype=args.dtype, batch_atoms=args.batch_atoms,
                            plots=not args.no_plots)
    print(json.dumps(report["all"], indent=1))
    return 0


def _export(args) -> int:
    from ase.data import chemical_symbols  # lazy: facet --help start-up

    from .export.aoti import export_aoti  # lazy: facet --help start-up
    from .export.torchscript import export_torchscript  # lazy: facet --help start-up
    from .model_file import resolve_model  # lazy: facet --help start-up

    model = resolve_model(args.model, device="cpu", dtype=args.dtype)  # None: the file's own dtype
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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="facet", description="Facet interatomic potential: train, evaluate, convert data")
    sub = ap.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train or fine-tune a model from a YAML config")
    t.add_argument("config")
    t.add_argument("--resume", action="store_true", help="continue from OUTPUT/checkpoint.pt")
    t.add_argument("--output", help="override training.output")
    t.add_argument("--overwrite", action="store_true", help="replace a finished or interrupted run in OUTPUT")
    t.set_defaults(func=_train)
    d = sub.add_parser("distill", help="train a small model on a teacher's labels of generated structures "
                       "(structures -> teacher labels -> facet train)")
    d.add_argument("config", help="YAML: teacher, structures, labels + the training sections (example: training/distill_si/distill_si.yaml)")
    d.add_argument("--stage", choices=["generate", "label", "train", "all"], default="all",
                   help="stop after this stage (default: all); a rerun skips what is done")
    d.add_argument("--resume", action="store_true", help="continue training from OUTPUT/checkpoint.pt")
    d.add_argument("--output", help="override training.output")
    d.add_argument("--overwrite", action="store_true", help="replace a finished or interrupted training run in OUTPUT")
    d.set_defaults(func=_distill)
    c = sub.add_parser("convert", help="convert data files into an on-disk training cache, or (facet convert "
                       "sevennet NAME_OR_CHECKPOINT -o OUT.pt) a SevenNet model into a facetpot model")
    c.add_argument("inputs", nargs="+", help="extxyz / ASE .db / MPtrj .json files or globs; or: sevennet "
                   "NAME_OR_CHECKPOINT (7net-0, 7net-l3i5 or a checkpoint file; needs facetpot[sevennet])")
    c.add_argument("-o", "--output", required=True)
    c.add_argument("--key", action="append", default=[], help="label key, e.g. energy=REF_energy")
    c.add_argument("--mptrj-energy", default="uncorrected", choices=["uncorrected", "corrected"])
    c.add_argument("--shard-frames", type=int, default=50_000)
    c.add_argument("--splines", type=int, default=0, help="sevennet: replace the radial MLPs by K splines (Facet)")
    c.add_argument("--fit-data", nargs="+", default=[], help="sevennet --splines: structures (any ASE format) "
                   "whose pair distances weight the least-squares fit")
    c.add_argument("--spline-start", type=float, default=0.0, help="sevennet --splines: first knot (Å)")
    c.add_argument("--spline-rank", type=int, default=0, help="sevennet --splines: R > 0 fits the R principal "
                   "radial functions of each layer and mixes them (K R + R n_weights parameters per layer)")
    c.set_defaults(func=_convert)
    e = sub.add_parser("eval", help="errors of a model on labelled data: JSON report and plots")
    e.add_argument("model")
    e.add_argument("data", nargs="+")
    e.add_argument("-o", "--output", default="eval")
    e.add_argument("--key", action="append", default=[])
    e.add_argument("--device", default="cpu")
    e.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    e.add_argument("--batch-atoms", type=int, default=2048)
    e.add_argument("--no-plots", action="store_true")
    e.set_defaults(func=_eval)
    r = sub.add_parser("relax", help="relax many structures (positions and cell): relaxed.extxyz and results.csv")
    r.add_argument("model", help="model file or pretrained name")
    r.add_argument("inputs", nargs="+", help="structure files in any format ASE or pymatgen reads, folders, globs")
    r.add_argument("-o", "--output", required=True, help="output folder")
    r.add_argument("--fmax", type=float, default=0.05, help="force convergence, eV/Å (default 0.05)")
    r.add_argument("--max-steps", type=int, default=500)
    r.add_argument("--positions-only", action="store_true", help="keep the cell fixed (default: relax it too)")
    r.add_argument("--symmetry", action="store_true", help="keep the space group (ASE FixSymmetry)")
    r.add_argument("--optimizer", default="fire", choices=["fire", "bfgs"])
    r.add_argument("--shard", default="0/1", help="I/N: relax every N-th structure from the I-th (job arrays)")
    r.add_argument("--max-atoms", type=int, default=2000, help="atoms relaxed together in one batch (default 2000)")
    r.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    r.add_argument("--device", default="cpu")
    r.add_argument("--no-progress", action="store_true")
    r.set_defaults(func=_relax)
    pr = sub.add_parser("predict", help="energy, forces and stress of many structures, batched: results.csv and "
                        "predicted.extxyz")
    pr.add_argument("inputs", nargs="+", help="structure files in any format ASE or pymatgen reads, folders, globs")
    pr.add_argument("-o", "--output", required=True, help="output folder")
    pr.add_argument("-m", "--model", default=None, help="model file or pretrained name (default: the default model, "
                    "see facet models)")
    pr.add_argument("--batch-atoms", type=int, default=None, help="atoms per model call (default 512 on a CPU, 4096 "
                    "on CUDA)")
    pr.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    pr.add_argument("--device", default="cpu")
    pr.add_argument("--no-progress", action="store_true")
    pr.set_defaults(func=_predict)
    m = sub.add_parser("md", help="molecular dynamics (NVE, Langevin or Nose-Hoover NVT, MTK NPT) with a model")
    m.add_argument("model", help="model file or pretrained name")
    m.add_argument("input", help="structure file (any format ASE reads; its last frame)")
    m.add_argument("-o", "--output", required=True, help="output folder: trajectory.extxyz, thermo.csv")
    m.add_argument("--ensemble", default="nve", choices=["nve", "langevin", "nhc", "npt"])
    m.add_argument("--steps", type=int, default=1000, help="total steps (a restart continues up to this)")
    m.add_argument("--timestep", type=float, default=1.0, help="fs")
    m.add_argument("--temperature", type=float, default=300.0, help="K (initial velocities; target of NVT/NPT)")
    m.add_argument("--pressure", type=float, default=0.0, help="GPa (npt)")
    m.add_argument("--friction", type=float, default=0.01, help="1/fs (langevin)")
    m.add_argument("--tdamp", type=float, default=100.0, help="fs (nhc, npt)")
    m.add_argument("--pdamp", type=float, default=1000.0, help="fs (npt)")
    m.add_argument("--log-every", type=int, default=10)
    m.add_argument("--traj-every", type=int, default=10)
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--restart", action="store_true", help="continue from OUTPUT/trajectory.extxyz")
    m.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    m.add_argument("--device", default="cpu")
    m.add_argument("--no-progress", action="store_true")
    m.set_defaults(func=_md)
    for kind, text in (("eos", "equation of state: E(V), Birch-Murnaghan V0 and bulk modulus; eos.png"),
                       ("elastic", "elastic tensor (GPa) and Voigt-Reuss-Hill moduli"),
                       ("phonons", "phonon band structure (seekpath path), DOS, thermal properties, imaginary modes")):
        pp = sub.add_parser(kind, help=f"{text} (matcalc/phonopy: facetpot[properties])")
        pp.add_argument("model", help="model file or pretrained name")
        pp.add_argument("input", help="structure file (any format ASE reads; its last frame)")
        pp.add_argument("-o", "--output", required=True, help="output folder")
        pp.add_argument("--dtype", default="float64", choices=["float32", "float64"])
        pp.add_argument("--device", default="cpu")
        if kind == "phonons":
            pp.add_argument("--supercell", type=int, nargs=3, help="supercell diagonal (default: at least 20 Å)")
        pp.set_defaults(func=_property)
    sub.add_parser("models", help="list the pretrained models shipped with facetpot").set_defaults(func=_models)
    x = sub.add_parser("export", help="export a model for LAMMPS / C++ (TorchScript) or AOTInductor")
    x.add_argument("model", help="model file or pretrained name")
    x.add_argument("-o", "--output", required=True, help="output file (.pt for torchscript, .pt2 for aoti)")
    x.add_argument("--format", default="torchscript", choices=["torchscript", "aoti"])
    x.add_argument("--dtype", default=None, choices=["float32", "float64"], help="default: the model file's")
    x.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    x.set_defaults(func=_export)
    lm = sub.add_parser("lammps", help="build the LAMMPS plugin (pair_style facet) or show its state")
    lm.add_argument("action", choices=["build", "status"])
    lm.add_argument("--force", action="store_true", help="rebuild even if up to date")
    lm.add_argument("--quiet", action="store_true")
    lm.set_defaults(func=_lammps)
    args = ap.parse_args(argv)
    from .lammps.build import BuildError  # lazy: facet --help start-up (it imports torch)

    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, ImportError, BuildError) as exc:
        print(f"facet {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
