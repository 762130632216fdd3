"""Accuracy runs on one GPU: the mlearn elements, MoNbTaW and MPtrj-1k trained side by side.

    python benchmarks/gpu_accuracy.py DATA_DIR [--minutes 6.5] [--device cuda] [--jobs si,ge,...]

DATA_DIR holds mlearn/, monbtaw/, mptrj/ as in ../shared/data. Each job takes its config from
training/*.yaml, with device, data paths and a wall-time budget (``max_time_minutes``, the cosine
schedule anneals within it) overridden, and all jobs run as parallel processes on the one GPU.
Then mlearn models are evaluated on their test sets; MoNbTaW and MPtrj report their validation
split. Writes summary.json (and the log) to $OUT (or ./gpu_out).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
JOBS = {
    "si": ("mlearn_si.yaml", "mlearn/Si_training.extxyz", "mlearn/Si_test.extxyz"),
    "ge": ("mlearn_ge.yaml", "mlearn/Ge_training.extxyz", "mlearn/Ge_test.extxyz"),
    "li": ("mlearn_li.yaml", "mlearn/Li_training.extxyz", "mlearn/Li_test.extxyz"),
    "mo": ("mlearn_mo.yaml", "mlearn/Mo_training.extxyz", "mlearn/Mo_test.extxyz"),
    "monbtaw": ("monbtaw.yaml", "monbtaw/*.extxyz", None),
    "mptrj_1k": ("mptrj_1k.yaml", "mptrj/mptrj-random-1k.extxyz", None),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data_dir")
    ap.add_argument("--minutes", type=float, default=6.5)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--jobs", default=",".join(JOBS))
    args = ap.parse_args()
    out = Path(os.environ.get("OUT", "gpu_out"))
    out.mkdir(parents=True, exist_ok=True)
    work = Path(os.environ.get("WORK", "/tmp/facet_gpu_runs"))
    work.mkdir(parents=True, exist_ok=True)
    data = Path(args.data_dir).resolve()
    procs = {}
    for name in args.jobs.split(","):
        cfg_name, train, _ = JOBS[name]
        cfg = yaml.safe_load((ROOT / "training" / cfg_name).read_text())
        cfg["data"]["train"] = str(data / train)
        cfg["training"].update(
            device=args.device,
            max_time_minutes=args.minutes,
            epochs=100000,
            output=str(work / name),
            threads=2,
            tensorboard=False,
        )
        path = work / f"{name}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        log = open(work / f"{name}.log", "w")
        procs[name] = (
            subprocess.Popen(
                [sys.executable, "-m", "facetpot.cli", "train", str(path)], stdout=log, stderr=subprocess.STDOUT
            ),
            log,
            time.time(),
        )
    summary = {}
    for name, (p, log, t0) in procs.items():
        rc = p.wait()
        log.close()
        tail = (work / f"{name}.log").read_text().splitlines()[-3:]
        entry = {"returncode": rc, "wall_s": time.time() - t0, "log_tail": tail}
        run = work / name
        if rc == 0:
            entry["valid"] = json.loads((run / "final_metrics.json").read_text()).get("all", {})
            rows = (run / "metrics.csv").read_text().splitlines()
            entry["steps"] = int(rows[-1].split(",")[0])
            entry["epochs"] = int(rows[-1].split(",")[1]) + 1
            test = JOBS[name][2]
            if test:
                ev = subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "facetpot.cli",
                        "eval",
                        str(run / "best.pt"),
                        str(data / test),
                        "-o",
                        str(run / "test"),
                        "--device",
                        args.device,
                        "--no-plots",
                    ],
                    capture_output=True,
                    text=True,
                )
                if ev.returncode == 0:
                    entry["test"] = json.loads((run / "test" / "report.json").read_text())["all"]
                else:
                    entry["test_error"] = ev.stderr[-1500:]
        summary[name] = entry
        print(name, json.dumps(entry), flush=True)
    try:
        import torch

        summary["_device"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
        summary["_torch"] = torch.__version__
    except Exception:
        pass
    (out / "summary.json").write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
