"""Active learning for ``facet distill`` (``active.rounds`` > 0): the teacher labels only what a committee of
students disagrees on.

    start     from the generated pool (``structures``), ``holdout`` structures at random are labelled only to
              measure, and ``initial`` more at random are round 0's labels
    round r   train ``committee`` students (seeds training.seed + k) on every label so far; measure them on the
              held-out labels (force MAE of the committee mean and of student 0; how the committee's force std
              follows the true error: Pearson and Spearman correlation, over held-out structures, of the largest
              per-atom force std and the largest per-atom force error of the mean)
    pick      candidates: the pool's unlabelled structures plus snapshots of the committee's own MD from the
              seeds (``active.md``; no teacher call); those whose largest per-atom force std exceeds
              ``threshold`` eV/Å, largest first, at most ``per_round`` (``strategy: random``: ``per_round`` of
              them at random whatever their std, the baseline at the same number of labels) -> round r + 1
    stop      after ``rounds`` rounds, when nothing is picked, or after ``patience`` rounds without a lower
              held-out force MAE (committee mean); the round with the lowest one gives <training.output>/best.pt
              (its student 0)

Files: LABELS/active/holdout/part_*.extxyz; LABELS/active/round_RR/picked.extxyz (written before any label of
the round), round_RR/labels/part_*.extxyz, round_RR/report.json; LABELS/active/summary.json; students in
<training.output>/round_RR/student_K/. A rerun (after SIGKILL too) reads picks back, skips labelled parts and
finished students (final_metrics.json) and resumes an interrupted student from its checkpoint. The same
config and seed give the same picks and students when training stops on epochs or max_steps (a
``max_time_minutes`` stop depends on the machine's speed).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
from ase import Atoms
from ase.io import read, write

from ..io.atomic_write import atomic_write, atomic_write_text
from ..inference.calculator import FacetCalculator
from ..inference.committee import Committee
from ..structure.graph import atoms_to_graph, batch_graphs
from ..data.batching import pack_batches
from ..inference.single_points import predict_structures
from ..training.trainer import Trainer
from .generate import md_snapshots, min_distance
from .label import label, label_parts

PICKED = "picked.extxyz"
STRATEGIES = ("committee", "random")


def _round_dir(root: Path, r: int) -> Path:
    return root / f"round_{r:02d}"


def _labelled(folder: Path) -> List[Atoms]:
    return [a for p in label_parts(folder) for a in read(p, ":")]


def _write_once(path: Path, structures: Sequence[Atoms]) -> List[Atoms]:
    """``structures`` written atomically, or what an earlier run wrote there (its picks are kept)."""
    if path.exists():
        return read(path, ":") if path.stat().st_size > 0 else []
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: write(tmp, list(structures), format="extxyz"))
    return list(structures)


def committee_spread(
    members: Committee, structures: Sequence[Atoms], batch_atoms: int
) -> List[Tuple[np.ndarray, np.ndarray]]:
    """(mean forces (N, 3), per-atom force std (N,)) of every structure, in calls of at most ``batch_atoms``."""
    out: List[Tuple[np.ndarray, np.ndarray]] = []
    for chunk in pack_batches(list(structures), len, int(batch_atoms)):
        graphs = [atoms_to_graph(a, members.cutoff) for a in chunk]
        res = members.properties(batch_graphs(graphs), forces=True, stress=False)
        forces = res["forces"].detach().double().cpu().numpy()
        std = res["forces_std"].detach().double().cpu().numpy()
        start = 0
        for a in chunk:
            out.append((forces[start : start + len(a)], std[start : start + len(a)]))
            start += len(a)
    return out


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    rank = lambda v: np.argsort(np.argsort(v)).astype(float)  # noqa: E731  (no ties in continuous values)
    return float(np.corrcoef(rank(x), rank(y))[0, 1])


def measure(members: Committee, student0, held: Sequence[Atoms], batch_atoms: int) -> Dict[str, Any]:
    """Held-out force MAE (eV/Å) of the committee mean and of student 0, and the std-error correlations."""
    spread = committee_spread(members, held, batch_atoms)
    single = [f for _, f, _ in predict_structures(student0, held, batch_atoms)]
    true = [a.get_forces() for a in held]
    mae = float(np.mean(np.concatenate([np.abs(f - t).ravel() for (f, _), t in zip(spread, true)])))
    mae0 = float(np.mean(np.concatenate([np.abs(f - t).ravel() for f, t in zip(single, true)])))
    std = np.array([s.max(initial=0.0) for _, s in spread])
    err = np.array([np.linalg.norm(f - t, axis=1).max(initial=0.0) for (f, _), t in zip(spread, true)])
    both = len(held) > 2 and std.std() > 0 and err.std() > 0
    return {
        "holdout_structures": len(held),
        "forces_mae_committee": mae,
        "forces_mae_student0": mae0,
        "std_error_pearson": float(np.corrcoef(std, err)[0, 1]) if both else float("nan"),
        "std_error_spearman": _spearman(std, err) if both else float("nan"),
        "max_force_std_median": float(np.median(std)) if len(std) else float("nan"),
    }


def train_students(
    cfg: Dict[str, Any], parts: List[Path], folder: Path, n: int, log: Callable[[str], None]
) -> List[Path]:
    """Model files of ``n`` students trained on ``parts`` (seeds training.seed + k); finished ones are kept,
    interrupted ones resumed."""
    paths = []
    for k in range(n):
        out = folder / f"student_{k}"
        tc = dict(cfg["training"], output=str(out), seed=int(cfg["training"]["seed"]) + k)
        if not (out / "final_metrics.json").exists():
            resume = (out / "checkpoint.pt").exists()
            log(f"  student {k}: {'resuming' if resume else 'training'} in {out}")
            Trainer(
                dict(cfg, training=tc, data=dict(cfg["data"], train=[str(p) for p in parts])),
                resume=resume,
                overwrite=not resume,
            ).run()
        paths.append(out / "best.pt" if (out / "best.pt").exists() else out / "last.pt")
    return paths


def committee_md(
    members: List[Path],
    seeds: Sequence[Tuple[str, Atoms]],
    md: Dict[str, Any],
    seed: int,
    r: int,
    dtype: str,
    dmin: float,
) -> List[Atoms]:
    """Snapshots of the committee's own Langevin MD from each seed (small seeds repeated), tagged active-md."""
    if not md["temperatures"] or int(md["steps"]) < 1:
        return []
    calc = FacetCalculator([str(p) for p in members], dtype=dtype, min_distance=0.0)
    out: List[Atoms] = []
    for index, (name, atoms) in enumerate(seeds):
        if len(atoms) > int(md["max_atoms"]):
            continue
        for c, temperature in enumerate(md["temperatures"]):
            stream = int(np.random.default_rng([int(seed), 77, r, index, c]).integers(2**31))
            try:
                snaps = md_snapshots(
                    atoms,
                    stream,
                    calc,
                    float(temperature),
                    None,
                    int(md["steps"]),
                    int(md["every"]),
                    float(md["timestep_fs"]),
                )
            except (ValueError, FloatingPointError):  # the students' MD blew up: its earlier snapshots are lost
                continue
            for k, snap in enumerate(snaps):
                if min_distance(snap) < dmin:
                    continue
                a = snap.copy()
                a.calc = None
                a.info = {"source": "active-md", "parent": name, "distill_id": f"active-md:{r}:{index}:{c * 10000 + k}"}
                a.arrays = {key: v for key, v in a.arrays.items() if key in ("numbers", "positions")}
                out.append(a)
    return out


