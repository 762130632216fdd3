"""The one way benchmarks time something in a fresh process: ``run_worker``.

A worker is a Python file (or ``-c`` code) that prints ``RESULT {json}`` lines; ``run_worker`` starts it in
the interpreter given (facetpot's venv, or a peer's own venv for SevenNet), with ``threads`` torch/OpenMP
threads, OpenMP's default wait policy unless ``omp_wait_policy`` names one (an inherited one is dropped), warnings silenced, in ``cwd`` (the checkout whose
facetpot it imports), and returns the parsed results: one dict per RESULT line, in order. A worker that
fails raises with the end of its stderr. Fresh processes keep one measurement's memory, caches and
threads out of the next, and let facetpot and a peer alternate in one run on a noisy shared machine.
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Dict, List, Optional, Sequence

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
#: ../shared/data beside the checkout (read-only; benchmarks read it, never copy it into the repository);
#: $FACETPOT_SHARED_DATA points elsewhere (the device machine gets a carried copy of the files it needs)
SHARED_DATA = Path(os.environ.get("FACETPOT_SHARED_DATA", ROOT.parent / "shared" / "data"))


def run_worker(python: str, worker: str, args: Sequence[str] = (), threads: int = 2,
               omp_wait_policy: Optional[str] = None, timeout: float = 3600, cwd: Optional[Path] = None,
               env: Optional[Dict[str, str]] = None) -> List[dict]:
    """Run ``worker`` (a .py path, or code) in a fresh ``python``; its ``RESULT {json}`` lines, parsed."""
    full_env = dict(os.environ, OMP_NUM_THREADS=str(threads), PYTHONWARNINGS="ignore", **(env or {}))
    full_env.pop("OMP_WAIT_POLICY", None)
    if omp_wait_policy:
        full_env["OMP_WAIT_POLICY"] = omp_wait_policy
    cmd = [python, worker] if worker.endswith(".py") and Path(worker).is_file() else [python, "-c", worker]
    proc = subprocess.run(cmd + [str(a) for a in args], capture_output=True, text=True, env=full_env,
                          timeout=timeout, cwd=str(cwd or ROOT))
    results = [json.loads(line[7:]) for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not results:
        raise RuntimeError(f"{' '.join(str(c) for c in cmd[:2])} {' '.join(map(str, args))} failed "
                           f"(rc {proc.returncode}):\n{proc.stderr[-2000:]}")
    return results


def report(**fields) -> None:
    """What a worker prints: one ``RESULT {json}`` line."""
    print("RESULT " + json.dumps(fields), flush=True)


def append_results(text: str) -> None:
    """Append ``text`` (a RESULTS.md section) to benchmarks/RESULTS.md."""
    with open(HERE / "RESULTS.md", "a") as f:
        f.write(text + "\n")
