"""Training race: facetpot, MACE and SevenNet trained from scratch on the same data, machine and wall time.

    python benchmarks/training_race.py                                   # 6 datasets x budgets 10, 30 min x 3 models
    python benchmarks/training_race.py --datasets Si LiPS --minutes 10 --models facet mace
    python benchmarks/training_race.py --concurrent                      # a race's models at once, 1 thread each
    python benchmarks/training_race.py --smoke --datasets Si             # the plumbing: 1 min, a few frames, no record

The full race with the defaults, one model after another on 2 threads: 3 models x 6 datasets x (10 + 30) min =
12 h of training, plus about 1-3 min per run for setup (reading data, graphs, statistics), the peers' own end
of training and the test evaluation: about 13-14 h in all (--concurrent: about 5 h).

Data (read-only, ``harness.SHARED_DATA``; the splits are written under ``--work``, outside the repository,
once per dataset and used by all three codes): mlearn Si/Ge/Li/Mo (train ``mlearn/X_training``, test
``mlearn/X_test``); LiPS (``lips/lips_devset``, no stress: a seeded 20% is the test set); MPtrj
(``mptrj/mptrj-random-1k``: even frames train, odd frames test, as ``pretrained.py`` splits it). Validation: a
seeded 10% of the training frames, the same frames for every code (frames with an element the rest lacks move
to training; test frames with an element training lacks are dropped and counted). Labels: extxyz keys
``energy``, ``forces``, ``stress`` (eV, eV/Å, eV/Å^3, ASE sign); each code reads them through ASE's
calculator results (MACE is told ``--energy_key energy --forces_key forces --stress_key stress``, which it
copies to REF_* itself; SevenNet reads ASE's ``get_stress`` and converts to its own sign and kbar).

Models, each with its own recommended from-scratch recipe, float32 training for all three:

* facet: ``facet train`` with the repository's recipe for the data (``training/mlearn_<el>.yaml``; LiPS, which
  has none, the mlearn style of ``training/mlearn_si.yaml``; MPtrj ``training/mptrj_1k.yaml``), with only
  data paths, output, threads, ``epochs: 100000`` and ``max_time_minutes: BUDGET`` changed.
* MACE (``mace-torch``, ``MACE_VERSION``): ``mace_run_train`` as the Training section of its README recommends
  (https://github.com/ACEsuit/mace#training, the same text as its PyPI page): ``--model MACE``, ``--ema
  --ema_decay 0.99 --amsgrad``, ``--E0s average`` (its advice for a from-scratch fit without isolated-atom
  energies), r_max 5 Å; size ``--num_channels 64 --max_L 1`` (the README's recommended ``128x0e + 128x1o``,
  i.e. ``--num_channels=128 --max_L=1``, halved for a few hundred frames on a CPU); batch 5 (the README: adapt
  the batch size to the training set; its example uses 10); ``mace_run_train``'s default loss weights
  (energy 1, forces 100, stress 1; ``--loss stress`` where the data has stress, else ``weighted``), lr 0.01,
  ReduceLROnPlateau.
  ``--default_dtype float32``: MACE's default is float64, but its README says float32 trains about 2x faster,
  and facet and SevenNet train in float32, so all three race at the same precision. Stage two (``--stage_two``,
  the README's last ~20% of the epochs with a larger energy weight) is off: it starts at an epoch number, which a
  wall-time budget does not define.
* SevenNet (``sevenn``, ``SEVENN_VERSION``): ``sevenn_preset base`` (3 layers, 32 channels, lmax 2, cutoff
  5 Å, Adam lr 0.005 with exponential decay 0.99 per epoch, force weight 0.1, stress weight 1e-6, batch 4),
  adapted to the data: the split's files, ``is_train_stress`` only where the data has stress, MAE error
  records, ``shift: elemwise_reference_energies`` for the multi-element sets (LiPS, MPtrj; the preset's
  ``per_atom_energy_mean`` for one element), epochs 100000. SevenNet trains in float32 only.

Budget (``--minutes``, each model uses all of it): the clock starts at each code's first training step, so
data preprocessing (caches, graphs, E0 fits, model building) counts for no one. Validation time during training
counts for everyone. facet stops itself (``training.max_time_minutes``: after the step that crosses the budget
it validates, writes ``best.pt`` if that improved, and ends); its cosine schedule anneals within the budget,
while MACE's and SevenNet's schedules (per epoch) do not know it. MACE and SevenNet run under
``training_race_worker.py`` in their own venvs, which stops them the same way: at the first batch past the
budget their training epoch ends, they validate and checkpoint as at any epoch end, and the next epoch stops
them (MACE then saves its best-validation ``mace.model`` itself; SevenNet's ``checkpoint_best.pth`` is its
model). facet's on-the-fly neighbour lists are part of its training time, while MACE and SevenNet build their
graphs before the clock starts. ``--threads`` torch threads per model, models one after another;
``--concurrent``: all models of a race start at once, 1 thread each (on a machine with fewer cores than models
they share the cores; their setup times differ, so their training phases overlap for most of the budget, not
exactly).

Evaluation, the same for all: the best-validation model of each run (each code's own choice: facet the lowest
energy + force MAE, MACE the lowest validation loss, SevenNet the lowest validation TotalLoss) through its own
ASE calculator in float32, in its own venv (``training_race_worker.py eval``, through ``harness.run_worker``):
test energy MAE (meV/atom), force MAE per component (eV/Å), stress MAE per Voigt component (GPa, where the data
has stress). The table's "lowest valid F MAE" is the lowest point of the run's learning curve.

Outputs under ``-o`` (default benchmarks/out/training_race/, git-ignored): ``learning_curves_<dataset>.png``
(validation force MAE vs training wall time, every model and budget), ``table.md``, ``results.json``; runs and
splits under ``--work`` (default ~/.cache/facetpot-bench/training_race). The table goes to
benchmarks/RESULTS.md (``harness.append_results``) unless ``--smoke`` or ``--no-record``. The peers' venvs
are made once under ~/.cache/facetpot-bench/venvs: ``pip install torch==2.13.0`` first (the CPU wheel on this
machine's disk; an unpinned torch would pull a CUDA build), then the peer with ``-c`` a constraints file that
holds ``torch==2.13.0``. A peer that cannot be installed that way is reported (pip's own message) and skipped.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import HERE, ROOT, SHARED_DATA, append_results, run_worker  # noqa: E402

WORKER = str(HERE / "training_race_worker.py")
CACHE = Path.home() / ".cache" / "facetpot-bench"
VENVS = CACHE / "venvs"
TORCH_VERSION = "2.13.0"
TORCH = f"torch=={TORCH_VERSION}"
MACE_VERSION = "mace-torch==0.3.16"
SEVENN_VERSION = "sevenn==0.13.0"
#: peer -> (pip requirement, import check)
PEERS = {
    "mace": (MACE_VERSION, "import mace.cli.run_train, mace.calculators"),
    "sevennet": (SEVENN_VERSION, "import sevenn.main.sevenn, sevenn.calculator"),
}
MODELS = ["facet", "mace", "sevennet"]
LABELS = {"facet": "facetpot", "mace": "MACE", "sevennet": "SevenNet"}
MODEL_FILES = {"facet": "best.pt", "mace": "mace.model", "sevennet": "checkpoint_best.pth"}
MLEARN = ["Si", "Ge", "Li", "Mo"]
DATASETS = MLEARN + ["LiPS", "MPtrj"]
FACET_RECIPES = {
    **{el: f"mlearn_{el.lower()}.yaml" for el in MLEARN},
    "LiPS": "mlearn_si.yaml",
    "MPtrj": "mptrj_1k.yaml",
}
SEED = 0
VALID_FRACTION = 0.1
LIPS_TEST_FRACTION = 0.2
SMOKE_FRAMES = (24, 6, 6)  # train, valid, test frames of a --smoke run
EPOCHS = 100000  # "until the budget stops it"
MACE_ARGS = [
    "--model",
    "MACE",
    "--num_channels",
    "64",
    "--max_L",
    "1",
    "--r_max",
    "5.0",
    "--E0s",
    "average",
    "--batch_size",
    "5",
    "--valid_batch_size",
    "10",
    "--max_num_epochs",
    str(EPOCHS),
    "--ema",
    "--ema_decay",
    "0.99",
    "--amsgrad",
    "--energy_weight",
    "1.0",
    "--forces_weight",
    "100.0",
    "--stress_weight",
    "1.0",
    "--default_dtype",
    "float32",
    "--device",
    "cpu",
    "--seed",
    str(SEED),
    "--error_table",
    "PerAtomMAE",
    "--plot",
    "False",
    "--energy_key",
    "energy",
    "--forces_key",
    "forces",
    "--stress_key",
    "stress",
]


def log(msg: str) -> None:
    print(f"# {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------- venvs
def peer_python(peer: str) -> Path:
    return VENVS / peer / "bin" / "python"


def install_peer(peer: str) -> Optional[str]:
    """The peer's own venv (made once): torch==2.13.0, then the peer constrained to it. None, or why it failed."""
    venv, (requirement, check) = VENVS / peer, PEERS[peer]
    stamp = venv / ".training_race"
    if stamp.is_file() and stamp.read_text() == requirement:
        return None
    VENVS.mkdir(parents=True, exist_ok=True)
    constraints = VENVS / "constraints.txt"
    constraints.write_text(TORCH + "\n")
    py = str(peer_python(peer))
    steps = [
        [sys.executable, "-m", "venv", str(venv)],
        [py, "-m", "pip", "install", "-q", TORCH],
        [py, "-m", "pip", "install", "-q", "-c", str(constraints), requirement],
        [py, "-c", f"{check}; import torch; assert torch.__version__.split('+')[0] == '{TORCH_VERSION}'"],
    ]
    for cmd in steps:
        log(f"{peer}: {' '.join(cmd[1:])}")
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            lines = [ln for ln in proc.stderr.splitlines() if "is ignored: it is neither" not in ln]
            return f"`{' '.join(cmd[1:])}` failed: " + " ".join(lines[-6:])
    stamp.write_text(requirement)
    return None


