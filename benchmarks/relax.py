"""Batched relaxation against one by one and against SevenNet-0, in one run.

    python benchmarks/relax.py [--model MODEL] [--n 100] [--threads 2] [--no-sevennet] [--no-one-by-one]
                               [--torchsim] [--csv per_structure.csv] [--write]

Takes the first N structures of ../shared/data/mptrj/mptrj-random-1k.extxyz, strains each by 3%
(a random symmetric strain of that norm) and rattles it by 0.05 Å (fixed seed), and relaxes positions
and cell to fmax 0.05 eV/Å with FIRE + FrechetCellFilter: (1) facetpot batched (``facet relax``'s
engine), (2) facetpot one structure at a time (the same engine, --max-atoms 1), (3) SevenNet-0's own ASE
calculator one by one (needs sevenn), (4) with --torchsim, TorchSim's ``ts.optimize`` (its batched FIRE on
the Frechet cell, all structures in one state, converged ones leaving it) with ``facetpot.torchsim.FacetModel``
(needs torch-sim-atomistic). Prints wall time per structure, steps, converged counts, the
speed-up of batched over the others, and the relaxed-energy agreement with SevenNet-0 (meV/atom), over
all structures and over those both runs converged. --csv writes one row per structure and run
(formula, atoms, steps, converged, final energy and volume per atom) to look at the outliers.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from ase.filters import FrechetCellFilter
from ase.io import read
from ase.optimize import FIRE

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from harness import SHARED_DATA, append_results  # noqa: E402
from machine import cpu_name  # noqa: E402

DATA = SHARED_DATA / "mptrj" / "mptrj-random-1k.extxyz"


def structures(n: int):
    rng = np.random.default_rng(0)
    out = []
    for k, atoms in enumerate(read(DATA, f":{n}")):
        atoms = atoms.copy()
        atoms.calc = None
        eps = rng.standard_normal((3, 3))
        eps = 0.5 * (eps + eps.T)
        eps *= 0.03 / np.linalg.norm(eps)
        atoms.set_cell(atoms.cell.array @ (np.eye(3) + eps), scale_atoms=True)
        atoms.rattle(0.05, seed=k)
        out.append((f"mptrj@{k}", atoms))
    return out


def facet_run(model, items, max_atoms: int, fmax: float, max_steps: int):
    from facetpot.workflows.batched_relax import BatchedRelaxation

    # ASE's convergence test (smax_gpa None), as the one-by-one runs use: the same criterion for both
    relax = BatchedRelaxation(model, fmax=fmax, max_steps=max_steps, max_atoms=max_atoms, smax_gpa=None)
    start = time.perf_counter()
    results = [r for r, _ in relax.run((name, atoms, None) for name, atoms in items)]
    order = {name: k for k, (name, _) in enumerate(items)}  # results come as they finish: back to input order
    return time.perf_counter() - start, sorted(results, key=lambda r: order[r.name])


def sevennet_run(items, fmax: float, max_steps: int):
    from sevenn.calculator import SevenNetCalculator

    calc = SevenNetCalculator("7net-0", device="cpu")
    start = time.perf_counter()
    rows = []
    for name, atoms in items:
        atoms = atoms.copy()
        atoms.calc = calc
        opt = FIRE(FrechetCellFilter(atoms), logfile=None)
        converged = opt.run(fmax=fmax, steps=max_steps)
        rows.append(
            {
                "name": name,
                "steps": opt.nsteps,
                "converged": converged,
                "energy": atoms.get_potential_energy(),
                "atoms": len(atoms),
                "volume": atoms.get_volume(),
            }
        )
    return time.perf_counter() - start, rows


def torchsim_run(model, items, fmax: float, max_steps: int, dtype: str):
    """TorchSim's batched FIRE + Frechet cell on every structure at once; TorchSim reports no steps per structure
    (nan in the rows); converged: the final atomic forces below fmax."""
    import torch_sim as ts

    from facetpot.torchsim import FacetModel

    device = torch.device("cpu")
    ts_model = FacetModel(model, device=device, dtype=getattr(torch, dtype))
    state = ts.io.atoms_to_state([a for _, a in items], device, ts_model.dtype)
    converged = ts.generate_force_convergence_fn(fmax)
    start = time.perf_counter()
    final = ts.optimize(state, ts_model, optimizer=ts.frechet_cell_fire, convergence_fn=converged, max_steps=max_steps)
    seconds = time.perf_counter() - start
    out = ts_model(final)
    fmax_per = torch.zeros(len(items), dtype=out["forces"].dtype).index_reduce_(
        0, final.system_idx, out["forces"].norm(dim=1), "amax"
    )
    volumes = torch.linalg.det(final.cell).abs()
    # no per-structure step count: nan (the table's median steps reads nan for this run)
    rows = [
        (float("nan"), bool(fmax_per[k] < fmax), float(out["energy"][k]), float(volumes[k])) for k in range(len(items))
    ]
    return seconds, rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--model", default="facet-7net0-spline", help="model file or pretrained name (facetpot; default: %(default)s)"
    )
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--fmax", type=float, default=0.05)
    ap.add_argument("--max-steps", type=int, default=500)
    ap.add_argument("--max-atoms", type=int, default=2000)
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--no-sevennet", action="store_true")
    ap.add_argument("--no-one-by-one", action="store_true", help="skip facetpot one by one")
    ap.add_argument("--torchsim", action="store_true", help="also TorchSim's ts.optimize with facetpot.torchsim")
    ap.add_argument("--csv", default=None, help="write per-structure results of every run to this CSV")
    ap.add_argument("--write", action="store_true", help="append the table to benchmarks/RESULTS.md")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from facetpot.inference.model_source import resolve_model

    model = resolve_model(args.model, dtype=args.dtype)
    for p in model.parameters():
        p.requires_grad_(False)
    items = structures(args.n)
    n_atoms = sum(len(a) for _, a in items)
    print(
        f"{len(items)} structures, {n_atoms} atoms; model {args.model} ({model.num_parameters():,} parameters, "
        f"{model.backend} backend, {args.dtype}); {args.threads} threads",
        flush=True,
    )
    runs = {}
    t, res = facet_run(model, items, args.max_atoms, args.fmax, args.max_steps)
    runs["facetpot batched"] = (t, [(r.steps, r.converged, r.energy_final, r.volume_final) for r in res])
    print(f"batched: {t:.1f} s", flush=True)
    if not args.no_one_by_one:
        t, res = facet_run(model, items, 1, args.fmax, args.max_steps)
        runs["facetpot one by one"] = (t, [(r.steps, r.converged, r.energy_final, r.volume_final) for r in res])
        print(f"one by one: {t:.1f} s", flush=True)
    if args.torchsim:
        t, rows = torchsim_run(model, items, args.fmax, args.max_steps, args.dtype)
        runs["TorchSim ts.optimize (frechet_cell_fire), facetpot.torchsim"] = (t, rows)
        print(f"TorchSim: {t:.1f} s", flush=True)
    if not args.no_sevennet:
        t, rows = sevennet_run(items, args.fmax, args.max_steps)
        runs["SevenNet-0 one by one (its ASE calculator)"] = (
            t,
            [(r["steps"], r["converged"], r["energy"], r["volume"]) for r in rows],
        )
        print(f"SevenNet-0: {t:.1f} s", flush=True)
    base = runs["facetpot batched"][0]
    lines = [
        f"\n### Relaxation of {len(items)} strained (3%) and rattled (0.05 Å) MPtrj structures, cell free, "
        f"FIRE to fmax {args.fmax} eV/Å ({datetime.date.today().isoformat()})\n",
        f"Command: `python benchmarks/relax.py --model {args.model} --n {args.n} --threads {args.threads}`; "
        f"{n_atoms} atoms in all, {args.dtype}, {args.threads} threads, CPU: {cpu_name()}.\n",
        "| run | wall time (s) | s per structure | median steps | converged | batched is faster by |",
        "|---|---|---|---|---|---|",
    ]
    for label, (t, rows) in runs.items():
        steps = statistics.median([r[0] for r in rows])
        conv = sum(bool(r[1]) for r in rows)
        lines.append(
            f"| {label} | {t:.1f} | {t / len(items):.3f} | {steps:.0f} | {conv}/{len(items)} | {t / base:.1f}x |"
        )
    key = "SevenNet-0 one by one (its ASE calculator)"
    if key in runs:
        ours = np.array([r[2] for r in runs["facetpot batched"][1]])
        theirs = np.array([r[2] for r in runs[key][1]])
        natoms = np.array([len(a) for _, a in items])
        d = np.abs(ours - theirs) / natoms * 1e3
        both = np.array([bool(a[1]) and bool(b[1]) for a, b in zip(runs["facetpot batched"][1], runs[key][1])])
        lines.append(
            f"\nRelaxed energies, facetpot batched vs SevenNet-0: mean |dE| {np.nanmean(d):.2f} meV/atom, "
            f"median {np.nanmedian(d):.2f}, max {np.nanmax(d):.2f} meV/atom over all {len(d)}; over the "
            f"{both.sum()} both converged: mean {np.nanmean(d[both]):.2f}, median {np.nanmedian(d[both]):.2f}, "
            f"max {np.nanmax(d[both]):.2f}; {(d[both] <= 5).sum()} of them within 5 meV/atom."
        )
    key = "TorchSim ts.optimize (frechet_cell_fire), facetpot.torchsim"
    if key in runs:
        natoms = np.array([len(a) for _, a in items])
        ours, theirs = runs["facetpot batched"][1], runs[key][1]
        d = np.abs(np.array([r[2] for r in ours]) - np.array([r[2] for r in theirs])) / natoms * 1e3
        dv = 100 * np.abs(np.array([r[3] for r in ours]) / np.array([r[3] for r in theirs]) - 1)
        lines.append(
            f"\nRelaxed energies, facetpot batched vs TorchSim (same model): median |dE| {np.nanmedian(d):.2f} meV/atom, "
            f"max {np.nanmax(d):.2f}; volumes median {np.nanmedian(dv):.2f}%, max {np.nanmax(dv):.2f}%. TorchSim's "
            "steps are not counted per structure (nan) and its convergence is its own force test (atoms and cell "
            "forces below fmax); converged here counts structures whose atomic forces end below fmax."
        )
    if args.csv:
        import csv

        with open(args.csv, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(
                [
                    "name",
                    "formula",
                    "atoms",
                    "run",
                    "steps",
                    "converged",
                    "energy_final_per_atom",
                    "volume_final_per_atom",
                ]
            )
            for label, (_, rows) in runs.items():
                for (name, atoms), r in zip(items, rows):
                    n = len(atoms)
                    w.writerow(
                        [
                            name,
                            atoms.get_chemical_formula(),
                            n,
                            label,
                            r[0],
                            bool(r[1]),
                            f"{r[2] / n:.6f}",
                            f"{(r[3] or float('nan')) / n:.4f}",
                        ]
                    )
    text = "\n".join(lines)
    print(text)
    if args.write:
        append_results(text)


if __name__ == "__main__":
    sys.exit(main())
