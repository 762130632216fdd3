"""mlearn accuracy benchmark: train on <El>_training, evaluate on <El>_test, beside the published numbers.

    python benchmarks/accuracy_mlearn.py [Si Ge Li Mo] [--parallel 2 --threads 1] [--minutes 30]

Trains with ``training/mlearn_<el>.yaml`` (its 30-minute wall-time budget unless --minutes says
otherwise), ``--parallel`` elements at a time with ``--threads`` threads each, then runs
``facet eval`` on the test set; appends the table to benchmarks/RESULTS.md. Data: ../shared/data/mlearn.
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import append_results  # noqa: E402  (benchmarks/harness.py)

import yaml

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "mlearn"
# best of GAP and MTP on the test sets (energy meV/atom, force eV/Å), as transcribed in
# ACEsuit/ACEpotentials.jl examples/zuobench/error_table.jl
PUBLISHED = {"Si": (2.21, 0.06), "Ge": (1.79, 0.05), "Li": (0.49, 0.01), "Mo": (2.24, 0.09)}


def start(el: str, args) -> tuple:
    out = Path(args.runs) / f"mlearn_{el.lower()}"
    out.mkdir(parents=True, exist_ok=True)
    cfg = yaml.safe_load((ROOT / "training" / f"mlearn_{el.lower()}.yaml").read_text())
    cfg["data"]["train"] = str(DATA / f"{el}_training.extxyz")
    cfg["training"].update(output=str(out), threads=args.threads, tensorboard=False)
    if args.minutes:
        cfg["training"].update(max_time_minutes=args.minutes, epochs=100000)
    path = out.with_suffix(".yaml")
    path.write_text(yaml.safe_dump(cfg))
    log = open(out.with_suffix(".log"), "w")
    cmd = [sys.executable, "-m", "facetpot.cli", "train", str(path), "--overwrite"]
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT), time.time(), out


def finish(el, proc, t0, out) -> tuple:
    if proc.wait() != 0:
        raise SystemExit(f"training {el} failed: see {out.with_suffix('.log')}")
    wall = time.time() - t0
    subprocess.run(
        [
            sys.executable,
            "-m",
            "facetpot.cli",
            "eval",
            str(out / "best.pt"),
            str(DATA / f"{el}_test.extxyz"),
            "-o",
            str(out / "test"),
            "--dtype",
            "float64",
        ],
        check=True,
        capture_output=True,
    )
    rep = json.loads((out / "test" / "report.json").read_text())["all"]
    epochs = int((out / "metrics.csv").read_text().splitlines()[-1].split(",")[1]) + 1
    print(
        f"{el}: test energy MAE {rep['energy_mae_meV_per_atom']:.2f} meV/atom, force MAE "
        f"{rep['forces_mae_eV_per_A']:.4f} eV/Å, {epochs} epochs in {wall / 60:.1f} min",
        flush=True,
    )
    return el, rep["energy_mae_meV_per_atom"], rep["forces_mae_eV_per_A"], wall, epochs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("elements", nargs="*", default=["Si", "Ge", "Li", "Mo"])
    ap.add_argument("--parallel", type=int, default=1, help="elements trained at the same time")
    ap.add_argument("--threads", type=int, default=2, help="torch threads per training")
    ap.add_argument("--minutes", type=float, help="override the configs' wall-time budget")
    ap.add_argument("--runs", default=str(ROOT / "runs"))
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    rows, queue = [], list(args.elements)
    while queue:
        group, queue = queue[: args.parallel], queue[args.parallel :]
        running = [(el, *start(el, args)) for el in group]
        rows += [finish(*r) for r in running]
    if args.no_write:
        return
    cmd = " ".join(sys.argv[1:])
    lines = [
        f"\n### mlearn test-set errors ({datetime.date.today().isoformat()})\n",
        f"Command: `python benchmarks/accuracy_mlearn.py {cmd}`; configs `training/mlearn_*.yaml` "
        f"(32x0e+16x1o+8x2e, 3 layers, cutoff 5 Å, float32 training, best-validation EMA model "
        f"evaluated in float64). Machine: this project's 2-core CPU; {args.parallel} element(s) "
        f"trained at a time, {args.threads} thread(s) each.\n",
        "| element | Facet energy MAE (meV/atom) | Facet force MAE (eV/Å) | best of GAP/MTP (meV/atom · eV/Å) | epochs "
        "| training wall time |",
        "|---|---|---|---|---|---|",
    ]
    for el, e, f, wall, epochs in rows:
        pe, pf = PUBLISHED[el]
        lines.append(f"| {el} | {e:.2f} | {f:.4f} | {pe} · {pf} | {epochs} | {wall / 60:.1f} min |")
    append_results("\n".join(lines))


if __name__ == "__main__":
    main()