# -------------------------------------------------------------------------------------------- data
def source_frames(dataset: str) -> Tuple[list, list]:
    """(training pool, test frames) of ``dataset``, read from SHARED_DATA."""
    from ase.io import read

    if dataset in MLEARN:
        folder = SHARED_DATA / "mlearn"
        return read(folder / f"{dataset}_training.extxyz", ":"), read(folder / f"{dataset}_test.extxyz", ":")
    if dataset == "LiPS":
        frames = read(SHARED_DATA / "lips" / "lips_devset.extxyz", ":")
        order = np.random.default_rng(SEED).permutation(len(frames))
        n_test = round(LIPS_TEST_FRACTION * len(frames))
        return [frames[i] for i in sorted(order[n_test:])], [frames[i] for i in sorted(order[:n_test])]
    frames = read(SHARED_DATA / "mptrj" / "mptrj-random-1k.extxyz", ":")
    return frames[0::2], frames[1::2]


def elements(frames) -> set:
    return {s for a in frames for s in a.get_chemical_symbols()}


def make_split(dataset: str, work: Path, smoke: bool) -> Tuple[Path, dict]:
    """train/valid/test.extxyz of ``dataset`` under ``work/splits`` and what they hold (split.json)."""
    from ase.io import write

    pool, test = source_frames(dataset)
    order = np.random.default_rng(SEED).permutation(len(pool))
    n_valid = max(1, round(VALID_FRACTION * len(pool)))
    valid, train = [pool[i] for i in order[:n_valid]], [pool[i] for i in order[n_valid:]]
    if smoke:
        train, valid, test = train[: SMOKE_FRAMES[0]], valid[: SMOKE_FRAMES[1]], test[: SMOKE_FRAMES[2]]
    train += [a for a in valid if not set(a.get_chemical_symbols()) <= elements(train)]
    valid = [a for a in valid if set(a.get_chemical_symbols()) <= elements(train)]
    known = [a for a in test if set(a.get_chemical_symbols()) <= elements(train)]
    folder = work / "splits" / (dataset + ("-smoke" if smoke else ""))
    folder.mkdir(parents=True, exist_ok=True)
    for name, frames in (("train", train), ("valid", valid), ("test", known)):
        write(folder / f"{name}.extxyz", frames, format="extxyz")
    info = {
        "train": len(train),
        "valid": len(valid),
        "test": len(known),
        "test_dropped": len(test) - len(known),
        "elements": sorted(elements(train)),
        "stress": all("stress" in a.calc.results for a in train),
    }
    (folder / "split.json").write_text(json.dumps(info, indent=1))
    return folder, info


