"""Step 1 of the spline trim: the exact port of a SevenNet model with every layer's radial MLP replaced
by K cubic splines, fitted by least squares on the pair distances of the fitting half of the shared
MPtrj frames (``frames[0::2]``; the odd half stays held out).

Same as ``facet convert sevennet NAME --splines K --spline-start R0 --fit-data FILES -o OUT.pt``, but it
subsamples fewer distances (``--max-distances``, default 100,000; the CLI's 400,000 need about 24 GB
for SevenNet-l3i5, whose layers have up to 1,760 radial weights per distance) and takes the even
frames itself. Prints the relative RMS error of the radial weights per layer and the parameter counts.

    python training/sevennet_spline/fit.py 7net-0 --splines 32 --spline-rank 12 --spline-start 0.6 -o .spline_work/7net0_k32r12_fit.pt
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from ase.io import read

from facetpot.io.model_file import save_model
from facetpot.ports.sevennet import convert_sevennet
from facetpot.ports.spline_fit import fit_splines, pair_distances

DEFAULT_DATA = Path(__file__).resolve().parents[3] / "shared/data/mptrj/mptrj-random-1k.extxyz"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="SevenNet model name or checkpoint (7net-0, 7net-l3i5)")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--splines", type=int, required=True, help="K, the number of cubic splines")
    p.add_argument("--spline-start", type=float, default=0.6, help="first knot (Å)")
    p.add_argument("--spline-rank", type=int, default=0, help="R > 0: each layer's spline weights of rank R")
    p.add_argument("--data", default=str(DEFAULT_DATA))
    p.add_argument("--max-distances", type=int, default=100_000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--port-output", default=None, help="also write the exact port (float64) here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    port = convert_sevennet(args.model)
    if args.port_output:
        save_model(port, args.port_output, metadata=port.metadata)
    fit_frames = read(args.data, ":")[0::2]
    distances = pair_distances(fit_frames, port.cutoff, max_distances=args.max_distances)
    model, errors = fit_splines(port, distances, args.splines, args.spline_start, rank=args.spline_rank)
    model.metadata["spline_fit"] = {
        "num_splines": args.splines,
        "spline_start": args.spline_start,
        "spline_rank": args.spline_rank,
        "distances": len(distances),
        "fit_frames": "mptrj-random-1k frames[0::2]",
        "relative_rms_error_per_layer": errors,
    }
    save_model(model, args.output, metadata=model.metadata)
    print(
        f"{args.model}: K = {args.splines}, R = {args.spline_rank}, spline_start {args.spline_start} Å, {len(distances):,} pair distances "
        f"of {len(fit_frames)} frames; relative RMS error of the radial weights per layer: "
        f"{' '.join(f'{e:.2e}' for e in errors)}; parameters {port.num_parameters():,} (port) -> "
        f"{model.num_parameters():,}; wrote {args.output} (float64)"
    )


if __name__ == "__main__":
    main()
