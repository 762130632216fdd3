"""Fine-tuning the default model without harming it: naive fine-tune vs replay, on a new system and on MPtrj.

For each system: the shipped default model (``facet-7net0-spline``) is fine-tuned with ``facet train`` and
the training defaults (only ``finetune.from``, the data, the output and ``--epochs`` set), once without
replay (``finetune.replay: false``) and once per replay variant:

* ``replay`` — the default for a shipped base: 200 generated prototype crystals labelled by the base model;
* ``... lr 1e-3``, ``replay lr 1e-4``, ``replay w3``, ``replay x3`` (``--variants``): another learning rate
  than the fine-tune default 3e-4, ``weight: 3``, three times the replay frames per epoch (``VARIANTS``);
* ``replay-mptrj`` — 200 structures of the EVEN half of ``mptrj-random-1k`` labelled by the base model
  (pseudolabels on real MPtrj structures, as MACE's replay sets are).

Errors of the base, of the base with only its reference energies shifted to the data's, and of every
fine-tuned model (``last.pt``, float64, ``facetpot.predict``) on the new system's held-out frames and on the
ODD half of ``mptrj-random-1k`` (500 frames never used here); for the EMT system also the fcc Cu lattice
constant (Birch-Murnaghan over +-3% volume, ``ase.eos``) against EMT's.

Systems: ``emt-cual`` (rattled, strained fcc Cu/Al cells labelled by ASE's EMT: made here, seeded) and
``mlearn-mo`` (mlearn Mo training / test files, PBE). Data are read from ``../shared/data`` (never copied
into the repository); work files go to ``-o`` (default benchmarks/out/finetune_replay).

    python benchmarks/finetune_replay.py                       # EMT Cu/Al, 15 epochs, records RESULTS.md (~25 min)
    python benchmarks/finetune_replay.py --systems emt-cual mlearn-mo --variants "no replay" replay --no-record
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator
from ase.eos import EquationOfState
from ase.io import read, write

from harness import HERE, SHARED_DATA, append_results
from machine import machine

BASE = "facet-7net0-spline"
MPTRJ = SHARED_DATA / "mptrj" / "mptrj-random-1k.extxyz"
#: name -> what the variant's config adds to the defaults (section -> keys); the defaults: lr 3e-4, replay on
VARIANTS = {
    "no replay": {"finetune": {"replay": False}},
    "replay": {},
    "replay-mptrj": {"finetune": {"replay": {"structures": "mptrj_even.extxyz"}}},
    "no replay lr 1e-3": {"finetune": {"replay": False}, "training": {"lr": 1e-3}},
    "replay lr 1e-3": {"training": {"lr": 1e-3}},
    "replay lr 1e-4": {"training": {"lr": 1e-4}},
    "replay w3": {"finetune": {"replay": {"weight": 3.0}}, "training": {"lr": 1e-3}},
    "replay x3": {"finetune": {"replay": {"per_epoch": 3}}, "training": {"lr": 1e-3}},
    "replay-mptrj lr 1e-3": {"finetune": {"replay": {"structures": "mptrj_even.extxyz"}}, "training": {"lr": 1e-3}},
}
DEFAULT_VARIANTS = ["no replay", "replay", "replay-mptrj", "no replay lr 1e-3", "replay lr 1e-3", "replay lr 1e-4"]


def emt_cual(n: int, seed: int):
    """``n`` EMT-labelled fcc Cu/Al cells: random composition, +-3% strain, rattle 0.03-0.15 Å, 4-16 atoms."""
    rng = np.random.default_rng(seed)
    frames = []
    for k in range(n):
        x = rng.uniform(0, 0.5) if k % 4 else 0.0  # a quarter pure Cu
        a0 = (3.59 * (1 - x) + 4.05 * x) * (1 + 0.02 * rng.standard_normal())
        atoms = bulk("Cu", "fcc", a=a0, cubic=True).repeat([(1, 1, 1), (2, 1, 1), (2, 2, 1)][k % 3])
        atoms.numbers[rng.random(len(atoms)) < x] = 13
        eps = rng.uniform(-0.03, 0.03, (3, 3))
        atoms.set_cell(atoms.cell.array @ (np.eye(3) + 0.5 * (eps + eps.T)), scale_atoms=True)
        atoms.positions += rng.normal(0, rng.uniform(0.03, 0.15), atoms.positions.shape)
        atoms.calc = EMT()
        labels = dict(energy=atoms.get_potential_energy(), forces=atoms.get_forces(), stress=atoms.get_stress())
        atoms.calc = SinglePointCalculator(atoms, **labels)
        frames.append(atoms)
    return frames


def prepare(system: str, work: Path):
    """(train file, held-out file) of ``system`` in ``work``; the MPtrj halves beside them."""
    work.mkdir(parents=True, exist_ok=True)
    frames = read(MPTRJ, ":")
    write(work / "mptrj_even.extxyz", frames[0::2])
    write(work / "mptrj_odd.extxyz", frames[1::2])
    if system == "emt-cual":
        write(work / "train.extxyz", emt_cual(60, seed=1))
        write(work / "test.extxyz", emt_cual(30, seed=2))
        return work / "train.extxyz", work / "test.extxyz"
    element = system.split("-")[1].capitalize()
    return SHARED_DATA / "mlearn" / f"{element}_training.extxyz", SHARED_DATA / "mlearn" / f"{element}_test.extxyz"


def finetune(train: Path, work: Path, name: str, extra: dict, epochs: int, threads: int, reuse: bool) -> Path:
    """``facet train`` from the base with the defaults; the run's ``last.pt`` (kept with ``reuse``)."""
    out = work / name.replace(" ", "_")
    if reuse and (out / "last.pt").exists():
        return out / "last.pt"
    cfg = {
        "data": {"train": str(train)},
        "finetune": {"from": BASE, **extra.get("finetune", {})},
        "training": {
            "output": str(out),
            "epochs": epochs,
            "threads": threads,
            "tensorboard": False,
            **extra.get("training", {}),
        },
    }
    replay = cfg["finetune"].get("replay")
    if isinstance(replay, dict) and "structures" in replay:
        replay["structures"] = str(work / replay["structures"])
    if isinstance(replay, dict) and "per_epoch" in replay:  # a multiple of the training frames
        replay["per_epoch"] = int(replay["per_epoch"] * round(0.9 * len(read(train, ":"))))
    path = work / f"{out.name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    t0 = time.time()
    subprocess.run(
        [sys.executable, "-m", "facetpot.cli", "train", str(path), "--overwrite"], check=True, stdout=subprocess.DEVNULL
    )
    print(f"  {name}: {time.time() - t0:.0f} s", flush=True)
    return out / "last.pt"