def pick(
    candidates: Sequence[Atoms],
    spread: Optional[List[Tuple[np.ndarray, np.ndarray]]],
    a: Dict[str, Any],
    rng: np.random.Generator,
) -> List[Atoms]:
    """The structures to label next (module docstring), each with its max force std in info."""
    if a["strategy"] == "random":
        order = rng.permutation(len(candidates))[: int(a["per_round"])]
        return [candidates[i] for i in sorted(order)]
    std = np.array([s.max(initial=0.0) for _, s in spread])
    above = [i for i in np.argsort(-std, kind="stable") if std[i] > float(a["threshold"])][: int(a["per_round"])]
    chosen = []
    for i in above:
        c = candidates[i].copy()
        c.info["committee_max_force_std"] = float(std[i])
        chosen.append(c)
    return chosen


def run_active(
    cfg: Dict[str, Any],
    teacher,
    pool: Sequence[Atoms],
    seeds: Callable[[], Sequence[Tuple[str, Atoms]]],
    log: Callable[[str], None] = print,
) -> Dict[str, Any]:
    """The active-learning loop (module docstring) over the generated ``pool``; ``seeds()`` gives the seed
    structures for the committee's MD. Returns the summary (also LABELS/active/summary.json)."""
    a, lab, t = cfg["active"], cfg["labels"], cfg["teacher"]
    root = Path(lab["output"]) / "active"
    part, batch, fmax = int(lab["part_size"]), int(t["batch_atoms"]), float(lab["max_force"])
    seed = int(cfg["structures"]["seed"])
    order = np.random.default_rng([seed, 99]).permutation(len(pool))
    n_hold, n_init = int(a["holdout"]), int(a["initial"])
    if n_hold + n_init > len(pool):
        raise ValueError(
            f"active.holdout ({n_hold}) + active.initial ({n_init}) exceed the {len(pool)} generated "
            "structures: generate more (structures section) or lower them"
        )
    held_out = [pool[i] for i in order[:n_hold]]
    label(teacher, held_out, root / "holdout", part, batch, fmax)
    held = _labelled(root / "holdout")
    used = {x.info["distill_id"] for x in held_out}
    train_dir = Path(cfg["train"]["training"]["output"])
    dtype = str(cfg["train"]["training"]["dtype"])
    history: List[Dict[str, Any]] = []
    best, stale = float("inf"), 0
    for r in range(int(a["rounds"]) + 1):
        rdir = _round_dir(root, r)
        picks = _round_picks(rdir, [pool[i] for i in order[n_hold : n_hold + n_init]] if r == 0 else None)
        used |= {x.info["distill_id"] for x in picks}
        label(teacher, picks, rdir / "labels", part, batch, fmax)
        students, members, report = _train_and_measure(cfg, root, r, picks, held, log)
        atomic_write_text(rdir / "report.json", json.dumps(report, indent=1) + "\n")
        history.append(report)
        if report["forces_mae_committee"] < best:
            best, stale = report["forces_mae_committee"], 0
        else:
            stale += 1
        if r == int(a["rounds"]) or stale >= int(a["patience"]):
            break
        nxt = _round_dir(root, r + 1)
        if not (nxt / PICKED).exists():
            candidates = [x for x in pool if x.info["distill_id"] not in used]
            candidates += committee_md(
                students, seeds(), a["md"], seed, r, dtype, float(cfg["structures"]["min_distance"])
            )
            _write_once(nxt / PICKED, _next_picks(members, candidates, a, batch, np.random.default_rng([seed, 98, r])))
        if (nxt / PICKED).stat().st_size == 0:
            log(f"  nothing above the threshold ({a['threshold']} eV/Å): stopping")
            break
    return _finish(history, a["strategy"], root, train_dir / "best.pt", log)


