"""``facet relax``: many structures relaxed, results streamed to disk.

The relaxations run batched (``batched_relax``: one model call per step for every structure in
flight, each with its own ASE optimizer, FIRE or BFGS, on its own ``FrechetCellFilter`` or its
positions, optionally keeping its space group). A structure that fails (unreadable file, an element
the model does not cover, NaN or exploding energies) gets an error and the others go on. Results
are appended to ``OUTDIR/results.csv`` and ``OUTDIR/relaxed.extxyz`` as each structure finishes,
so a killed job keeps what it finished, and ``resume=True`` (``--resume``) relaxes only the structures
whose names results.csv does not hold yet. An earlier run's files are never replaced silently: a folder
that holds them needs ``resume`` or ``overwrite``.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Iterable, Optional, Set, Tuple

from ase import Atoms
from ase.io import write
from tqdm import tqdm

from ..inference.committee import Committee
from ..inference.prepare import inference_model
from ..io.output_folder import check_output_folder
from .batched_relax import BatchedRelaxation
from .relax_result import CSV_COLUMNS, csv_row
from ..io.structure_inputs import count_structures, expand_inputs, iter_structures


RESULTS, RELAXED = "results.csv", "relaxed.extxyz"


def finished_names(out_dir, resume: bool = False, overwrite: bool = False) -> Set[str]:
    """The structures an earlier run in ``out_dir`` finished (their results.csv rows) when resuming; an empty set
    for a fresh run, which a folder holding an earlier run's files refuses unless ``overwrite``."""
    out = check_output_folder(out_dir)
    if resume and overwrite:
        raise ValueError("--resume and --overwrite exclude each other")
    earlier = [p for p in (out / RESULTS, out / RELAXED) if p.exists()]
    if resume:
        if not (out / RESULTS).is_file():
            return set()  # nothing finished yet: a resumed run starts from the beginning
        with open(out / RESULTS, newline="") as f:
            rows = list(csv.DictReader(f))
        if rows and list(rows[0]) != list(CSV_COLUMNS.values()):
            raise ValueError(f"{out / RESULTS} was not written by facet relax (its columns differ): cannot resume")
        return {r["name"] for r in rows if r.get("error") is not None}  # a row cut short by a kill has no error field
    if earlier and not overwrite:
        raise ValueError(
            f"{out} holds an earlier run ({', '.join(p.name for p in earlier)}): --resume relaxes only "
            "the structures it has not finished, --overwrite starts again, or choose another folder"
        )
    return set()


def _drop_partial_line(path: Path) -> None:
    """Cut a last line that a kill left unfinished (no newline), so appended rows start on their own line."""
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        path.write_bytes(data[: data.rfind(b"\n") + 1])


def _write_frame(path: Path, atoms: Atoms, append: bool) -> None:
    """One extxyz frame in a single write call: an interrupt lands before or after it, never inside."""
    text = io.StringIO()
    write(text, atoms, format="extxyz")
    with open(path, "a" if append else "w") as f:
        f.write(text.getvalue())


def relax_all(
    items: Iterable[Tuple[str, Optional[Atoms], Optional[str]]],
    model,
    out_dir,
    progress: bool = True,
    expected: Optional[int] = None,
    resume: bool = False,
    overwrite: bool = False,
    **options,
) -> Tuple[int, int, int]:
    """Relax every (name, atoms, read error) item with ``model`` (a FacetModel), writing ``out_dir``/results.csv
    and relaxed.extxyz as each finishes (``finished_names`` for ``resume`` and ``overwrite``); ``options`` go to
    :class:`BatchedRelaxation`. Returns (structures, converged, failed) of this run (resumed: the ones it relaxed)."""
    relaxation = BatchedRelaxation(model, **options)  # checks the options before anything is written
    done = finished_names(out_dir, resume, overwrite)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if resume and (out / RESULTS).is_file():
        _drop_partial_line(out / RESULTS)
    appending = resume and (out / RESULTS).is_file() and (out / RESULTS).stat().st_size > 0  # a header to go on from
    total = converged = failed = 0
    bar = tqdm(
        total=None if expected is None else max(expected - len(done), 0), unit="structure", disable=not progress
    )  # expected: the count, if known
    with open(out / RESULTS, "a" if appending else "w", newline="") as f:
        rows = csv.DictWriter(f, fieldnames=list(CSV_COLUMNS.values()))
        if not appending:
            rows.writeheader()
            f.flush()
        written = appending and (out / RELAXED).is_file()  # a fresh run's first structure truncates relaxed.extxyz
        for result, relaxed in relaxation.run(item for item in items if item[0] not in done):
            if relaxed is not None:
                relaxed.info.update({"name": result.name, "converged": result.converged})
                _write_frame(out / RELAXED, relaxed, append=written)
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


def relax_files(
    model,
    inputs,
    out_dir,
    shard: Tuple[int, int] = (0, 1),
    device: str = "cpu",
    dtype: str = "float32",
    progress: bool = True,
    **options,
) -> Tuple[int, int, int]:
    """``facet relax``: every structure of ``inputs`` (files, folders, globs) relaxed with ``model``
    (a FacetModel, a file or a shipped name; a list of them is a committee); (structures, converged, failed)."""
    finished_names(out_dir, options.get("resume", False), options.get("overwrite", False))  # before the model loads
    if isinstance(model, (list, tuple)):
        model = Committee(model, device=device, dtype=dtype)
    else:
        model = inference_model(model, device=device, dtype=dtype)
    paths = expand_inputs(inputs)
    expected = count_structures(paths, shard) if progress else None
    return relax_all(iter_structures(paths, shard), model, out_dir, progress=progress, expected=expected, **options)