def shifted_base(train: Path, work: Path) -> str:
    """The base model with only its reference energies shifted to the data's (what a fine-tune starts from)."""
    import facetpot
    from facetpot.data.cache import FrameCache, convert
    from facetpot.data.readers import iter_frames
    from facetpot.io.model_file import save_model
    from facetpot.training.finetune_energies import residual_atomic_energies

    path = work / "base_e0_shifted.pt"
    convert(iter_frames([str(train)]), work / "e0_cache")
    cache = FrameCache(work / "e0_cache")
    model = facetpot.load_model(BASE, dtype="float64")
    model.set_atomic_energies(residual_atomic_energies(model, cache, np.arange(len(cache))))
    save_model(model, path)
    return str(path)


def errors(model, frames, skip_elements=()) -> dict:
    """MAE of energy per atom (meV/atom; "E_other": frames without ``skip_elements`` only), force
    components (eV/Å) and stress Voigt components (GPa) of ``model`` (float64) on labelled ``frames``."""
    from facetpot import predict
    from facetpot.structure.units import EV_PER_A3_TO_GPA

    rows = predict(frames, model, dtype="float64", min_distance=0)
    de = np.array([r["energy"] / len(a) - a.get_potential_energy() / len(a) for r, a in zip(rows, frames)])
    other = np.array([not set(a.get_chemical_symbols()) & set(skip_elements) for a in frames])
    f = np.concatenate([np.abs(r["forces"] - a.get_forces()).ravel() for r, a in zip(rows, frames)])
    s = [
        np.abs(r["stress"] - a.get_stress())
        for r, a in zip(rows, frames)
        if r["stress"] is not None and "stress" in a.calc.results
    ]
    return {
        "E": 1e3 * np.abs(de).mean(),
        "E_other": 1e3 * np.abs(de[other]).mean(),
        "F": f.mean(),
        "S": EV_PER_A3_TO_GPA * np.mean(s) if s else np.nan,
    }


