"""How faithfully a spline trim reproduces its SevenNet original, far from equilibrium too (issue 21).

    python benchmarks/fidelity.py                           # facet-7net0-spline against the exact port of SevenNet-0
    python benchmarks/fidelity.py --model l3i5 --per-family 20 --relax 10
    python benchmarks/fidelity.py --model mf0-r2scan --trim .spline_work/mf0_r2scan_refit.pt   # SevenNet-MF-0's r2SCAN head
    python benchmarks/fidelity.py --trim runs/new.pt --write   # a candidate trim; append the table to RESULTS.md

The reference is the exact port (``facetpot.ports.sevennet.convert_sevennet``: SevenNet's own numbers to 1e-5
eV/atom, tested), so every difference is the trim's. Structures (``families``, deterministic per ``--seed``) are
made from MPtrj frames of ``../shared/data/mptrj/mptrj-random-1k.extxyz`` with at most ``--max-atoms`` atoms:

  near_equilibrium  the frames with the smallest DFT forces
  strained          random normal strains of -10..+10% and shear strains up to 10%
  compressed        cells (and atoms) scaled to 0.8 of the volume
  rattled           Gaussian displacements of 0.15-0.3 Å
  hot               snapshots of 1500-2500 K Langevin MD (40 steps of 2 fs, driven by the trim)
  surface_vacancy   slabs (10 Å of vacuum along c) and supercells with one atom removed
  close_contact     one atom moved towards its nearest neighbour to 0.7-1.5 Å
  elements          frames picked to cover as many elements as possible

Per family: |dE| per atom (median and 95th percentile, meV/atom), the force deviation MAE(F_trim - F_port) as a
fraction of the port's own force MAE against DFT (on the odd-indexed half of the file, held out from the fits)
and in meV/Å, and the stress deviation (MAE, GPa). Relaxations: ``--relax`` strained starts relaxed by each model
(FIRE + cell, fmax 0.05, the batched engine of ``facet relax``); relaxed energy (meV/atom) and volume (%)
differences. The issue's aims are printed beside the figures: median |dE| <= 1 meV/atom, 95th percentile <= 5,
force deviation <= 10% of the port's force MAE, relaxed energies within 1 meV/atom (median).
float64 for both models (differences of the models, not of float32 rounding), ``--threads`` torch threads.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path
from typing import Dict, List

import numpy as np
import torch
from ase import Atoms
from ase.build import make_supercell

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import HERE, SHARED_DATA, append_results  # noqa: E402
from machine import machine  # noqa: E402

from facetpot.inference.prepare import inference_model  # noqa: E402
from facetpot.inference.single_points import predict_structures  # noqa: E402
from facetpot.structure.units import EV_PER_A3_TO_GPA  # noqa: E402

MPTRJ = SHARED_DATA / "mptrj" / "mptrj-random-1k.extxyz"
#: --model -> (shipped trim, SevenNet name, fidelity (multi-fidelity models)). The force scale of an r2SCAN head is
#: its model's PBE port's force MAE (the shared frames carry PBE labels only)
MODELS = {
    "7net0": ("facet-7net0-spline", "7net-0", None),
    "l3i5": ("facet-7net-l3i5-spline", "7net-l3i5", None),
    "mf0-pbe": ("facet-7net-mf0-pbe-spline", "7net-mf-0", "PBE"),
    "mf0-r2scan": ("facet-7net-mf0-r2scan-spline", "7net-mf-0", "R2SCAN"),
}
AIMS = {"median_dE_meV": 1.0, "p95_dE_meV": 5.0, "force_dev_fraction": 0.10, "relaxed_dE_meV": 1.0}


def read_frames(max_atoms: int):
    from ase.io import read

    frames = read(MPTRJ, ":")
    labelled = []
    for k, a in enumerate(frames):
        if a.calc is None or len(a) > max_atoms:
            continue
        a.info["dft_forces"] = a.get_forces().copy()
        a.info["index"] = k
        a.calc = None
        labelled.append(a)
    return labelled


def _strain(atoms: Atoms, eps: np.ndarray) -> Atoms:
    out = atoms.copy()
    out.set_cell(atoms.cell.array @ (np.eye(3) + eps), scale_atoms=True)
    return out


def families(frames: List[Atoms], n: int, rng: np.random.Generator, trim) -> Dict[str, List[Atoms]]:
    """``n`` structures of every family (see the module docstring)."""
    pick = lambda: frames[int(rng.integers(len(frames)))].copy()  # noqa: E731
    fmax = np.array([np.abs(a.info["dft_forces"]).max() for a in frames])
    out: Dict[str, List[Atoms]] = {"near_equilibrium": [frames[k].copy() for k in np.argsort(fmax)[:n]]}
    strained = []
    for k in range(n):
        eps = np.diag(rng.uniform(-0.10, 0.10, 3)) if k % 2 == 0 else np.zeros((3, 3))
        if k % 2 == 1:  # shear
            s = rng.uniform(-0.10, 0.10, 3)
            eps[0, 1] = eps[1, 0] = s[0] / 2
            eps[0, 2] = eps[2, 0] = s[1] / 2
            eps[1, 2] = eps[2, 1] = s[2] / 2
        strained.append(_strain(pick(), eps))
    out["strained"] = strained
    out["compressed"] = [_strain(pick(), (0.8 ** (1 / 3) - 1) * np.eye(3)) for _ in range(n)]
    out["rattled"] = rattled(pick, n, rng)
    out["hot"] = hot_snapshots([pick() for _ in range(n)], trim, rng)
    sv = []
    for k in range(n):
        a = pick()
        if k % 2 == 0:
            a.cell[2] *= (np.linalg.norm(a.cell[2]) + 10.0) / np.linalg.norm(a.cell[2])
        else:
            reps = [max(1, int(np.ceil(6.0 / np.linalg.norm(v)))) for v in a.cell]
            a = make_supercell(a, np.diag(reps)) if len(a) * np.prod(reps) <= 80 else a
            del a[int(rng.integers(len(a)))]
        sv.append(a)
    out["surface_vacancy"] = sv
    out["close_contact"] = close_contacts(pick, n, rng)
    seen: set = set()
    diverse = []
    for a in sorted(frames, key=lambda a: -len(set(a.numbers))):
        new = set(a.numbers) - seen
        if new:
            diverse.append(a.copy())
            seen |= new
        if len(diverse) == n:
            break
    out["elements"] = diverse
    return out


def rattled(pick, n: int, rng: np.random.Generator) -> List[Atoms]:
    """``n`` structures from ``pick()`` with Gaussian displacements of 0.15-0.3 Å."""
    out = []
    for _ in range(n):
        a = pick()
        a.positions += rng.normal(0, rng.uniform(0.15, 0.30) / np.sqrt(3), a.positions.shape)
        out.append(a)
    return out


def close_contacts(pick, n: int, rng: np.random.Generator) -> List[Atoms]:
    """``n`` structures from ``pick()`` with one atom moved towards its nearest neighbour to 0.7-1.5 Å."""
    out = []
    for _ in range(n):
        a = pick()
        if len(a) < 2:
            a = a.repeat((2, 1, 1))
        i = int(rng.integers(len(a)))
        d = a.get_distances(i, range(len(a)), mic=True, vector=True)
        r = np.linalg.norm(d, axis=1)
        r[i] = np.inf
        j = int(np.argmin(r))
        target = rng.uniform(0.7, 1.5)
        if target < r[j]:
            a.positions[j] -= d[j] / r[j] * (r[j] - target)
        out.append(a)
    return out


def hot_snapshots(starts: List[Atoms], trim, rng: np.random.Generator, steps: int = 40) -> List[Atoms]:
    from ase import units
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

    from facetpot.inference.calculator import FacetCalculator

    calc = FacetCalculator(trim, min_distance=0)  # hot hydrogen may pass within 0.5 Å
    out = []
    for a in starts:
        start = a.copy()
        t = rng.uniform(1500, 2500)
        a.calc = calc
        MaxwellBoltzmannDistribution(a, temperature_K=t, rng=rng)
        Langevin(a, 2 * units.fs, temperature_K=t, friction=0.02, rng=rng).run(steps)
        snap = a.copy()
        snap.calc = None
        d = snap.get_all_distances(mic=True) + 1e3 * np.eye(len(snap))
        out.append(snap if d.min() >= 0.6 else start)  # a snapshot with overlapping atoms: its start instead
    return out


def compare(port, trim, structures: List[Atoms], batch_atoms: int) -> Dict[str, np.ndarray]:
    ref, new = predict_structures(port, structures, batch_atoms), predict_structures(trim, structures, batch_atoms)
    n = np.array([len(a) for a in structures])
    de = 1e3 * np.abs(np.array([r[0] for r in new]) - np.array([r[0] for r in ref])) / n
    df = np.concatenate([np.abs(b[1] - a[1]).ravel() for a, b in zip(ref, new)])
    fscale = np.concatenate([np.abs(a[1]).ravel() for a in ref])
    ds = [np.abs(b[2] - a[2]) * EV_PER_A3_TO_GPA for a, b in zip(ref, new) if a[2] is not None]
    return {"dE_meV": de, "dF": df, "F_port": fscale, "dS_GPa": np.concatenate(ds) if ds else np.zeros(0)}


def port_force_mae(port, frames: List[Atoms], batch_atoms: int) -> float:
    held_out = [a for a in frames if a.info["index"] % 2 == 1]
    pred = predict_structures(port, held_out, batch_atoms)
    return float(np.mean(np.concatenate([np.abs(p[1] - a.info["dft_forces"]).ravel() for p, a in zip(pred, held_out)])))


def relaxations(port, trim, starts: List[Atoms], batch_atoms: int) -> Dict[str, np.ndarray]:
    from facetpot.workflows.batched_relax import BatchedRelaxation

    results = {}
    for name, model in (("port", port), ("trim", trim)):
        items = [(str(k), a.copy(), None) for k, a in enumerate(starts)]
        relax = BatchedRelaxation(model, fmax=0.05, max_steps=300, max_atoms=batch_atoms, smax_gpa=None)
        # they come as they finish: back to the starts' order, so port and trim pair up
        results[name] = sorted(((r, atoms) for r, atoms in relax.run(items)), key=lambda ra: int(ra[0].name))
    de, dv = [], []
    for (rp, ap), (rt, at) in zip(results["port"], results["trim"]):
        if ap is None or at is None or not (rp.converged and rt.converged):
            continue
        de.append(1e3 * abs(rt.energy_final - rp.energy_final) / len(ap))
        dv.append(
            100 * abs(rt.volume_final - rp.volume_final) / rp.volume_final if np.isfinite(rp.volume_final) else 0.0
        )
    return {"relaxed_dE_meV": np.array(de), "relaxed_dV_pct": np.array(dv), "pairs": len(de), "starts": len(starts)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="7net0", choices=sorted(MODELS))
    ap.add_argument("--trim", default=None, help="trim to test (file or name; default: the shipped one)")
    ap.add_argument("--per-family", type=int, default=30)
    ap.add_argument("--relax", type=int, default=20, help="strained starts relaxed by both models (0: none)")
    ap.add_argument("--max-atoms", type=int, default=40)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--batch-atoms",
        type=int,
        default=256,
        help="atoms per model call (float64 SevenNet-l3i5 at 2048 atoms needs over 24 GB)",
    )
    ap.add_argument("--write", action="store_true", help="append the table to benchmarks/RESULTS.md")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from facetpot.ports.sevennet import convert_sevennet

    shipped, seven, modal = MODELS[args.model]
    t0 = time.time()
    port = inference_model(convert_sevennet(seven, modal=modal), dtype="float64")
    pbe_port = (
        port if modal in (None, "PBE") else inference_model(convert_sevennet(seven, modal="PBE"), dtype="float64")
    )
    trim = inference_model(args.trim or shipped, dtype="float64")
    frames = read_frames(args.max_atoms)
    rng = np.random.default_rng(args.seed)
    fams = families(frames, args.per_family, rng, trim)
    scale = port_force_mae(pbe_port, frames, args.batch_atoms)
    rows = {}
    for name, structures in fams.items():
        c = compare(port, trim, structures, args.batch_atoms)
        rows[name] = {
            "n": len(structures),
            "atoms": int(sum(len(a) for a in structures)),
            "median_dE_meV": float(np.median(c["dE_meV"])),
            "p95_dE_meV": float(np.percentile(c["dE_meV"], 95)),
            "force_dev_meV_A": 1e3 * float(c["dF"].mean()),
            "force_dev_fraction": float(c["dF"].mean()) / scale,
            "port_force_scale_meV_A": 1e3 * float(c["F_port"].mean()),
            "stress_dev_GPa": float(c["dS_GPa"].mean()) if c["dS_GPa"].size else float("nan"),
        }
        print(name, json.dumps(rows[name]), flush=True)
    relax = None
    if args.relax:
        starts = [
            _strain(frames[int(k)].copy(), np.diag(rng.uniform(-0.05, 0.05, 3)))
            for k in rng.choice(len(frames), args.relax, replace=False)
        ]
        relax = relaxations(port, trim, starts, args.batch_atoms)
        print("relax", relax["pairs"], "of", relax["starts"], "converged in both", flush=True)
    report = {
        "model": args.trim or shipped,
        "original": f"{seven} ({modal})" if modal else seven,
        "port_force_mae_vs_dft_meV_A": 1e3 * scale,
        "families": rows,
        "seconds": time.time() - t0,
    }
    if relax is not None:
        report["relaxations"] = {
            "pairs": relax["pairs"],
            "starts": relax["starts"],
            "median_dE_meV": float(np.median(relax["relaxed_dE_meV"])) if relax["pairs"] else None,
            "median_dV_pct": float(np.median(relax["relaxed_dV_pct"])) if relax["pairs"] else None,
        }
    out = HERE / "out"
    out.mkdir(exist_ok=True)
    (out / f"fidelity_{args.model}.json").write_text(json.dumps(report, indent=1))
    lines = table(report, args)
    print("\n".join(lines))
    if args.write:
        append_results("\n".join(lines) + "\n")


def table(report, args) -> List[str]:
    ok = lambda v, aim: "" if v <= aim else " ✗"  # noqa: E731
    pbe = "; its PBE fidelity's port: the frames have PBE labels" if "R2SCAN" in report["original"] else ""
    lines = [
        f"\n### Fidelity: {report['model']} against the exact port of {report['original']} "
        f"({datetime.date.today()}, {machine()}, float64)\n",
        f"`python benchmarks/fidelity.py {' '.join(sys.argv[1:])}` ({report['seconds']:.0f} s). The port's own force "
        f"MAE against DFT (odd half of mptrj-random-1k{pbe}): {report['port_force_mae_vs_dft_meV_A']:.1f} meV/Å. Aims: "
        "median |dE| <= 1 meV/atom, 95th percentile <= 5, force deviation <= 10% of the port's force MAE; ✗ marks a miss.\n",
        "| family | structures (atoms) | median \\|dE\\| meV/atom | 95th pct | force deviation meV/Å (of port MAE) | "
        "port \\|F\\| meV/Å | stress deviation GPa |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in report["families"].items():
        lines.append(
            f"| {name} | {r['n']} ({r['atoms']}) | {r['median_dE_meV']:.2f}{ok(r['median_dE_meV'], AIMS['median_dE_meV'])} | "
            f"{r['p95_dE_meV']:.2f}{ok(r['p95_dE_meV'], AIMS['p95_dE_meV'])} | {r['force_dev_meV_A']:.1f} "
            f"({100 * r['force_dev_fraction']:.0f}%){ok(r['force_dev_fraction'], AIMS['force_dev_fraction'])} | "
            f"{r['port_force_scale_meV_A']:.0f} | {r['stress_dev_GPa']:.3f} |"
        )
    rel = report.get("relaxations")
    if rel:
        lines.append(
            f"\nRelaxations from the same strained starts (FIRE + cell, fmax 0.05; {rel['pairs']} of {rel['starts']} "
            f"converged with both): relaxed energy difference median {rel['median_dE_meV']:.2f} meV/atom"
            f"{ok(rel['median_dE_meV'] or 0, AIMS['relaxed_dE_meV'])}, volume difference median "
            f"{rel['median_dV_pct']:.2f}%."
        )
    return lines


if __name__ == "__main__":
    main()