# ---------------------------------------------------------------------------------------- commands
def facet_command(dataset: str, split: Path, run: Path, minutes: float, info: dict, threads: int) -> List[str]:
    """``facet train`` with the repository's recipe for the data; only paths, threads, epochs and budget changed."""
    cfg = yaml.safe_load((ROOT / "training" / FACET_RECIPES[dataset]).read_text())
    cfg["data"] = {"train": str(split / "train.extxyz"), "valid": str(split / "valid.extxyz")}
    cfg["training"].update(output=str(run), threads=threads, tensorboard=False, epochs=EPOCHS, max_time_minutes=minutes)
    path = run / "facet.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return [sys.executable, "-m", "facetpot.cli", "train", str(path), "--overwrite"]


def mace_command(dataset: str, split: Path, run: Path, minutes: float, info: dict, threads: int) -> List[str]:
    """``mace_run_train`` with ``MACE_ARGS`` on the split, under the worker's budget, in MACE's venv."""
    args = [
        "--name",
        "mace",
        "--work_dir",
        str(run),
        "--train_file",
        str(split / "train.extxyz"),
        "--valid_file",
        str(split / "valid.extxyz"),
        "--loss",
        "stress" if info["stress"] else "weighted",
        *MACE_ARGS,
    ]
    return budgeted_peer("mace", minutes, run, args)