def cu_lattice(model) -> float:
    """fcc Cu lattice constant (Å) of ``model`` (a file or name; None: EMT)."""
    from facetpot import FacetCalculator

    calc = EMT() if model is None else FacetCalculator(model, dtype="float64")
    volumes, energies = [], []
    for s in np.linspace(0.99, 1.01, 7):
        atoms = bulk("Cu", "fcc", a=3.6 * s)
        atoms.calc = calc
        volumes.append(atoms.get_volume())
        energies.append(atoms.get_potential_energy())
    v0, _, _ = EquationOfState(volumes, energies, eos="birchmurnaghan").fit()
    return float((4 * v0) ** (1 / 3))


def run_system(system: str, out: Path, epochs: int, threads: int, variants, reuse: bool) -> dict:
    work = out / system
    train, test = prepare(system, work)
    models = {"base": BASE, "base, E0 shifted": shifted_base(train, work)}
    for name in variants:
        models[name] = str(finetune(train, work, name, VARIANTS[name], epochs, threads, reuse))
    test_frames, mptrj = read(test, ":"), read(work / "mptrj_odd.extxyz", ":")
    elements = sorted({s for a in read(train, ":") for s in a.get_chemical_symbols()})
    rows = {}
    for name, model in models.items():
        rows[name] = {"new": errors(model, test_frames), "mptrj": errors(model, mptrj, elements)}
        if system == "emt-cual":
            rows[name]["a_Cu"] = cu_lattice(model)
        print(f"  {name}: {json.dumps(rows[name])}", flush=True)
    if system == "emt-cual":
        rows["reference"] = {"a_Cu": cu_lattice(None)}
    return rows


def table(results: dict) -> str:
    lines = [
        "| system | model | new system E (meV/atom) | F (eV/Å) | S (GPa) | MPtrj odd E, all | E, frames without "
        "the data's elements | F | S | a(Cu) Å |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for system, rows in results.items():
        for name, r in rows.items():
            if name == "reference":
                lines.append(f"| {system} | EMT (the data) | | | | | | | | {r['a_Cu']:.3f} |")
                continue
            n, m = r["new"], r["mptrj"]
            lines.append(
                f"| {system} | {name} | {n['E']:.1f} | {n['F']:.4f} | {n['S']:.3f} | {m['E']:.1f} | "
                f"{m['E_other']:.1f} | {m['F']:.4f} | {m['S']:.3f} | {r.get('a_Cu', float('nan')):.3f} |"
            )
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--systems", nargs="+", default=["emt-cual"], choices=["emt-cual", "mlearn-mo"])
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("-o", "--output", type=Path, default=HERE / "out" / "finetune_replay")
    ap.add_argument("--variants", nargs="+", default=DEFAULT_VARIANTS, choices=list(VARIANTS))
    ap.add_argument("--reuse", action="store_true", help="keep fine-tuned models already in -o (evaluate only)")
    ap.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    t0 = time.time()
    results = {
        s: run_system(s, args.output, args.epochs, args.threads, args.variants, args.reuse) for s in args.systems
    }
    text = table(results)
    print(text)
    if not args.no_record:
        append_results(
            f"\n## Fine-tuning with and without replay ({time.strftime('%Y-%m-%d')})\n\n"
            f"`python benchmarks/finetune_replay.py --epochs {args.epochs} --systems {' '.join(args.systems)}` "
            f"({time.time() - t0:.0f} s; {machine()}, {args.threads} threads). Base `{BASE}`, fine-tuned "
            "with the training defaults; `last.pt` evaluated in float64 (`facetpot.predict`); stress "
            'MAE over the six Voigt components. "base, E0 shifted": the base model with only its reference '
            "energies shifted to the data's (where every fine-tune starts); MPtrj energies of frames "
            "holding the data's elements move with that shift, so the column without them is the one "
            "that measures forgetting.\n\n" + text
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
