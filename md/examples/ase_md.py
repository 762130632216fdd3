"""MD with the Facet ASE calculator: NVE (energy conservation check) or Langevin NVT.

    python md/examples/ase_md.py [--model MODEL.pt] [--ensemble nve|nvt] [--steps 200] [--temperature 300]

--model takes a model file or a shipped model's name; without it the recommended shipped model
(``facetpot.pretrained.DEFAULT_MODEL``, today ``facet-7net0-spline``) is used.
"""

import argparse
import time

import numpy as np
from ase import units
from ase.build import bulk
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import thermalize_momenta
from ase.md.verlet import VelocityVerlet

import facetpot
from facetpot.pretrained import DEFAULT_MODEL


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model")
    ap.add_argument("--ensemble", default="nve", choices=["nve", "nvt"])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--temperature", type=float, default=300.0)
    ap.add_argument("--timestep", type=float, default=1.0, help="fs")
    ap.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    args = ap.parse_args()
    if args.model or DEFAULT_MODEL:
        model = args.model or DEFAULT_MODEL
    else:
        model = facetpot.build_model(species=[14])
        model.set_scale({14: 0.05})
    atoms = bulk("Si", "diamond", a=5.43, cubic=True) * (2, 2, 2)
    atoms.calc = facetpot.FacetCalculator(model, dtype=args.dtype)
    thermalize_momenta(atoms, temperature_K=args.temperature, rng=np.random.default_rng(0))
    dt = args.timestep * units.fs
    if args.ensemble == "nve":
        dyn = VelocityVerlet(atoms, timestep=dt)
    else:
        dyn = Langevin(atoms, timestep=dt, temperature_K=args.temperature, friction=0.01 / units.fs)
    e0 = atoms.get_total_energy()
    t = time.perf_counter()
    for k in range(args.steps // 10):
        dyn.run(10)
        print(
            f"step {10 * (k + 1):5d}  T {atoms.get_temperature():7.1f} K  E_tot {atoms.get_total_energy():.6f} eV  "
            f"drift {(atoms.get_total_energy() - e0) / len(atoms) * 1e3:+.4f} meV/atom",
            flush=True,
        )
    print(f"{1e3 * (time.perf_counter() - t) / args.steps:.1f} ms/step, {len(atoms)} atoms")


if __name__ == "__main__":
    main()