def budgeted_peer(peer: str, minutes: float, run: Path, args: List[str]) -> List[str]:
    """The worker's ``train`` command running the peer's own trainer (``args``) in its venv under the budget,
    writing its learning curve to ``run/curve.jsonl``."""
    python = str(peer_python(peer))
    return [
        python,
        WORKER,
        "train",
        "--budget-seconds",
        str(60 * minutes),
        "--curve",
        str(run / "curve.jsonl"),
        peer,
    ] + ["--", *args]


def sevennet_config(split: Path, run: Path, info: dict) -> Path:
    """``sevenn_preset base``, adapted to the split (files, stress, shift) and to a wall-time budget."""
    preset = subprocess.run(
        [str(peer_python("sevennet").parent / "sevenn_preset"), "base"], check=True, capture_output=True, text=True
    ).stdout
    cfg = yaml.safe_load(preset)
    records = [["Energy", "MAE"], ["Force", "MAE"]] + ([["Stress_GPa", "MAE"]] if info["stress"] else [])
    cfg["train"].update(
        random_seed=SEED,
        epoch=EPOCHS,
        per_epoch=EPOCHS,
        is_train_stress=info["stress"],
        error_record=records + [["TotalLoss", "None"]],
    )
    cfg["data"].update(
        load_trainset_path=[str(split / "train.extxyz")], load_validset_path=[str(split / "valid.extxyz")]
    )
    cfg["data"].pop("load_testset_path", None)
    if len(info["elements"]) > 1:
        cfg["data"]["shift"] = "elemwise_reference_energies"
    path = run / "input.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def sevennet_command(dataset: str, split: Path, run: Path, minutes: float, info: dict, threads: int) -> List[str]:
    """``sevenn train input.yaml`` (``sevennet_config``) under the worker's budget, in SevenNet's venv."""
    return budgeted_peer("sevennet", minutes, run, ["train", str(sevennet_config(split, run, info)), "-w", str(run)])


