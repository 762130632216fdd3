"""``facet distill CONFIG.yaml``: generate structures, label them with the teacher, train the student.

    generate  seed structures -> structures (``generate.py``), saved once as LABELS/structures.extxyz
              with what made them (LABELS/structures.json: the structures section, the teacher, drops)
    label     the teacher's energy, forces and stress, part by part (``label.py``; resumable)
    report    LABELS/report.json and report.png (``report.py``)
    train     ``facet train`` on the label parts, with the config's training sections
    (active)  with ``active.rounds`` > 0, label and train are the active-learning loop instead (``active.py``):
              a committee of students picks what the teacher labels, round by round

A rerun picks up where the last one stopped: saved structures are read back (and must come from the
same structures section and teacher), parts already labelled are skipped, and ``resume`` continues
training from its checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Dict, List, Sequence, Tuple

import torch
from ase import Atoms
from ase.io import read
from tqdm import tqdm

from ..io.atomic_write import atomic_write_text
from ..inference.calculator import FacetCalculator
from ..inference.prepare import inference_model
from ..training.trainer import Trainer
from ..io.structure_inputs import expand_inputs, iter_structures
from .active import run_active
from .config import parse_slice
from .generate import generate
from .label import STRUCTURES, label, label_parts, rejected_ids, save_structures
from .report import summarize, write_report

STAGES = ("generate", "label", "train")


def _device(name: str) -> str:
    return ("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name


def read_seeds(patterns: Sequence[str], frames: str = ":"):
    """(name, atoms) of every seed structure, then the slice ``frames`` of them (in input order)."""
    seeds = []
    for name, atoms, error in iter_structures(expand_inputs(patterns)):
        if error:
            raise ValueError(f"seed structure {name}: {error}")
        seeds.append((name, atoms))
    seeds = seeds[parse_slice(frames)]
    if not seeds:
        raise ValueError(f"no seed structure in {list(patterns)} (seed_frames {frames!r})")
    return seeds


def run_distill(
    cfg: Dict[str, Any],
    stages: Sequence[str] = STAGES,
    resume: bool = False,
    overwrite: bool = False,
    log: Callable[[str], None] = print,
) -> Dict[str, Any]:
    """The stages asked for: structures (generated once, or read back), labels (or active-learning rounds),
    training on the labels."""
    out = Path(cfg["labels"]["output"])
    out.mkdir(parents=True, exist_ok=True)
    t = cfg["teacher"]
    device = _device(t["device"])
    teacher = inference_model(t["model"], device=device, dtype=t["dtype"])
    result: Dict[str, Any] = {"labels": str(out)}
    structures, dropped = _structures(cfg, stages, teacher, device, out, log)
    if int(cfg.get("active", {}).get("rounds", 0)) > 0 and ("label" in stages or "train" in stages):
        seeds = lambda: read_seeds(cfg["structures"]["seeds"], cfg["structures"]["seed_frames"])  # noqa: E731
        result["active"] = run_active(cfg, teacher, structures, seeds, log)
        return result
    if "label" in stages:
        result["report"] = _label_stage(cfg, teacher, structures, dropped, out, log)
    if "train" in stages:
        parts = label_parts(out)
        if not parts:
            raise ValueError(f"no label parts in {out}: run the label stage first")
        train_cfg = dict(cfg["train"])
        train_cfg["data"] = dict(train_cfg["data"], train=[str(p) for p in parts])
        result["train"] = Trainer(train_cfg, resume=resume, overwrite=overwrite).run()
    return result


def _structures(cfg, stages, teacher, device, out: Path, log) -> Tuple[List[Atoms], Dict[str, Any]]:
    """The run's structures and what generation dropped: read back from ``out`` (made by the same structures
    section and teacher), or generated from the seeds and written there."""
    t = cfg["teacher"]
    recipe = {"structures": cfg["structures"], "teacher": str(t["model"])}
    meta_path = out / "structures.json"
    if (out / STRUCTURES).exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("recipe") != json.loads(json.dumps(recipe)):
            raise ValueError(
                f"{out} holds structures made by another structures section or teacher: use a new "
                "labels.output folder, or delete this one to start again"
            )
        structures = read(out / STRUCTURES, ":")
        log(f"{len(structures)} structures read back from {out / STRUCTURES}")
        return structures, meta.get("dropped", {})
    if "generate" not in stages and "label" not in stages:
        raise ValueError(f"no structures in {out}: run the generate stage first")
    seeds = read_seeds(cfg["structures"]["seeds"], cfg["structures"]["seed_frames"])
    log(f"{len(seeds)} seed structures; generating")
    bar = tqdm(total=len(seeds), desc="generate", unit="seed", disable=None)
    structures, dropped = generate(
        seeds,
        cfg["structures"],
        lambda: FacetCalculator(teacher, device=device, dtype=t["dtype"]),
        progress=lambda name: bar.update(1),
    )
    bar.close()
    structures = save_structures(out, structures)
    meta = {"recipe": recipe, "dropped": dropped, "count": len(structures)}
    atomic_write_text(meta_path, json.dumps(meta, indent=1) + "\n")
    log(f"{len(structures)} structures written to {out / STRUCTURES} (dropped: {dropped or 'none'})")
    return structures, dropped


def _label_stage(cfg, teacher, structures, dropped, out: Path, log) -> Dict[str, Any]:
    """The teacher's labels of every structure, in resumable parts; the report of what was labelled."""
    bar = tqdm(total=None, desc="label", unit="part", disable=None)

    def progress(done, total):
        bar.total = total
        bar.n = done
        bar.refresh()

    t, lc = cfg["teacher"], cfg["labels"]
    counts = label(
        teacher, structures, out, int(lc["part_size"]), int(t["batch_atoms"]), float(lc["max_force"]), progress
    )
    bar.close()
    labelled = [a for p in label_parts(out) for a in read(p, ":")]
    summary = summarize(structures, labelled, dropped, len(rejected_ids(out)))
    write_report(out, summary, labelled)
    log(
        f"labels: {len(labelled)} structures in {len(label_parts(out))} parts ({counts['skipped_parts']} parts "
        f"already there), {counts['rejected']} rejected now ({summary['rejected']} in all); "
        f"report: {out / 'report.json'}"
    )
    return summary
