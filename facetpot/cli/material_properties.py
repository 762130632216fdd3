"""``facet eos|elastic|phonons STRUCTURE -o OUT``: material properties of one crystal (matcalc / phonopy)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from .options import (EXACT, add_command, add_dispersion_options, add_model_options, add_output_folder,
                      add_progress_option, dispersion, model_and_structure)

#: command -> what it computes
PROPERTIES = {"eos": "equation of state: E(V), Birch-Murnaghan V0 and bulk modulus; eos.png",
              "elastic": "elastic tensor (GPa) and Voigt-Reuss-Hill moduli",
              "phonons": "phonon band structure (seekpath path), DOS, thermal properties, imaginary modes"}


def add_to(sub) -> None:
    for kind, text in PROPERTIES.items():
        p = add_command(sub, kind, f"{text} (matcalc/phonopy: facetpot[properties])", run)
        p.add_argument("input", nargs="+", help="crystal structure file (any format ASE or pymatgen reads; its last "
                       "frame)")
        add_output_folder(p)
        add_model_options(p, "float64", EXACT)
        if kind == "phonons":
            p.add_argument("--supercell", type=int, nargs=3, help="supercell diagonal (default: at least 20 Å)")
        add_dispersion_options(p)
        add_progress_option(p, " (model calls)")


def run(args) -> int:
    from ..workflows.material_properties import compute_for_file  # lazy: facet --help start-up

    model, structure = model_and_structure(args)
    options = {"supercell": args.supercell} if args.command == "phonons" and args.supercell else {}
    result = compute_for_file(args.command, model, structure, args.output, device=args.device,
                              dtype=args.dtype, min_distance=args.min_distance, progress=not args.no_progress,
                              dispersion=dispersion(args), **options)
    shown = {k: v for k, v in result.items() if not isinstance(v, (list, dict)) or k in ("C_voigt_GPa", "band_path")}
    print(json.dumps(shown, indent=1))
    names = (f"{args.command}.json", f"{args.command}.png", "phonopy_params.yaml")
    written = [str(Path(args.output) / n) for n in names if (Path(args.output) / n).is_file()]
    print(f"written: {', '.join(written)}", file=sys.stderr)
    return 0