COMMANDS = {"facet": facet_command, "mace": mace_command, "sevennet": sevennet_command}


# ---------------------------------------------------------------------------------------- training
def thread_env(threads: int) -> Dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), PYTHONWARNINGS="ignore")
    env.pop("OMP_WAIT_POLICY", None)
    return env


def start(model: str, dataset: str, minutes: float, split: Path, info: dict, args) -> dict:
    """Start one training run (a fresh folder under --work) in the background."""
    run = args.work / "runs" / dataset / f"{minutes:g}min" / model
    shutil.rmtree(run, ignore_errors=True)
    run.mkdir(parents=True)
    cmd = COMMANDS[model](dataset, split, run, minutes, info, args.run_threads)
    with open(run / "train.log", "w") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, cwd=run, start_new_session=True, env=thread_env(args.run_threads)
        )
    log(f"{dataset} {minutes:g} min: {model} started ({run})")
    return {"model": model, "dataset": dataset, "minutes": minutes, "run": run, "proc": proc, "t": time.time()}


def facet_progress(run: Path, minutes: float) -> Tuple[dict, List[Tuple[float, float]]]:
    """facet's training summary and learning curve, from its metrics.csv."""
    with open(run / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["valid_forces_mae"] not in ("", None)]
    curve = [(float(r["seconds"]), float(r["valid_forces_mae"])) for r in rows]
    last = rows[-1]
    stopped = "budget" if float(last["seconds"]) >= 60 * minutes else "by itself"
    return {"steps": int(last["step"]), "seconds": round(float(last["seconds"]), 1), "stopped": stopped}, curve


def peer_progress(run: Path) -> Tuple[dict, List[Tuple[float, float]]]:
    """A peer's training summary (the worker's RESULT line) and learning curve (curve.jsonl)."""
    lines = (run / "train.log").read_text().splitlines()
    summary = [json.loads(ln[7:]) for ln in lines if ln.startswith("RESULT ")][-1]
    rows = [json.loads(ln) for ln in (run / "curve.jsonl").read_text().splitlines()]
    return summary, [(r["seconds"], r["forces_mae"]) for r in rows]


def finish(job: dict) -> dict:
    """Wait for a run (killed at 3x its budget + 30 min: only a hung run gets there); its summary and curve."""
    limit = 3 * 60 * job["minutes"] + 1800
    try:
        job["proc"].wait(timeout=max(1.0, job["t"] + limit - time.time()))
    except subprocess.TimeoutExpired:
        os.killpg(job["proc"].pid, 9)  # the run's own process group (start_new_session)
        job["proc"].wait()
    job["wall"] = round(time.time() - job["t"], 1)
    tail = " | ".join((job["run"] / "train.log").read_text().splitlines()[-5:])
    try:
        if job["proc"].returncode != 0:
            raise RuntimeError(f"training failed (rc {job['proc'].returncode})")
        job["train"], job["curve"] = (
            facet_progress(job["run"], job["minutes"]) if job["model"] == "facet" else peer_progress(job["run"])
        )
    except (RuntimeError, OSError, IndexError, KeyError, ValueError) as err:
        job["error"] = f"{err}: {tail[-600:]}"
    log(
        f"{job['dataset']} {job['minutes']:g} min: {job['model']} done in {job['wall']:.0f} s "
        f"{job.get('train', job.get('error'))}"
    )
    return job


