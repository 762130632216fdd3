"""``make demo``: the main jobs on embedded defaults, in about two minutes on 2 CPU cores.

1. Relax real crystals (Si, MgO, SrTiO3, LiCoO2) with the recommended shipped model and print their
   lattice constants beside experiment (without a shipped model: an untrained Facet-S, to show the
   machinery and its speed).
2. Train a small Facet model on data made on the spot (ASE's EMT potential for Cu/Al: energies,
   forces, stresses), evaluate it on held-out structures, and relax with the trained model.
3. Export that model (``facet export``) and run it in LAMMPS (``pair_style facet``, plugin built
   on first use) on 1 and 2 MPI ranks, beside the ASE calculator's energy and forces.
"""

from __future__ import annotations

import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from ase import Atoms
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator
from ase.filters import FrechetCellFilter
from ase.io import write
from ase.optimize import FIRE
from ase.spacegroup import crystal

from . import __version__
from .inference.calculator import FacetCalculator
from .evaluate import evaluate_model
from .export.torchscript import export_torchscript
from .lammps.build import BuildError, build_plugin
from .lammps.runner import LammpsError, lammps_cell, read_dump, run_lammps, write_data
from .model import build_model
from .inference.model_source import load_model
from .pretrained import DEFAULT_MODEL, PRETRAINED
from .training.config import validate
from .training.trainer import Trainer
from .structure.units import EV_PER_A3_TO_GPA


def _timed(calc, times):
    original = calc.calculate

    def timed(*args, **kwargs):
        t = time.perf_counter()
        original(*args, **kwargs)
        times.append(time.perf_counter() - t)

    calc.calculate = timed
    return calc


def relax(atoms, calc, label: str, fmax=0.05, steps=100) -> None:
    times = []
    atoms.calc = _timed(calc, times)
    e0 = atoms.get_potential_energy()
    print(f"{label}: {len(atoms)} atoms, start E = {e0:.4f} eV, max |F| = {np.abs(atoms.get_forces()).max():.4f} eV/Å")
    opt = FIRE(FrechetCellFilter(atoms), logfile=None)
    converged = opt.run(fmax=fmax, steps=steps)
    stress = atoms.get_stress()
    print(f"  relaxed ({'converged' if converged else 'not converged'}, {opt.nsteps} FIRE steps, cell + positions)")
    print(f"  energy        {atoms.get_potential_energy():.4f} eV")
    print(f"  max |force|   {np.abs(atoms.get_forces()).max():.4f} eV/Å")
    print(f"  stress        {' '.join(f'{s:+.5f}' for s in stress)} eV/Å^3 (xx yy zz yz xz xy)")
    print(f"  volume        {atoms.get_volume():.2f} Å^3")
    print(
        f"  time per call {1e3 * np.median(times):.1f} ms (median of {len(times)}, energy+forces+stress, "
        f"{torch.get_num_threads()} threads)"
    )


#: crystals of part 1: structure near experiment, and the experimental lattice constants (Å; room
#: temperature unless noted). MPtrj-trained models reproduce PBE(+U), which typically overestimates
#: lattice constants by about 1%.
CRYSTALS = {
    "Si (diamond)": (lambda: bulk("Si", "diamond", a=5.43, cubic=True), {"a": 5.431}),
    "MgO (rock salt)": (lambda: bulk("MgO", "rocksalt", a=4.21, cubic=True), {"a": 4.212}),
    "SrTiO3 (cubic perovskite)": (
        lambda: Atoms(
            "SrTiO3",
            scaled_positions=[[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]],
            cell=np.eye(3) * 3.905,
            pbc=True,
        ),
        {"a": 3.905},
    ),
    "LiCoO2 (R-3m, Li-ion cathode)": (
        lambda: crystal(
            ["Li", "Co", "O"],
            basis=[(0, 0, 0.5), (0, 0, 0), (0, 0, 0.2396)],
            spacegroup=166,
            cellpar=[2.816, 2.816, 14.054, 90, 90, 120],
        ),
        {"a": 2.816, "c": 14.054},
    ),
}


