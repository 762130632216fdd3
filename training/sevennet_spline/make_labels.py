"""Distillation labels for the spline trim of a SevenNet model (issue 9).

For the fitting half of the shared MPtrj frames (the even-indexed ones, ``frames[0::2]``; the odd ones
are kept for testing and never touched here) this writes two extxyz files:

* ``OUT/distill.extxyz``: labels (energy, forces, stress) computed by the EXACT facetpot port of the
  SevenNet model in float64, for
    - the frames themselves (config_type ``port``),
    - ``--copies`` perturbed copies of every frame: a random symmetric strain (components uniform in
      +-``--strain``) and a Gaussian rattle whose sigma is drawn uniformly in ``--rattle LO HI`` Å
      (config_type ``port_perturbed``),
    - short Langevin MD snapshots run with the port (config_type ``port_md``): ``--md-frames`` of the
      frames with at most ``--md-max-atoms`` atoms, ``--md-steps`` steps of 1 fs at ``--md-temperature``.
* ``OUT/dft.extxyz``: the same unperturbed frames with their DFT labels (MPtrj, uncorrected energies:
  the convention SevenNet predicts), with ``weight = --dft-weight`` (the anchor of the fine-tune).

Every frame keeps its ``mptrj_traj_id`` (the training split groups by it). Needs ``sevenn`` (for the
port; ``pip install facetpot[sevennet]``) unless MODEL is a model file of the port.

    python training/sevennet_spline/make_labels.py 7net-0 -o .spline_work/labels_7net0 --copies 4 --md-frames 100
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import read, write
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
from ase import units

from facetpot import FacetCalculator
from facetpot.inference.model_source import load_model
from facetpot.structure.neighbors import radius_graph
from facetpot.ports.sevennet import convert_sevennet
from facetpot.inference.single_points import predict_structures

DEFAULT_DATA = Path(__file__).resolve().parents[3] / "shared/data/mptrj/mptrj-random-1k.extxyz"


def min_distance(atoms, cutoff=1.5):
    i, j, shifts = radius_graph(atoms.get_positions(), atoms.cell.array, atoms.pbc, cutoff)
    if len(i) == 0:
        return np.inf
    vec = atoms.positions[j] - atoms.positions[i] + shifts @ atoms.cell.array
    return float(np.linalg.norm(vec, axis=1).min())


def perturbed(atoms, rng, strain, rattle):
    """A strained and rattled copy; retried with a smaller rattle when it brings atoms closer than
    80% of the closest pair of the original (or 0.6 Å)."""
    floor = max(0.6, 0.8 * min(min_distance(atoms), 1.5))
    for attempt in range(10):
        eps = rng.uniform(-strain, strain, (3, 3))
        eps = 0.5 * (eps + eps.T)
        a = atoms.copy()
        a.calc = None
        a.set_cell(atoms.cell.array @ (np.eye(3) + eps), scale_atoms=True)
        sigma = rng.uniform(*rattle) * 0.7**attempt
        a.positions += rng.normal(0.0, sigma, a.positions.shape)
        if min_distance(a) >= floor:
            a.info["perturbation"] = f"strain<={strain} sigma={sigma:.3f}"
            return a
    return None


def with_labels(atoms, energy, forces, stress, config_type, weight):
    a = atoms.copy()
    keep = {k: atoms.info[k] for k in ("mptrj_traj_id", "mptrj_snapshot_id", "perturbation") if k in atoms.info}
    a.info = {**keep, "config_type": config_type, "weight": float(weight)}
    a.arrays = {k: v for k, v in a.arrays.items() if k in ("numbers", "positions")}
    a.calc = SinglePointCalculator(a, energy=energy, forces=forces, stress=stress)
    return a


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "model",
        help="SevenNet model name or checkpoint (7net-0, 7net-l3i5), or a facetpot model "
        "file of its exact port (facet convert sevennet NAME -o PORT.pt; then sevenn is not needed)",
    )
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--batch-atoms", type=int, default=200, help="atoms per labelling call (GPU: 2000)")
    p.add_argument("--data", default=str(DEFAULT_DATA), help="the shared MPtrj frames (default: %(default)s)")
    p.add_argument("--copies", type=int, default=2, help="perturbed copies per frame")
    p.add_argument("--strain", type=float, default=0.03, help="largest strain component")
    p.add_argument("--rattle", type=float, nargs=2, default=[0.03, 0.1], help="range of the rattle sigma (Å)")
    p.add_argument("--md-frames", type=int, default=50)
    p.add_argument("--md-steps", type=int, default=20)
    p.add_argument("--md-max-atoms", type=int, default=64)
    p.add_argument("--md-temperature", type=float, default=800.0, help="K")
    p.add_argument("--dft-weight", type=float, default=0.3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--limit", type=int, default=None, help="only the first N fitting frames (tests)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    t0 = time.time()

    fit = read(args.data, ":")[0::2][: args.limit]  # the fitting half; frames[1::2] stay held out
    if args.model.endswith(".pt"):
        port = load_model(args.model, device=args.device, dtype="float64").eval()
    else:
        port = convert_sevennet(args.model).to(args.device, torch.float64).eval()
    print(
        f"{len(fit)} fitting frames ({sum(len(a) for a in fit):,} atoms), port of {args.model}: "
        f"{port.num_parameters():,} parameters",
        flush=True,
    )

    # DFT anchor, and the port's own offset from it (same energy convention: uncorrected)
    base = predict_structures(port, fit, args.batch_atoms)
    err = np.array([(b[0] - a.get_potential_energy()) / len(a) for a, b in zip(fit, base)])
    print(
        f"port - DFT on the fitting frames: energy mean {1e3 * err.mean():+.2f} meV/atom, "
        f"MAE {1e3 * np.abs(err).mean():.2f} meV/atom",
        flush=True,
    )
    dft = [
        with_labels(a, a.get_potential_energy(), a.get_forces(), a.get_stress(), "dft", args.dft_weight) for a in fit
    ]
    write(out / "dft.extxyz", dft, format="extxyz")

    frames = [with_labels(a, *b, "port", 1.0) for a, b in zip(fit, base)]
    copies = []
    for c in range(args.copies):
        for a in fit:
            new = perturbed(a, rng, args.strain, args.rattle)
            if new is not None:
                copies.append(new)
    frames += [
        with_labels(a, *b, "port_perturbed", 1.0)
        for a, b in zip(copies, predict_structures(port, copies, args.batch_atoms))
    ]
    print(f"{len(copies)} perturbed copies labelled ({time.time() - t0:.0f} s)", flush=True)

    small = [a for a in fit if len(a) <= args.md_max_atoms]
    pick = rng.choice(len(small), min(args.md_frames, len(small)), replace=False) if small else []
    snaps = []
    calc = FacetCalculator(port, device=args.device, dtype="float64")
    for k in sorted(pick):
        a = small[k].copy()
        a.calc = calc
        MaxwellBoltzmannDistribution(a, temperature_K=args.md_temperature, rng=rng)
        dyn = Langevin(a, 1.0 * units.fs, temperature_K=args.md_temperature, friction=0.02, rng=rng, fixcm=False)
        dyn.run(args.md_steps)
        snap = a.copy()
        snap.info = {**small[k].info, "perturbation": f"md {args.md_steps} fs at {args.md_temperature:.0f} K"}
        snaps.append(snap)
    frames += [
        with_labels(a, *b, "port_md", 1.0) for a, b in zip(snaps, predict_structures(port, snaps, args.batch_atoms))
    ]
    write(out / "distill.extxyz", frames, format="extxyz")
    print(
        f"wrote {out / 'distill.extxyz'}: {len(frames)} frames ({len(fit)} port, {len(copies)} perturbed, "
        f"{len(snaps)} MD); {out / 'dft.extxyz'}: {len(dft)} frames, weight {args.dft_weight} "
        f"({time.time() - t0:.0f} s)",
        flush=True,
    )


if __name__ == "__main__":
    main()