def evaluate(job: dict, split: Path, threads: int) -> dict:
    """Test-set errors of the run's best-validation model, through its own calculator in its own venv."""
    if "error" in job:
        return job
    model = job["run"] / MODEL_FILES[job["model"]]
    if not model.is_file():
        job["error"] = f"no model file {model.name} at the stop"
        return job
    python = sys.executable if job["model"] == "facet" else str(peer_python(job["model"]))
    try:
        job["test"] = run_worker(
            python,
            WORKER,
            ["eval", job["model"], str(model), str(split / "test.extxyz")],
            threads=threads,
            timeout=3600,
        )[0]
    except (RuntimeError, subprocess.TimeoutExpired) as err:
        job["error"] = f"evaluation failed: {str(err)[-600:]}"
    log(f"{job['dataset']} {job['minutes']:g} min: {job['model']} test {job.get('test', job.get('error'))}")
    return job


def race(dataset: str, minutes: float, split: Path, info: dict, args) -> List[dict]:
    """Every model trained on one split with one budget (one after another, or all at once), then evaluated."""
    if args.concurrent:
        jobs = [start(m, dataset, minutes, split, info, args) for m in args.runnable]
        jobs = [finish(j) for j in jobs]
    else:
        jobs = [finish(start(m, dataset, minutes, split, info, args)) for m in args.runnable]
    return [evaluate(j, split, args.run_threads) for j in jobs]


