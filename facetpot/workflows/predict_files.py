"""``facet predict``: single points of many structures, batched, results streamed to disk.

Every structure of the inputs (files, folders, globs; ``io.structure_inputs``) is evaluated by
``facetpot.inference.single_points`` in model calls of at most ``batch_atoms`` atoms. ``OUTDIR/results.csv`` gets a
row per structure in input order (energy, energy per atom, largest force, stress in Voigt order, or the
error that stopped it) and ``OUTDIR/predicted.extxyz`` every evaluated structure, both written as the
batches finish, so a killed job keeps what it finished.

predicted.extxyz keeps what the input had, its reference labels included (``energy``, ``forces``, ``stress``
of a DFT file stay the DFT values), and carries the model's under their own keys, as ``mace_eval_configs``
does: ``facet_energy`` (eV), ``facet_stress`` (Voigt, eV/Å^3, where there is a cell) in the frame's info and
``facet_forces`` (eV/Å) per atom: a later ``facet eval`` of the file still compares the model with the data.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import write
from tqdm import tqdm

from ..io.output_folder import check_output_folder
from ..inference.single_points import iter_predict
from ..structure.validation import MIN_DISTANCE

VOIGT = ("xx", "yy", "zz", "yz", "xz", "xy")
COLUMNS = (
    ["name", "atoms", "energy_eV", "energy_per_atom_eV", "max_force_eV_per_A"]
    + [f"stress_{c}_eV_per_A3" for c in VOIGT]
    + ["error"]
)


#: the keys of the model's predictions in predicted.extxyz (info: energy, stress; arrays: forces)
PREDICTION_KEYS = {"energy": "facet_energy", "forces": "facet_forces", "stress": "facet_stress"}


def with_predictions(atoms: Atoms, row: Dict[str, Any]) -> Atoms:
    """A copy of ``atoms`` with its own labels (its calculator's results, if any) and ``row``'s predictions under
    ``PREDICTION_KEYS``."""
    out = atoms.copy()
    if atoms.calc is not None and atoms.calc.results:
        out.calc = SinglePointCalculator(out, **atoms.calc.results)
    out.info[PREDICTION_KEYS["energy"]] = float(row["energy"])
    out.arrays[PREDICTION_KEYS["forces"]] = np.asarray(row["forces"], dtype=float)
    if row.get("stress") is not None:
        out.info[PREDICTION_KEYS["stress"]] = np.asarray(row["stress"], dtype=float)
    return out


def predict_files(
    model,
    inputs: Sequence[str],
    out_dir,
    device: str = "cpu",
    dtype: Optional[str] = "float32",
    batch_atoms: Optional[int] = None,
    progress: bool = True,
    min_distance: float = MIN_DISTANCE,
) -> Tuple[int, int]:
    """Evaluate every structure of ``inputs`` with ``model`` (an object, a file or a shipped name; None: the
    default model) into ``out_dir``; returns (structures, failed)."""
    # output folder, options, model and inputs checked before anything is written
    check_output_folder(out_dir)
    stream = iter_predict(inputs, model, device=device, dtype=dtype, batch_atoms=batch_atoms, min_distance=min_distance)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    total = failed = 0
    written = False  # the first structure truncates predicted.extxyz of an earlier run
    bar = tqdm(unit="structure", disable=not progress)
    with open(out / "results.csv", "w", newline="") as f:
        rows = csv.DictWriter(f, fieldnames=COLUMNS)
        rows.writeheader()
        for row, atoms in stream:
            n = len(atoms) if atoms is not None else 0
            line = {"name": row["name"], "atoms": n, "error": row["error"]}
            if not row["error"]:
                line.update(
                    energy_eV=f"{row['energy']:.10g}",
                    energy_per_atom_eV=f"{row['energy'] / n:.10g}",
                    max_force_eV_per_A=f"{float(np.linalg.norm(row['forces'], axis=1).max()):.6g}",
                )
                if row["stress"] is not None:
                    line.update({f"stress_{c}_eV_per_A3": f"{v:.8g}" for c, v in zip(VOIGT, row["stress"])})
                result = with_predictions(atoms, row)
                result.info["name"] = row["name"]
                write(out / "predicted.extxyz", result, format="extxyz", append=written)
                written = True
            rows.writerow(line)
            total += 1
            failed += int(bool(row["error"]))
            bar.update(1)
            bar.set_postfix(failed=failed)
    bar.close()
    return total, failed