def _train_and_measure(cfg, root: Path, r: int, picks: List[Atoms], held: List[Atoms], log):
    """Round ``r``'s committee trained on every label so far, and its report on the held-out structures:
    (student model files, the committee, the report)."""
    a, batch = cfg["active"], int(cfg["teacher"]["batch_atoms"])
    train_dir, dtype = Path(cfg["train"]["training"]["output"]), str(cfg["train"]["training"]["dtype"])
    parts = [p for k in range(r + 1) for p in label_parts(_round_dir(root, k) / "labels")]
    labels = sum(len(read(p, ":")) for p in parts)
    log(f"active round {r}: {len(picks)} picked, {labels} teacher labels in all; training {a['committee']} students")
    students = train_students(cfg["train"], parts, train_dir / f"round_{r:02d}", int(a["committee"]), log)
    members = Committee([str(p) for p in students], dtype=dtype)
    report = {
        "round": r,
        "picked": len(picks),
        "labels": labels,
        "students": [str(p) for p in students],
        "picked_sources": _count(x.info.get("source", "?") for x in picks),
        **measure(members, members.members[0], held, batch),
    }
    log(
        f"  held-out force MAE: committee {report['forces_mae_committee']:.4f}, student 0 "
        f"{report['forces_mae_student0']:.4f} eV/Å; std-error correlation {report['std_error_spearman']:.2f} "
        "(Spearman)"
    )
    return students, members, report


def _round_picks(rdir: Path, initial: Optional[List[Atoms]]) -> List[Atoms]:
    """The structures round ``rdir`` labels: ``initial`` (round 0, written once), else those picked for it."""
    if initial is not None:
        return _write_once(rdir / PICKED, initial)
    return read(rdir / PICKED, ":") if (rdir / PICKED).stat().st_size > 0 else []


def _next_picks(members: Committee, candidates: List[Atoms], a: Dict[str, Any], batch: int, rng) -> List[Atoms]:
    spread = committee_spread(members, candidates, batch) if a["strategy"] == "committee" else None
    return pick(candidates, spread, a, rng)


def _finish(history: List[Dict[str, Any]], strategy: str, root: Path, final: Path, log) -> Dict[str, Any]:
    """The best round's student 0 copied to ``final``; the summary written and returned."""
    chosen = min(history, key=lambda h: h["forces_mae_committee"])
    atomic_write(final, lambda tmp: shutil.copyfile(chosen["students"][0], tmp))
    summary = {"strategy": strategy, "rounds": history, "best_round": chosen["round"], "model": str(final)}
    atomic_write_text(root / "summary.json", json.dumps(summary, indent=1) + "\n")
    log(
        f"active learning done: round {chosen['round']} is best (held-out force MAE "
        f"{chosen['forces_mae_committee']:.4f} eV/Å, {chosen['labels']} teacher labels); {final}"
    )
    return summary


def _count(values) -> Dict[str, int]:
    out: Dict[str, int] = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return dict(sorted(out.items()))
