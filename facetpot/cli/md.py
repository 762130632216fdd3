"""``facet md STRUCTURE -o OUT``: molecular dynamics (trajectory.extxyz, thermo.csv), restartable."""

from __future__ import annotations

import sys
from pathlib import Path

from .options import (
    FAST,
    add_command,
    add_committee_option,
    add_dispersion_options,
    add_model_options,
    add_output_folder,
    add_progress_option,
    add_structure_argument,
    dispersion,
    model_and_structure,
)


def add_to(sub) -> None:
    p = add_command(
        sub,
        "md",
        "molecular dynamics (NVE, Langevin or Nose-Hoover NVT, MTK NPT): OUTPUT/trajectory.extxyz, thermo.csv",
        run,
    )
    add_structure_argument(p, "structure file (any format ASE or pymatgen reads; its last frame)")
    add_output_folder(p)
    add_model_options(p, "float32", FAST)
    p.add_argument("--ensemble", default="nve", choices=["nve", "langevin", "nhc", "npt"], help="integrator")
    p.add_argument("--steps", type=int, default=1000, help="total steps (a restart continues up to this)")
    p.add_argument("--timestep", type=float, default=1.0, help="fs")
    p.add_argument("--temperature", type=float, default=300.0, help="K (initial velocities; target of NVT/NPT)")
    p.add_argument("--pressure", type=float, default=0.0, help="GPa (npt)")
    p.add_argument("--friction", type=float, default=0.01, help="1/fs (langevin)")
    p.add_argument("--tdamp", type=float, default=100.0, help="fs (nhc, npt)")
    p.add_argument("--pdamp", type=float, default=1000.0, help="fs (npt)")
    p.add_argument("--log-every", type=int, default=10, help="steps between thermo.csv rows")
    p.add_argument("--traj-every", type=int, default=10, help="steps between trajectory frames")
    p.add_argument("--seed", type=int, default=0, help="initial velocities (and Langevin noise)")
    p.add_argument(
        "--restart",
        action="store_true",
        help="continue the run in OUTPUT from its last saved "
        "state (restart.npz, written with every trajectory frame) up to --steps",
    )
    add_dispersion_options(p)
    add_committee_option(p, "thermo.csv gets the largest force std of every logged step")
    add_progress_option(p)


def run(args) -> int:
    from ..workflows.md import run_md  # lazy: facet --help start-up

    model, structure = model_and_structure(args)
    step = run_md(
        model,
        structure,
        args.output,
        ensemble=args.ensemble,
        steps=args.steps,
        timestep_fs=args.timestep,
        temperature=args.temperature,
        pressure_gpa=args.pressure,
        friction=args.friction,
        tdamp_fs=args.tdamp,
        pdamp_fs=args.pdamp,
        log_every=args.log_every,
        traj_every=args.traj_every,
        seed=args.seed,
        restart=args.restart,
        device=args.device,
        dtype=args.dtype,
        progress=not args.no_progress,
        min_distance=args.min_distance,
        dispersion=dispersion(args),
    )
    print(
        f"MD at step {step}: {Path(args.output) / 'trajectory.extxyz'}, {Path(args.output) / 'thermo.csv'}",
        file=sys.stderr,
    )
    return 0
