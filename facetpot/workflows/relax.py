"""``facet relax``: many structures relaxed, results streamed to disk.

The relaxations run batched (``batched_relax``: one model call per step for every structure in
flight, each with its own ASE optimizer, FIRE or BFGS, on its own ``FrechetCellFilter`` or its
positions, optionally keeping its space group). A structure that fails (unreadable file, an element
the model does not cover, NaN or exploding energies) gets an error and the others go on. Results
are appended to ``OUTDIR/results.csv`` and ``OUTDIR/relaxed.extxyz`` in input order as they come,
so a killed job keeps what it finished.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Iterable, Optional, Tuple

from ase import Atoms
from ase.io import write
from tqdm import tqdm

from ..committee import Committee
from ..io.model_file import inference_model
from .batched_relax import BatchedRelaxation
from .relax_result import CSV_COLUMNS, csv_row
from .structure_inputs import count_structures, expand_inputs, iter_structures


def relax_all(items: Iterable[Tuple[str, Optional[Atoms], Optional[str]]], model, out_dir, progress: bool = True,
              expected: Optional[int] = None, **options) -> Tuple[int, int, int]:
    """Relax every (name, atoms, read error) item with ``model`` (a FacetModel), writing ``out_dir``/results.csv
    and relaxed.extxyz; ``options`` go to :class:`BatchedRelaxation`. Returns (structures, converged, failed)."""
    relaxation = BatchedRelaxation(model, **options)  # checks the options before anything is written
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    total = converged = failed = 0
    written = False  # the first structure truncates relaxed.extxyz of an earlier run
    bar = tqdm(total=expected, unit="structure", disable=not progress)  # expected: the count, if known
    with open(out / "results.csv", "w", newline="") as f:
        rows = csv.DictWriter(f, fieldnames=list(CSV_COLUMNS.values()))
        rows.writeheader()
        for result, relaxed in relaxation.run(items):
            if relaxed is not None:
                relaxed.info.update({"name": result.name, "converged": result.converged})
                write(out / "relaxed.extxyz", relaxed, format="extxyz", append=written)
                written = True
            rows.writerow(csv_row(result))
            f.flush()
            total += 1
            converged += int(result.converged)
            failed += int(bool(result.error))
            bar.update(1)
            bar.set_postfix(converged=converged, failed=failed)
    bar.close()
    return total, converged, failed


def relax_files(model, inputs, out_dir, shard: Tuple[int, int] = (0, 1), device: str = "cpu", dtype: str = "float32",
                progress: bool = True, **options) -> Tuple[int, int, int]:
    """``facet relax``: every structure of ``inputs`` (files, folders, globs) relaxed with ``model``
    (a FacetModel, a file or a shipped name; a list of them is a committee); (structures, converged, failed)."""
    if isinstance(model, (list, tuple)):
        model = Committee(model, device=device, dtype=dtype)
    else:
        model = inference_model(model, device=device, dtype=dtype)
    paths = expand_inputs(inputs)
    expected = count_structures(paths, shard) if progress else None
    return relax_all(iter_structures(paths, shard), model, out_dir, progress=progress, expected=expected, **options)
