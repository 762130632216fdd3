"""Write the LAMMPS data files of the examples and export a model for ``pair_style facet``.

    python md/examples/lammps/prepare.py --model MY_MODEL.pt [--dtype float64] [--out .]

writes ``model.pt`` (``facet export``), ``si.data`` (diamond Si, 512 atoms) and ``srtio3.data``
(cubic perovskite SrTiO3, 320 atoms), and builds the plugin if needed. ``--model`` takes a model
file or a shipped model's name; without it the recommended shipped model is exported (before one
shipped: an UNTRAINED Facet-S with a small interaction scale, a smooth toy potential, and it says so).
"""

import argparse
from pathlib import Path


def structures():
    from ase.build import bulk
    from ase.spacegroup import crystal

    si = bulk("Si", "diamond", a=5.43, cubic=True).repeat((4, 4, 4))
    sto = crystal(
        ["Sr", "Ti", "O"],
        basis=[(0, 0, 0), (0.5, 0.5, 0.5), (0.5, 0.5, 0)],
        spacegroup=221,
        cellpar=[3.905, 3.905, 3.905, 90, 90, 90],
    ).repeat((4, 4, 4))
    return {"si": (si, ["Si"]), "srtio3": (sto, ["Sr", "Ti", "O"])}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--model",
        help="a facetpot model file (facet train writes best.pt and last.pt) or a shipped "
        "model's name, covering Si, Sr, Ti, O (default: the recommended shipped model)",
    )
    ap.add_argument("--dtype", default=None, choices=["float32", "float64"])
    ap.add_argument("--out", default=".", help="folder for model.pt and the data files")
    args = ap.parse_args()
    from ase.data import atomic_numbers

    import facetpot
    from facetpot.export.torchscript import export_torchscript
    from facetpot.lammps.build import build_plugin
    from facetpot.lammps.runner import lammps_cell, write_data
    from facetpot.pretrained import DEFAULT_MODEL

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.model or DEFAULT_MODEL:
        model = facetpot.load_model(args.model or DEFAULT_MODEL)
        print(f"model: {args.model or DEFAULT_MODEL}")
    else:
        print("WARNING: no --model given: exporting an UNTRAINED Facet-S (toy potential, not physics)")
        model = facetpot.build_model(species=[8, 14, 22, 38], scale=0.05)
    for name, (atoms, elements) in structures().items():
        missing = [e for e in elements if atomic_numbers[e] not in model.species]
        if missing:
            print(f"skipping {name}: the model does not cover {', '.join(missing)}")
            continue
        write_data(lammps_cell(atoms), out / f"{name}.data", elements)
        print(f"wrote {out / f'{name}.data'} ({len(atoms)} atoms, types {' '.join(elements)})")
    export_torchscript(model, out / "model.pt", dtype=args.dtype)
    print(f"wrote {out / 'model.pt'}")
    print(f"plugin: {build_plugin()}")


if __name__ == "__main__":
    main()
