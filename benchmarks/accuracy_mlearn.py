"""mlearn accuracy benchmark: train on <El>_training, evaluate on <El>_test, beside the published numbers.

    python benchmarks/accuracy_mlearn.py [Si Ge Li Mo] [--epochs N]

Runs ``facet train training/mlearn_<el>.yaml`` (wall time measured) and ``facet eval`` on the test
set for each element; appends the table to benchmarks/RESULTS.md. Data: ../shared/data/mlearn.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "mlearn"
# best of GAP and MTP on the test sets (energy meV/atom, force eV/Å), as transcribed in
# ACEsuit/ACEpotentials.jl examples/zuobench/error_table.jl
PUBLISHED = {"Si": (2.21, 0.06), "Ge": (1.79, 0.05), "Li": (0.49, 0.01), "Mo": (2.24, 0.09)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("elements", nargs="*", default=["Si", "Ge", "Li", "Mo"])
    ap.add_argument("--epochs", type=int, help="override training.epochs (shorter runs)")
    ap.add_argument("--device", default=None)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    rows = []
    for el in args.elements:
        cfg = ROOT / "training" / f"mlearn_{el.lower()}.yaml"
        out = ROOT / "runs" / f"mlearn_{el.lower()}"
        cmd = [sys.executable, "-m", "facetpot.cli", "train", str(cfg), "--output", str(out)]
        env = dict(os.environ)
        if args.epochs or args.device:
            import yaml

            c = yaml.safe_load(cfg.read_text())
            if args.epochs:
                c["training"]["epochs"] = args.epochs
            if args.device:
                c["training"]["device"] = args.device
            c["data"]["train"] = str(DATA / f"{el}_training.extxyz")
            tmp = out.with_suffix(".yaml")
            tmp.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(yaml.safe_dump(c))
            cmd[4] = str(tmp)
        t = time.time()
        subprocess.run(cmd, check=True, env=env)
        wall = time.time() - t
        subprocess.run([sys.executable, "-m", "facetpot.cli", "eval", str(out / "best.pt"),
                        str(DATA / f"{el}_test.extxyz"), "-o", str(out / "test"), "--dtype", "float64"], check=True)
        rep = json.loads((out / "test" / "report.json").read_text())["all"]
        rows.append((el, rep["energy_mae_meV_per_atom"], rep["forces_mae_eV_per_A"], wall))
        print(f"{el}: test energy MAE {rep['energy_mae_meV_per_atom']:.2f} meV/atom, force MAE "
              f"{rep['forces_mae_eV_per_A']:.4f} eV/Å, training {wall / 60:.1f} min", flush=True)
    if args.no_write:
        return
    import torch

    lines = [f"\n### mlearn test-set errors ({datetime.date.today().isoformat()})\n",
             f"Command: `python benchmarks/accuracy_mlearn.py {' '.join(args.elements)}"
             f"{' --epochs ' + str(args.epochs) if args.epochs else ''}"
             f"{' --device ' + args.device if args.device else ''}`; configs `training/mlearn_*.yaml`; "
             f"device: {args.device or 'cpu'} ({torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'CPU'}).\n",
             "| element | Facet energy MAE (meV/atom) | Facet force MAE (eV/Å) | best GAP/MTP (meV/atom · eV/Å) | training wall time |",
             "|---|---|---|---|---|"]
    for el, e, f, wall in rows:
        pe, pf = PUBLISHED[el]
        lines.append(f"| {el} | {e:.2f} | {f:.4f} | {pe} · {pf} | {wall / 60:.1f} min |")
    with open(ROOT / "benchmarks" / "RESULTS.md", "a") as fh:
        fh.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
