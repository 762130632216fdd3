"""Batched single points: energy, forces and stress of many structures in few model calls.

    results = facetpot.predict(["a.cif", "folder/", atoms, structure], model="facet-7net0-spline")
    results[0]["energy"], results[0]["forces"], results[0]["stress"]

Structures are packed into graphs of at most ``batch_atoms`` atoms (``data.batching.pack_batches``),
so a screening of small cells costs a few large model calls instead of one small call per structure.
Within a window of ``WINDOW_BATCHES`` batches they are packed in order of their largest neighbour count:
the density backend pads every atom's neighbours to the largest count of its graph, and a graph mixing a
dense oxide with a sparse molecule-like cell pays that padding on every atom (benchmarks/RESULTS.md,
"Measurements behind design choices"). A structure that cannot be evaluated (a file that does not read, an
element the model does not cover, NaN positions, a degenerate cell) gets an ``error`` and the others go on; results
come back in input order, one per structure.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from ase import Atoms

from ..data.batching import pack_batches
from ..structure.graph import AtomicGraph, atoms_to_graph, batch_graphs
from ..structure.option_checks import at_least
from ..structure.validation import MIN_DISTANCE, has_volume
from ..model import FacetModel
from .ase_results import as_numpy, energy_problem, voigt
from .backend_choice import asked_backend
from .engine_library import engine_choice
from .model_source import model_path
from .prepare import inference_model
from ..pretrained import DEFAULT_MODEL
from ..derivatives import compute_properties
from ..structure.adaptors import to_atoms
from ..io.structure_inputs import expand_inputs, iter_structures  # the command line's own reader

#: atoms per model call by device type: large enough that a call's fixed cost is small beside its arithmetic
DEFAULT_BATCH_ATOMS = {"cpu": 512, "cuda": 4096}
#: batches of structures sorted by neighbour count together (the look-ahead; memory holds this many)
WINDOW_BATCHES = 16


def default_batch_atoms(device) -> int:
    return DEFAULT_BATCH_ATOMS.get(torch.device(device).type, 2048)


_Item = Tuple[str, Optional[Atoms], Optional[str]]


def _items(structures) -> Iterator[_Item]:
    """(name, atoms, error) for structures given as objects, files, folders or globs (or a list of them)."""
    # one structure, not a list (a pymatgen Structure iterates over its sites; an Atoms over its atoms)
    single = isinstance(structures, (str, Path, Atoms)) or type(structures).__module__.startswith("pymatgen")
    if single or not isinstance(structures, Iterable):
        structures = [structures]
    for k, s in enumerate(structures):
        if isinstance(s, (str, Path)):
            yield from iter_structures(expand_inputs([s]))
            continue
        try:
            atoms = to_atoms(s)
            yield str(atoms.info.get("name", k)), atoms, None
        except TypeError as exc:
            yield str(k), None, str(exc)


def predict(
    structures,
    model: Union[FacetModel, str, Path, None] = None,
    device: str = "cpu",
    dtype: Optional[str] = "float32",
    batch_atoms: Optional[int] = None,
    energies: bool = False,
    backend: Optional[str] = None,
    min_distance: float = MIN_DISTANCE,
) -> List[Dict[str, Any]]:
    """Energy (eV), forces ((N, 3) eV/Å) and stress (Voigt xx yy zz yz xz xy, eV/Å^3, tensile positive;
    None for a structure without a periodic cell) of every structure, in input order, as dicts with
    ``name``, ``energy``, ``forces``, ``stress``, ``error`` ("" when evaluated) and, with ``energies``,
    per-atom energies. ``structures``: ASE Atoms, pymatgen Structure/Molecule, files, folders or globs,
    or a list of them. ``model``: an object (not changed), a file or a shipped name (default: the
    shipped default model); ``dtype`` None keeps the model's own; ``batch_atoms`` None: 512 on a CPU,
    4096 on CUDA (``DEFAULT_BATCH_ATOMS``); a structure with atoms closer than ``min_distance`` Å gets an
    ``error`` naming the pair (0 allows it)."""
    return [
        row for row, _ in iter_predict(structures, model, device, dtype, batch_atoms, energies, backend, min_distance)
    ]


def iter_predict(
    structures,
    model: Union[FacetModel, str, Path, None] = None,
    device: str = "cpu",
    dtype: Optional[str] = "float32",
    batch_atoms: Optional[int] = None,
    energies: bool = False,
    backend: Optional[str] = None,
    min_distance: float = MIN_DISTANCE,
) -> Iterator[Tuple[Dict[str, Any], Optional[Atoms]]]:
    """:func:`predict` as a stream of (row, atoms) pairs (atoms None where the structure did not read), in
    input order, one window of ``WINDOW_BATCHES`` batches held at a time: what ``facet predict`` writes as it goes."""
    batch_atoms = default_batch_atoms(device) if batch_atoms is None else int(at_least("batch_atoms", batch_atoms, 1))
    at_least("min_distance", min_distance, 0.0, "Å")
    m = prepared_model(DEFAULT_MODEL if model is None else model, device, dtype, backend)
    return _predict_stream(structures, m, batch_atoms, energies, min_distance)  # options checked before any output


#: the models the last predict calls prepared, by (file, its size and time, device, dtype, backend, engine choice)
_PREPARED: "OrderedDict[tuple, FacetModel]" = OrderedDict()
#: how many :data:`_PREPARED` keeps
KEEP_PREPARED = 2


def prepared_model(model: Union[FacetModel, str, Path], device: str, dtype: Optional[str], backend) -> FacetModel:
    """``inference_model``, reused for a model file or shipped name that an earlier call prepared with the same options
    (and the file unchanged since): a loop of ``predict`` calls reads, prepares and compiles the model once, as a
    calculator built once does. A FacetModel object is prepared afresh each time (the caller may change it)."""
    if isinstance(model, FacetModel):
        return inference_model(model, device=device, dtype=dtype, backend=backend)
    path = model_path(model)
    stat = path.stat()
    options = (str(device), dtype, asked_backend(backend), engine_choice())
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns) + options
    if key not in _PREPARED:
        _PREPARED[key] = inference_model(path, device=device, dtype=dtype, backend=backend)
        while len(_PREPARED) > KEEP_PREPARED:
            _PREPARED.popitem(last=False)
    _PREPARED.move_to_end(key)
    return _PREPARED[key]


def _predict_stream(
    structures, m: FacetModel, batch_atoms: int, energies: bool, min_distance: float
) -> Iterator[Tuple[Dict[str, Any], Optional[Atoms]]]:

    def checked(item: _Item) -> Tuple[Dict[str, Any], Optional[Atoms], Optional[AtomicGraph]]:
        name, atoms, error = item
        row: Dict[str, Any] = {
            "name": name,
            "energy": float("nan"),
            "forces": None,
            "stress": None,
            "error": error or "",
        }
        if atoms is not None and not error:
            try:
                graph = atoms_to_graph(atoms, m.cutoff, min_distance=min_distance)  # the checks, with their messages
                m.species_index(graph.numbers)  # elements the model covers
                return row, atoms, graph
            except Exception as exc:  # noqa: BLE001 - this structure's error; the others go on
                row["error"] = f"{type(exc).__name__}: {exc}".splitlines()[0]
        return row, atoms, None

    items = (checked(item) for item in _items(structures))
    for window in pack_batches(
        items, lambda it: it[2].num_atoms if it[2] is not None else 0, WINDOW_BATCHES * batch_atoms
    ):
        good = sorted((it for it in window if it[2] is not None), key=lambda it: it[2].max_neighbors())
        for batch in pack_batches(good, lambda it: it[2].num_atoms, batch_atoms):
            for (row, _, _), result in zip(batch, evaluate_graphs(m, [g for _, _, g in batch], energies)):
                row.update(result)
        for row, atoms, _ in window:
            yield row, atoms


def evaluate_graphs(model: FacetModel, graphs: List[AtomicGraph], energies: bool = False) -> List[Dict[str, Any]]:
    """One call of ``model`` (prepared, on its device and dtype) for single-structure graphs: per graph
    energy, forces, stress (None where the cell has no volume: ``validation.has_volume``), per-atom energies if
    asked; float64 numpy.
    A non-finite energy becomes that structure's ``error``."""
    cells = [has_volume(as_numpy(g.cell[0])) for g in graphs]
    out = compute_properties(model, batch_graphs(graphs).to(model.device, model.dtype), forces=True, stress=any(cells))
    energy, forces, per_atom = as_numpy(out["energy"]), as_numpy(out["forces"]), as_numpy(out["energies"])
    stress = voigt(as_numpy(out["stress"])) if any(cells) else None
    rows: List[Dict[str, Any]] = []
    off = 0
    for k, (g, periodic) in enumerate(zip(graphs, cells)):
        n = g.num_atoms
        problem = energy_problem(energy[k])
        if problem:
            rows.append({"error": problem})
        else:
            row = {
                "energy": float(energy[k]),
                "forces": forces[off : off + n],
                "stress": stress[k] if periodic else None,
            }
            if energies:
                row["energies"] = per_atom[off : off + n]
            rows.append(row)
        off += n
    return rows


def predict_structures(
    model: FacetModel, structures: Sequence[Atoms], batch_atoms: int = 2048
) -> List[Tuple[float, np.ndarray, Optional[np.ndarray]]]:
    """[(energy eV, forces (N, 3) eV/Å, stress Voigt (6,) eV/Å^3 or None)] of a prepared ``model`` for ASE
    structures (validated; a bad one raises), packed into calls of at most ``batch_atoms`` atoms; float64
    numpy, stress for structures with a periodic cell. The labelling loop of distillation and the benchmarks."""
    out: List[Tuple[float, np.ndarray, Optional[np.ndarray]]] = []
    for chunk in pack_batches(structures, len, int(batch_atoms)):
        for row in evaluate_graphs(model, [atoms_to_graph(a, model.cutoff) for a in chunk]):
            out.append((row.get("energy", float("nan")), row.get("forces"), row.get("stress")))
    return out
