"""``facet eos|elastic|phonons STRUCTURE -o OUT``: material properties of one crystal (matcalc / phonopy)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .options import (
    EXACT,
    add_command,
    add_dispersion_options,
    add_model_options,
    add_output_folder,
    add_progress_option,
    add_structure_argument,
    dispersion,
    model_and_structure,
)

#: command -> what it computes
PROPERTIES = {
    "eos": "equation of state: E(V), Birch-Murnaghan V0 and bulk modulus; eos.png",
    "elastic": "elastic tensor (GPa) and Voigt-Reuss-Hill moduli",
    "phonons": "phonon band structure (seekpath path), DOS, thermal properties, imaginary modes",
}


def add_to(sub) -> None:
    for kind, text in PROPERTIES.items():
        p = add_command(sub, kind, f"{text} (matcalc/phonopy: facetpot[properties])", run)
        add_structure_argument(p, "crystal structure file (any format ASE or pymatgen reads; its last frame)")
        add_output_folder(p)
        add_model_options(p, "float64", EXACT)
        if kind == "eos":
            p.add_argument(
                "--max-strain",
                type=float,
                help="half-range s of the linear strain: volumes (1 +- s)^3 V0 "
                "(default 0.01: +-3%% in volume, where the bulk modulus is the curvature at the minimum; "
                "matcalc's own 0.1 spans -27%% to +33%%)",
            )
            p.add_argument("--points", type=int, help="volumes in the fit (default 11)")
        if kind == "phonons":
            p.add_argument("--supercell", type=int, nargs=3, help="supercell diagonal (default: at least 20 Å)")
        p.add_argument(
            "--fmax",
            type=float,
            help=f"force convergence of the relaxations, eV/Å (default {'1e-4' if kind == 'phonons' else '0.01'})",
        )
        p.add_argument(
            "--no-relax",
            action="store_true",
            help="take the structure as it is (default: relax atoms "
            "and cell first, and the atoms in every deformed cell)",
        )
        add_dispersion_options(p)
        add_progress_option(p, " (model calls)")


def run(args) -> int:
    from ..workflows.material_properties import compute_for_file  # lazy: facet --help start-up

    model, structure = model_and_structure(args)
    given = {
        "fmax": args.fmax,
        "max_strain": getattr(args, "max_strain", None),
        "points": getattr(args, "points", None),
        "supercell": getattr(args, "supercell", None),
    }
    options = {"relax": not args.no_relax, **{k: v for k, v in given.items() if v is not None}}
    result = compute_for_file(
        args.command,
        model,
        structure,
        args.output,
        device=args.device,
        dtype=args.dtype,
        min_distance=args.min_distance,
        progress=not args.no_progress,
        dispersion=dispersion(args),
        **options,
    )
    shown = {k: v for k, v in result.items() if not isinstance(v, (list, dict)) or k in ("C_voigt_GPa", "band_path")}
    print(json.dumps(shown, indent=1))
    names = (f"{args.command}.json", f"{args.command}.png", "phonopy_params.yaml")
    written = [str(Path(args.output) / n) for n in names if (Path(args.output) / n).is_file()]
    print(f"written: {', '.join(written)}", file=sys.stderr)
    return 0
