"""``facet convert-sevennet NAME_OR_CHECKPOINT -o OUT.pt`` (also ``facet convert sevennet ...``): an exact port
of a SevenNet model, optionally with its radial MLPs replaced by splines fitted by least squares."""

from __future__ import annotations

from .options import add_command

NAME = "convert-sevennet"


def add_to(sub) -> None:
    p = add_command(
        sub,
        NAME,
        "a SevenNet model as a facetpot model: the exact port, or with --splines the Facet "
        "trim (needs facetpot[sevennet]; also spelled facet convert sevennet)",
        run,
    )
    p.add_argument("source", help="7net-0, 7net-l3i5, 7net-mf-0 or a SevenNet checkpoint file")
    p.add_argument(
        "--modal",
        default=None,
        help="the fidelity of a multi-fidelity model (7net-mf-0: PBE or R2SCAN; any case)",
    )
    p.add_argument("-o", "--output", required=True, help="the model file to write (.pt)")
    p.add_argument("--splines", type=int, default=0, help="replace the radial MLPs by K splines (Facet)")
    p.add_argument(
        "--fit-data",
        nargs="+",
        default=[],
        help="--splines: structures (any ASE format) whose pair distances weight the least-squares fit",
    )
    p.add_argument("--spline-start", type=float, default=0.0, help="--splines: first knot (Å)")
    p.add_argument(
        "--spline-rank",
        type=int,
        default=0,
        help="--splines: R > 0 fits the R principal radial "
        "functions of each layer and mixes them (K R + R n_weights parameters per layer)",
    )


def run(args) -> int:
    from ..data.readers import read_structures  # lazy: facet --help start-up
    from ..io.model_file import save_model  # lazy: facet --help start-up
    from ..ports.sevennet import convert_sevennet  # lazy: facet --help start-up
    from ..ports.spline_fit import fit_splines, pair_distances  # lazy: facet --help start-up

    if args.splines and not args.fit_data:
        raise ValueError("--splines needs --fit-data: structures whose pair distances the fit is weighted by")
    model = convert_sevennet(args.source, modal=args.modal)
    if args.splines:
        ported = model.num_parameters()
        distances = pair_distances(read_structures(args.fit_data), model.cutoff)
        model, errors = fit_splines(model, distances, args.splines, args.spline_start, rank=args.spline_rank)
        model.metadata["spline_fit"] = {
            "num_splines": args.splines,
            "spline_start": args.spline_start,
            "spline_rank": args.spline_rank,
            "distances": len(distances),
            "relative_rms_error_per_layer": errors,
        }
        print(
            f"spline fit on {len(distances):,} pair distances, relative RMS error of the radial weights per "
            f"layer: {' '.join(f'{e:.2e}' for e in errors)}; parameters {ported:,} -> {model.num_parameters():,}"
        )
    save_model(model, args.output, metadata=model.metadata)
    print(
        f"wrote {args.output}: {model.metadata['source']}, {model.num_parameters():,} parameters, "
        f"{len(model.species)} elements, cutoff {model.cutoff} A"
    )
    return 0