# ----------------------------------------------------------------------------------------- outputs
def plot_curves(dataset: str, jobs: List[dict], out: Path) -> Path:
    """Validation force MAE vs training wall time, every model (colour) and budget (line style)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {"facet": "C0", "mace": "C1", "sevennet": "C2"}
    styles = ["-", "--", ":", "-."]
    budgets = sorted({j["minutes"] for j in jobs})
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for j in jobs:
        if j.get("curve"):
            t, f = zip(*j["curve"])
            ax.plot(
                np.array(t) / 60,
                f,
                styles[budgets.index(j["minutes"]) % 4],
                color=colours[j["model"]],
                marker=".",
                ms=3,
                label=f"{LABELS[j['model']]}, {j['minutes']:g} min",
            )
    ax.set(
        xlabel="training wall time (min)",
        ylabel="validation force MAE (eV/Å)",
        yscale="log",
        title=f"{dataset}: training from scratch, same data and machine",
    )
    ax.grid(alpha=0.3, which="both")
    if ax.get_lines():
        ax.legend(fontsize=8)
    path = out / f"learning_curves_{dataset}.png"
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def table(jobs: List[dict]) -> str:
    """One row per run: test errors, the lowest validation force MAE of its curve, steps, training time."""
    lines = [
        "| dataset | budget | model | test E MAE meV/atom | test F MAE eV/Å | test S MAE GPa | lowest valid "
        "F MAE eV/Å | steps | training time | stopped | parameters |",
        "|---" * 11 + "|",
    ]
    for j in jobs:
        head = f"| {j['dataset']} | {j['minutes']:g} min | {LABELS[j['model']]} |"
        if "error" in j:
            lines.append(f"{head} failed: {j['error'][:200].replace('|', '/')} | | | | | | | |")
            continue
        t, tr = j["test"], j["train"]
        best = min(f for _, f in j["curve"]) if j["curve"] else None
        lines.append(
            f"{head} {t['energy_mae_meV_per_atom']:.2f} | {t['forces_mae']:.4f} | "
            f"{fmt(t['stress_mae_GPa'], '.3f')} | {fmt(best, '.4f')} | {tr['steps']} | "
            f"{tr['seconds'] / 60:.1f} min | {tr['stopped']} | {t['params']:,} |"
        )
    return "\n".join(lines)


def section(args, jobs: List[dict], splits: Dict[str, dict], skipped: Dict[str, str]) -> str:
    from machine import machine  # benchmarks/machine.py

    how = (
        "all models of a race at once, 1 thread each"
        if args.concurrent
        else f"models one after another, {args.run_threads} thread(s) each"
    )
    data = "; ".join(
        f"{d}: {s['train']} train / {s['valid']} valid / {s['test']} test frames"
        + (
            f" ({s['test_dropped']} test frames with elements absent from training dropped)"
            if s["test_dropped"]
            else ""
        )
        for d, s in splits.items()
    )
    lines = [
        f"\n### Training race from scratch: facetpot vs MACE vs SevenNet ({datetime.date.today().isoformat()})\n",
        f"Machine: {machine()}. Command: `python benchmarks/training_race.py {' '.join(args.argv)}` ({how}; "
        f"{MACE_VERSION}, {SEVENN_VERSION}, each in its own venv with {TORCH}). Recipes, budget accounting "
        "and evaluation: the docstring of benchmarks/training_race.py (same splits for all; the clock starts "
        "at each code's first training step; best-validation model of each run, its own ASE calculator, "
        "float32). MACE runs without its stage two (defined by epoch numbers); facet's cosine schedule "
        "anneals within the budget, MACE's and SevenNet's per-epoch schedules do not know it. Data: " + data + ".\n",
    ]
    lines += [f"{LABELS[p]} not run: {why}\n" for p, why in skipped.items()]
    return "\n".join(lines + [table(jobs)])


def save(jobs: List[dict], splits: Dict[str, dict], out: Path) -> None:
    keep = ("model", "dataset", "minutes", "run", "wall", "train", "test", "curve", "error")
    rows = [{k: (str(j[k]) if k == "run" else j[k]) for k in keep if k in j} for j in jobs]
    (out / "results.json").write_text(json.dumps({"splits": splits, "runs": rows}, indent=1))
    (out / "table.md").write_text(table(jobs) + "\n")


# -------------------------------------------------------------------------------------------- main
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", nargs="+", choices=DATASETS, default=DATASETS)
    p.add_argument("--models", nargs="+", choices=MODELS, default=MODELS)
    p.add_argument("--minutes", nargs="+", type=float, default=[10.0, 30.0], help="wall-time budgets (minutes)")
    p.add_argument("--threads", type=int, default=2, help="torch threads per model (models one after another)")
    p.add_argument("--concurrent", action="store_true", help="a race's models at once, 1 thread each")
    p.add_argument("--smoke", action="store_true", help=f"1 minute, {SMOKE_FRAMES} train/valid/test frames, no record")
    p.add_argument("--no-record", action="store_true", help="do not append to benchmarks/RESULTS.md")
    p.add_argument("-o", "--out", type=Path, default=HERE / "out" / "training_race")
    p.add_argument("--work", type=Path, default=CACHE / "training_race", help="splits and runs (outside the repo)")
    args = p.parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else list(argv)
    args.run_threads = 1 if args.concurrent else args.threads
    if args.smoke:
        args.minutes, args.work = [1.0], args.work / "smoke"
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    skipped = {p: why for p in args.models if p != "facet" for why in [install_peer(p)] if why}
    for peer, why in skipped.items():
        print(f"*** {LABELS[peer]} cannot be installed with {TORCH}; racing without it. {why}", flush=True)
    args.runnable = [m for m in args.models if m not in skipped]
    runs = len(args.runnable) * len(args.datasets)
    hours = runs * sum(args.minutes) / 60 / (len(args.runnable) if args.concurrent else 1)
    log(f"{runs * len(args.minutes)} training runs: {hours:.1f} h of training plus setup and evaluation")
    args.out.mkdir(parents=True, exist_ok=True)
    jobs, splits = [], {}
    for dataset in args.datasets:
        split, splits[dataset] = make_split(dataset, args.work, args.smoke)
        log(f"{dataset}: {splits[dataset]}")
        done = [j for minutes in args.minutes for j in race(dataset, minutes, split, splits[dataset], args)]
        jobs += done
        log(f"{dataset}: {plot_curves(dataset, done, args.out)}")
        save(jobs, splits, args.out)
    text = section(args, jobs, splits, skipped)
    print(text)
    if not (args.smoke or args.no_record):
        append_results(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