def lattice_constants(atoms, reference) -> dict:
    """a (and c) of a relaxed cell: the edge of a cubic cell from its volume, or a = |a1|, c = |a3| (hexagonal)."""
    if "c" in reference:
        lengths = atoms.cell.lengths()
        return {"a": 0.5 * (lengths[0] + lengths[1]), "c": lengths[2]}
    return {"a": atoms.get_volume() ** (1.0 / 3.0)}


def relax_crystals(name: str) -> None:
    """Part 1 with a shipped model: relax each crystal (cell + positions) and compare lattice constants."""
    calc = FacetCalculator(name, dtype="float32")
    model = calc.model
    print(
        f"== 1. Real crystals relaxed with the shipped model {name!r} ({PRETRAINED[name].description}; "
        f"{model.num_parameters():,} parameters, {len(model.species)} elements, cutoff {model.cutoff} Å), "
        "FIRE on positions and cell (FrechetCellFilter), fmax 0.01 eV/Å"
    )
    print(
        f"  {'crystal':31s} {'atoms':>5s} {'steps':>5s} {'lattice constant (Å)':>22s} {'experiment':>11s} {'diff':>7s} "
        f"{'ms/call':>8s}"
    )
    for label, (build, reference) in CRYSTALS.items():
        atoms = build()
        atoms.rattle(0.02, seed=1)
        times = []
        atoms.calc = _timed(calc, times)
        opt = FIRE(FrechetCellFilter(atoms), logfile=None)
        converged = opt.run(fmax=0.01, steps=300)
        got = lattice_constants(atoms, reference)
        for k, (param, exp) in enumerate(reference.items()):
            print(
                f"  {label if k == 0 else '':31s} {len(atoms) if k == 0 else '':>5} "
                f"{(opt.nsteps if converged else str(opt.nsteps) + '!') if k == 0 else '':>5} "
                f"{param + ' = ' + format(got[param], '.4f'):>22s} {exp:>11.3f} {100 * (got[param] / exp - 1):+6.2f}% "
                f"{1e3 * np.median(times) if k == 0 else float('nan'):8.1f}".replace("nan", "   ")
            )


