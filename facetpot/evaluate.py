"""``facet eval MODEL DATA``: errors overall and per config_type, a JSON report, parity plots.

Energies are compared per atom (meV/atom in the report), forces per component (eV/Å), stress per
component (eV/Å^3 and GPa). Frames stream from the files, packed by an atom budget
(``facetpot.data.batching.pack_batches``) in order of neighbour count within windows of
``single_points.WINDOW_BATCHES`` batches (less padding in the density backend); the model runs on the
inference path (``inference.prepare.inference_model``); only the points of the parity plots are kept
(``facetpot.plots``: at most 200,000 per panel drawn, sampled evenly).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
from tqdm import tqdm
import torch

from .io.atomic_write import atomic_write_text
from .data.batching import collate, frame_to_graph, pack_batches
from .data.readers import iter_frames
from .inference.prepare import inference_model
from .inference.model_source import torch_dtype
from .io.output_folder import check_output_folder
from .plots import parity_plots
from .derivatives import compute_properties
from .inference.single_points import WINDOW_BATCHES
from .training.loss import ErrorMetrics
from .structure.units import EV_PER_A3_TO_GPA


def evaluate_model(
    model,
    data,
    out_dir="eval",
    keys: Optional[Dict[str, str]] = None,
    device="cpu",
    dtype="float64",
    batch_atoms=2048,
    plots=True,
    progress: bool = False,
) -> Dict:
    check_output_folder(out_dir)  # before any model call
    m = inference_model(model, device=device, dtype=dtype)
    tdtype = torch_dtype(dtype)
    metrics = ErrorMetrics()
    points: Dict[str, List[np.ndarray]] = {
        "e_ref": [],
        "e_pred": [],
        "f_ref": [],
        "f_pred": [],
        "s_ref": [],
        "s_pred": [],
    }
    rejected = []
    bar = tqdm(unit="frame", desc="facet eval", disable=not progress)
    for window in pack_batches(iter_frames(data, keys=keys), lambda fr: len(fr.numbers), WINDOW_BATCHES * batch_atoms):
        good = []
        for fr in window:
            why = fr.problem()
            (rejected.append(f"{fr.name}: {why}") if why else good.append(frame_to_graph(fr, m.cutoff)))
        # frames of similar neighbour counts together: less padding in the density backend (single_points)
        good.sort(key=lambda lg: lg.graph.max_neighbors())
        for chunk in pack_batches(good, lambda lg: lg.graph.num_atoms, batch_atoms):
            _evaluate_batch(m, collate(chunk).to(device, tdtype), metrics, points)
        bar.update(len(window))
    bar.close()
    result = metrics.result()
    if not result:
        raise ValueError(_no_frames_message(data, rejected))
    report = {group: _with_units(d) for group, d in result.items()}
    report["rejected_frames"] = rejected
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "report.json", json.dumps(report, indent=1))
    if plots:
        parity_plots({k: np.concatenate(v) if v else np.zeros(0) for k, v in points.items()}, out)
    return report


def _no_frames_message(data, rejected: List[str]) -> str:
    """Why nothing could be evaluated: unlabelled structures (with what to run instead), or the rejections."""
    if rejected and all("missing or non-finite energy" in r for r in rejected):
        return (
            f"no usable frames in {data}: the structures carry no energy labels (another key? --key energy=KEY); "
            "for predictions of unlabelled structures use `facet predict FILES -o DIR` (energies, forces, stresses "
            "in DIR/predicted.extxyz)"
        )
    return f"no usable frames in {data}" + (f"; rejected: {rejected[:5]}" if rejected else "")


def _with_units(d: Dict[str, float]) -> Dict[str, float]:
    """One group's errors under names with their units: meV/atom, eV/Å, eV/Å^3 and GPa."""
    r = {"frames": d["frames"]}
    for k, v in d.items():
        if k.startswith("energy_per_atom"):
            r[k.replace("energy_per_atom", "energy") + "_meV_per_atom"] = 1e3 * v
        elif k.startswith("forces"):
            r[k + "_eV_per_A"] = v
        elif k.startswith("stress"):
            r[k + "_eV_per_A3"] = v
            r[k + "_GPa"] = v * EV_PER_A3_TO_GPA
    return r


def _evaluate_batch(model, batch, metrics: ErrorMetrics, points: Dict[str, List[np.ndarray]]) -> None:
    """One model call for a collated batch of labelled frames: errors into ``metrics``, parity points into
    ``points``."""
    has_s = bool((~torch.isnan(batch.stress)).any())
    pred = compute_properties(model, batch.graph, forces=True, stress=has_s)
    pred = {k: v.detach() for k, v in pred.items()}
    metrics.update(pred, batch)
    n = batch.num_atoms.to(batch.energy.dtype)
    points["e_ref"].append((batch.energy / n).cpu().numpy())
    points["e_pred"].append((pred["energy"] / n).cpu().numpy())
    ok = ~torch.isnan(batch.forces)
    points["f_ref"].append(batch.forces[ok].cpu().numpy())
    points["f_pred"].append(pred["forces"][ok].cpu().numpy())
    if has_s:
        sok = ~torch.isnan(batch.stress)
        points["s_ref"].append(batch.stress[sok].cpu().numpy())
        points["s_pred"].append(pred["stress"][sok].cpu().numpy())
