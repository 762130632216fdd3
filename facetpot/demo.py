"""``make demo``: relax a small crystal with the ASE calculator and report what a user would see.

Until a pretrained model ships, the model here is UNTRAINED (random weights): the numbers show the
machinery and its speed, not physics.
"""
from __future__ import annotations

import time
import warnings

import numpy as np
import torch


def main() -> None:
    from ase.build import bulk
    from ase.filters import FrechetCellFilter
    from ase.optimize import FIRE

    import facetpot

    # ASE's FrechetCellFilter calls scipy's logm, which warns about round-off at every step
    warnings.filterwarnings("ignore", message="logm result may be inaccurate")
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    torch.manual_seed(0)
    model = facetpot.build_model()  # Facet-S architecture
    print(f"facetpot {facetpot.__version__}: Facet-S, {model.num_parameters():,} parameters, "
          f"cutoff {model.cutoff} Å, {model.num_layers} layers")
    print("NOTE: this model is UNTRAINED (random weights): energies are meaningless until a pretrained")
    print("      model ships; the demo shows the calculator, the relaxation and the speed.\n")

    atoms = bulk("Si", "diamond", a=5.43, cubic=True) * (2, 2, 2)  # 64 atoms
    atoms.rattle(0.05, seed=1)
    calc = facetpot.FacetCalculator(model, dtype="float32")
    atoms.calc = calc
    times = []
    original = calc.calculate

    def timed(*args, **kwargs):
        t = time.perf_counter()
        original(*args, **kwargs)
        times.append(time.perf_counter() - t)

    calc.calculate = timed
    e0 = atoms.get_potential_energy()
    print(f"Si {len(atoms)} atoms, rattled: E = {e0:.4f} eV, max |F| = {np.abs(atoms.get_forces()).max():.4f} eV/Å")
    opt = FIRE(FrechetCellFilter(atoms), logfile=None)
    converged = opt.run(fmax=0.05, steps=100)
    stress = atoms.get_stress()
    print(f"relaxed ({'converged' if converged else 'not converged'}, {opt.nsteps} FIRE steps, cell + positions):")
    print(f"  energy        {atoms.get_potential_energy():.4f} eV")
    print(f"  max |force|   {np.abs(atoms.get_forces()).max():.4f} eV/Å")
    print(f"  stress        {' '.join(f'{s:+.5f}' for s in stress)} eV/Å^3 (xx yy zz yz xz xy)")
    print(f"  volume        {atoms.get_volume():.2f} Å^3")
    print(f"  time per call {1e3 * np.median(times):.1f} ms (median of {len(times)}, float32, "
          f"{torch.get_num_threads()} threads, energy+forces+stress)")


if __name__ == "__main__":
    main()