def emt_dataset(path: Path, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    frames = []
    for k in range(n):
        a = bulk("Cu", "fcc", a=3.61 * (1 + 0.02 * rng.standard_normal()), cubic=True) * (2, 1, 1)
        for i in rng.choice(len(a), size=int(rng.integers(0, 3)), replace=False):
            a.numbers[i] = 13
        a.rattle(0.1, seed=int(rng.integers(1 << 30)))
        a.calc = EMT()
        e, f, s = a.get_potential_energy(), a.get_forces(), a.get_stress()
        a.calc = SinglePointCalculator(a, energy=e, forces=f, stress=s)
        frames.append(a)
    write(path, frames)


def main() -> None:
    warnings.filterwarnings("ignore", message="logm result may be inaccurate")  # FrechetCellFilter
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    torch.manual_seed(0)
    print(f"facetpot {__version__}\n")
    if DEFAULT_MODEL is not None:
        relax_crystals(DEFAULT_MODEL)
    else:
        untrained_facet_s()
    train_and_lammps()


def untrained_facet_s() -> None:
    """Part 1 without a shipped model: the machinery and its speed with random weights."""
    model = build_model()
    print(
        f"== 1. Facet-S ({model.num_parameters():,} parameters, cutoff {model.cutoff} Å, "
        f"{model.num_layers} layers) with the ASE calculator"
    )
    print("NOTE: this model is UNTRAINED (random weights): its energies are meaningless until a")
    print("      pretrained model ships; this part shows the calculator, the relaxation and the speed.")
    si = bulk("Si", "diamond", a=5.43, cubic=True) * (2, 2, 2)
    si.rattle(0.05, seed=1)
    relax(si, FacetCalculator(model, dtype="float32"), "Si (untrained Facet-S, float32)")


def train_and_lammps() -> None:
    print("\n== 2. A short training run: `facet train` on Cu/Al data made with ASE's EMT")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        emt_dataset(tmp / "train.extxyz", 80, seed=0)
        emt_dataset(tmp / "test.extxyz", 20, seed=1)
        cfg = validate(
            {
                "model": {
                    "hidden_irreps": "16x0e+8x1o+4x2e",
                    "num_layers": 2,
                    "cutoff": 4.5,
                    "grid_channels": 8,
                    "grid_hidden": 16,
                },
                "data": {"train": [str(tmp / "train.extxyz")], "valid_fraction": 0.1},
                "training": {
                    "output": str(tmp / "run"),
                    "epochs": 30,
                    "max_time_minutes": 1.0,
                    "lr": 0.005,
                    "max_atoms_per_batch": 64,
                    "warmup_steps": 20,
                    "tensorboard": False,
                    "log_every": 10**9,
                },
                "loss": {"energy_weight": 10.0, "forces_weight": 1.0, "stress_weight": 0.1},
            }
        )
        t = time.time()
        Trainer(cfg).run()
        print(f"trained in {time.time() - t:.0f} s")
        report = evaluate_model(tmp / "run" / "best.pt", tmp / "test.extxyz", out_dir=tmp / "eval", plots=False)["all"]
        print(
            f"held-out EMT structures: energy MAE {report['energy_mae_meV_per_atom']:.2f} meV/atom, "
            f"force MAE {report['forces_mae_eV_per_A']:.4f} eV/Å, stress MAE {report['stress_mae_GPa']:.3f} GPa"
        )
        trained = load_model(tmp / "run" / "best.pt")
        cu = bulk("Cu", "fcc", a=3.70, cubic=True) * (2, 2, 2)
        cu.rattle(0.05, seed=2)
        relax(cu, FacetCalculator(trained), "Cu, strained and rattled (trained model)")
        ref = cu.copy()
        ref.calc = EMT()
        print(
            f"  EMT at the relaxed geometry: max |F| = {np.abs(ref.get_forces()).max():.4f} eV/Å, "
            f"pressure {-ref.get_stress()[:3].mean() * EV_PER_A3_TO_GPA:.2f} GPa (the trained model's target)"
        )
        lammps_step(trained, tmp)


def lammps_step(model, tmp: Path) -> None:
    """Export the trained model and run it in LAMMPS on 1 and 2 MPI ranks beside the ASE numbers."""
    print("\n== 3. The same model in LAMMPS: facet export + pair_style facet (1 and 2 MPI ranks)")
    try:
        build_plugin()
    except BuildError as exc:
        print(f"skipped: {exc}")
        return
    atoms = lammps_cell(bulk("Cu", "fcc", a=3.62, cubic=True) * (3, 3, 3))
    atoms.numbers[::7] = 13
    atoms.rattle(0.05, seed=3)
    export_torchscript(model, tmp / "model.pt")
    write_data(atoms, tmp / "data.lmp", ["Cu", "Al"])
    (tmp / "in.demo").write_text(
        "units metal\natom_style atomic\nread_data data.lmp\npair_style facet\npair_coeff * * model.pt Cu Al\n"
        "dump d all custom 1 dump.out id fx fy fz\ndump_modify d format float %.15g\n"
        "thermo_style custom step pe press\nthermo_modify format float %.15g\nrun 0\n"
    )
    atoms.calc = FacetCalculator(model)
    e_ase, f_ase = atoms.get_potential_energy(), atoms.get_forces()
    print(f"  Cu/Al, {len(atoms)} atoms. ASE calculator: energy {e_ase:.10f} eV")
    for ranks in (1, 2):
        try:
            out = run_lammps("in.demo", tmp, nprocs=ranks).stdout.splitlines()
        except LammpsError as exc:
            print(f"  LAMMPS failed: {exc}")
            return
        k = next(i for i, ln in enumerate(out) if ln.split()[:2] == ["Step", "PotEng"])
        e = float(out[k + 1].split()[1])
        d = read_dump(tmp / "dump.out")
        df = np.abs(np.stack([d["fx"], d["fy"], d["fz"]], 1) - f_ase).max()
        print(f"  LAMMPS, {ranks} rank(s): energy {e:.10f} eV (diff {e - e_ase:+.1e}), max force diff {df:.1e} eV/Å")


if __name__ == "__main__":
    main()
