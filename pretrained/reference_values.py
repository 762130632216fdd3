"""Reference values of a shipped model, stored beside its card and checked by the test suite.

    python pretrained/reference_values.py MODEL_FILE -o pretrained/NAME.reference.json

Energy, forces and stress in float64 of two fixed structures (a strained, rattled SrTiO3 cell and
an ethanol molecule), written when the model is made, so that a later change of the code that
alters what a shipped model computes fails ``tests/test_pretrained.py``.
"""

import argparse
import json

import numpy as np
from ase import Atoms
from ase.build import molecule

from facetpot.structure.graph import atoms_to_graph
from facetpot.inference.model_source import load_model
from facetpot.derivatives import compute_properties


def reference_structures():
    sto = Atoms(
        "SrTiO3",
        scaled_positions=[[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]],
        cell=np.eye(3) * 3.905,
        pbc=True,
    ) * (2, 1, 1)
    sto.set_cell(sto.cell.array + [[0, 0.1, 0.05], [0.08, 0, 0], [0, 0.12, 0]], scale_atoms=True)
    sto.rattle(0.03, seed=3)
    return {"SrTiO3 triclinic rattled": sto, "ethanol": molecule("CH3CH2OH")}


def reference_values(model) -> dict:
    out = {}
    for label, atoms in reference_structures().items():
        periodic = bool(atoms.pbc.all())
        res = compute_properties(model, atoms_to_graph(atoms, model.cutoff), stress=periodic)
        out[label] = {"energy": float(res["energy"][0].detach()), "forces": res["forces"].detach().tolist()}
        if periodic:
            out[label]["stress"] = res["stress"][0].detach().tolist()
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("-o", "--output", required=True)
    args = ap.parse_args()
    values = reference_values(load_model(args.model, dtype="float64"))
    with open(args.output, "w") as f:
        json.dump({"units": "eV, eV/Angstrom, eV/Angstrom^3 (ASE sign), float64", "values": values}, f, indent=1)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
