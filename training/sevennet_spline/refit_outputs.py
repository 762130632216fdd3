"""Re-make a spline trim for fidelity far from equilibrium (issue 21): weight-space fit over distances that
include short contacts, then a layer-by-layer least-squares refit of every layer's outputs to the exact port's
(``facetpot.ports.spline_output_fit``) on structures of the fidelity benchmark's families, all made from the
fitting half of the shared MPtrj frames (``frames[0::2]``, other random numbers than the benchmark's).

    python training/sevennet_spline/refit_outputs.py 7net-0 --splines 32 --spline-rank 20 16 16 16 16 \
        --spline-start 0.4 --structures .spline_work/fit_structures_7net0.extxyz -o .spline_work/7net0_refit.pt

The first layer's Linear_in is folded into the species embedding (``fold_first_linear``: exact), and its
mul0 x mul0 numbers buy radial rank within the 75% parameter budget.

Prints the relative RMS error of every layer's outputs before and after the refit (on the fitting structures
and on a held-out part of them) and writes the model (float64).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from ase.io import read, write

from facetpot.inference.prepare import inference_model
from facetpot.inference.model_source import load_model
from facetpot.io.model_file import save_model
from facetpot.ports.sevennet import convert_sevennet
from facetpot.ports.spline_fit import fit_splines, fold_first_linear, pair_distances
from facetpot.ports.spline_output_fit import layer_statistics, refit_to_outputs

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
from fidelity import close_contacts, families, rattled  # noqa: E402  (the benchmark's families, from other frames)

DEFAULT_DATA = ROOT.parent / "shared/data/mptrj/mptrj-random-1k.extxyz"
TRIMS = {"7net-0": "facet-7net0-spline", "7net-l3i5": "facet-7net-l3i5-spline"}


def fitting_structures(data: str, per_family: int, max_atoms: int, seed: int, hot_model) -> list:
    frames = [a for a in read(data, ":")[0::2] if a.calc is not None]
    for a in frames:
        a.info["dft_forces"] = a.get_forces().copy()
        a.calc = None
    small = [a for a in frames if len(a) <= max_atoms]
    made = families(small, per_family, np.random.default_rng(seed), hot_model)
    out = [a for a in frames if len(a) <= 2 * max_atoms]
    for name, structures in made.items():
        out += structures
    return out


def extra_structures(data: str, n: int, max_atoms: int, seed: int) -> list:
    """``n`` more close contacts and ``n`` more rattled structures (rare short pairs weigh little in the fit
    unless there are many of them), from the fitting frames with their own random numbers."""
    if n <= 0:
        return []
    frames = [a for a in read(data, ":")[0::2] if len(a) <= max_atoms]
    for a in frames:
        a.calc = None
    rng = np.random.default_rng([seed, 7])
    pick = lambda: frames[int(rng.integers(len(frames)))].copy()  # noqa: E731
    return close_contacts(pick, n, rng) + rattled(pick, n, rng)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="SevenNet model name or the port's model file")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--splines", type=int, default=32)
    p.add_argument(
        "--spline-rank", type=int, nargs="+", default=[20, 16, 16, 16, 16], help="R per layer (one number: all layers)"
    )
    p.add_argument(
        "--keep-first-linear",
        action="store_true",
        help="keep the first layer's Linear_in (default: folded into the embedding, its numbers buy rank)",
    )
    p.add_argument("--spline-start", type=float, default=0.4)
    p.add_argument("--per-family", type=int, default=100)
    p.add_argument("--max-atoms", type=int, default=40)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--extra", type=int, default=300, help="more close contacts and rattled structures (each)")
    p.add_argument("--derivative", type=float, default=0.1, help="weight of the radial-derivative term")
    p.add_argument("--ridge", type=float, default=1e-3)
    p.add_argument("--iterations", type=int, default=60)
    p.add_argument("--data", default=str(DEFAULT_DATA))
    p.add_argument("--structures", default=None, help="cache of the fitting structures (extxyz), made if missing")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    t0 = time.time()
    port = load_model(args.model) if Path(args.model).is_file() else convert_sevennet(args.model)
    port = port.double().eval()
    cache = Path(args.structures) if args.structures else None
    if cache is not None and cache.is_file():
        structures = read(cache, ":") + extra_structures(args.data, args.extra, args.max_atoms, args.seed)
    else:
        hot = inference_model(TRIMS.get(args.model, "facet-7net0-spline"), dtype="float64")
        structures = fitting_structures(args.data, args.per_family, args.max_atoms, args.seed, hot)
        if cache is not None:
            write(cache, structures)
        structures += extra_structures(args.data, args.extra, args.max_atoms, args.seed)
    print(
        f"{len(structures)} fitting structures, {sum(len(a) for a in structures)} atoms ({time.time() - t0:.0f} s)",
        flush=True,
    )
    held = structures[1::10]
    fit = [a for k, a in enumerate(structures) if k % 10 != 1]
    data = pair_distances(fit, port.cutoff, max_distances=100_000)
    floor = torch.linspace(args.spline_start, port.cutoff, 20_000, dtype=torch.float64)
    distances = torch.sort(torch.cat([data, floor])).values
    rank = args.spline_rank[0] if len(args.spline_rank) == 1 else args.spline_rank
    source = port if args.keep_first_linear else fold_first_linear(port)
    spline, errors = fit_splines(source, distances, args.splines, args.spline_start, rank=rank)
    print(
        "weight-space fit, relative RMS error of the radial weights per layer:",
        " ".join(f"{e:.2e}" for e in errors),
        flush=True,
    )
    stats = layer_statistics(port, spline, fit)
    held_stats = layer_statistics(port, spline, held, derivatives=False)
    print(f"statistics ({time.time() - t0:.0f} s)", flush=True)
    before_held = [
        s.error(l.conv.radial_mix.double() @ l.conv.radial_weight.double()) for s, l in zip(held_stats, spline.layers)
    ]
    report = refit_to_outputs(
        port, spline, stats, distances, ridge=args.ridge, iterations=args.iterations, derivative=args.derivative
    )
    after_held = [
        s.error(l.conv.radial_mix.double() @ l.conv.radial_weight.double()) for s, l in zip(held_stats, spline.layers)
    ]
    fmt = lambda v: " ".join(f"{e:.2e}" for e in v)  # noqa: E731
    print(f"layer-output relative RMS error, fitting structures: {fmt(report['before'])} -> {fmt(report['after'])}")
    print(
        f"radial-derivative relative RMS error, fitting structures: {fmt(report['derivative_before'])} -> "
        f"{fmt(report['derivative_after'])}"
    )
    print(f"layer-output relative RMS error, held-out structures: {fmt(before_held)} -> {fmt(after_held)}")
    spline.metadata["spline_fit"] = {
        "num_splines": args.splines,
        "spline_start": args.spline_start,
        "spline_rank": args.spline_rank,
        "weight_space_error_per_layer": errors,
        "output_error_per_layer_fit": report["after"],
        "output_error_per_layer_held_out": after_held,
        "fit_structures": len(fit),
        "derivative_error_per_layer_fit": report["derivative_after"],
        "recipe": f"training/sevennet_spline/refit_outputs.py {' '.join(argv or sys.argv[1:])}",
    }
    save_model(spline, args.output, metadata=spline.metadata)
    print(f"wrote {args.output} ({spline.num_parameters():,} parameters, {time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
