"""The one way benchmarks time something in a fresh process (``run_worker``) and the one way they record a run
(``record_run``: a JSON record under ``benchmarks/records/`` and its markdown appended to RESULTS.md; no other
script opens RESULTS.md, ``tests/test_structure.py`` checks it).

A worker is a Python file (or ``-c`` code) that prints ``RESULT {json}`` lines; ``run_worker`` starts it in
the interpreter given (facetpot's venv, or a peer's own venv for SevenNet), with ``threads`` torch/OpenMP
threads, OpenMP's default wait policy unless ``omp_wait_policy`` names one (an inherited one is dropped),
warnings silenced, in ``cwd`` (the checkout whose facetpot it imports), and returns the parsed results: one dict per
RESULT line, in order. A worker that
fails raises with the end of its stderr. Fresh processes keep one measurement's memory, caches and
threads out of the next, and let facetpot and a peer alternate in one run on a noisy shared machine.
"""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
#: ../shared/data beside the checkout (read-only; benchmarks read it, never copy it into the repository);
#: $FACETPOT_SHARED_DATA points elsewhere (the device machine gets a carried copy of the files it needs)
SHARED_DATA = Path(os.environ.get("FACETPOT_SHARED_DATA", ROOT.parent / "shared" / "data"))


def run_worker(
    python: str,
    worker: str,
    args: Sequence[str] = (),
    threads: int = 2,
    omp_wait_policy: Optional[str] = None,
    timeout: float = 3600,
    cwd: Optional[Path] = None,
    env: Optional[Dict[str, str]] = None,
) -> List[dict]:
    """Run ``worker`` (a .py path, or code) in a fresh ``python``; its ``RESULT {json}`` lines, parsed."""
    full_env = dict(os.environ, OMP_NUM_THREADS=str(threads), PYTHONWARNINGS="ignore", **(env or {}))
    full_env.pop("OMP_WAIT_POLICY", None)
    if omp_wait_policy:
        full_env["OMP_WAIT_POLICY"] = omp_wait_policy
    cmd = [python, worker] if worker.endswith(".py") and Path(worker).is_file() else [python, "-c", worker]
    proc = subprocess.run(
        cmd + [str(a) for a in args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        cwd=str(cwd or ROOT),
    )
    results = [json.loads(line[7:]) for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not results:
        raise RuntimeError(
            f"{' '.join(str(c) for c in cmd[:2])} {' '.join(map(str, args))} failed "
            f"(rc {proc.returncode}):\n{proc.stderr[-2000:]}"
        )
    return results


def report(**fields) -> None:
    """What a worker prints: one ``RESULT {json}`` line."""
    print("RESULT " + json.dumps(fields), flush=True)


RESULTS = HERE / "RESULTS.md"
RECORDS = HERE / "records"


def commit() -> str:
    """The checkout's commit (``+dirty`` when it has uncommitted changes), or "unknown" outside git."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, cwd=ROOT
        ).stdout.strip()
        return head + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def record_run(text: str, rows: Optional[List[Dict[str, Any]]] = None, device: Optional[str] = None) -> Path:
    """Record a run: ``benchmarks/records/<date>-<script>-<time>.json`` (script, command, date, commit, machine,
    device, rows, markdown), then its markdown (:func:`render`) appended to RESULTS.md. Returns the record."""
    from machine import machine  # lazy: benchmarks/machine.py imports torch

    now = datetime.datetime.now()
    script = Path(sys.argv[0]).stem or "python"
    record = {
        "script": script,
        "command": " ".join(["python", f"benchmarks/{script}.py", *sys.argv[1:]]),
        "date": now.isoformat(timespec="seconds"),
        "commit": commit(),
        "machine": machine(),
        "device": device,
        "rows": rows or [],
        "markdown": text,
    }
    RECORDS.mkdir(exist_ok=True)
    path = RECORDS / f"{now:%Y-%m-%d-%H%M%S}-{script}.json"
    path.write_text(json.dumps(record, indent=1, default=str) + "\n")
    with open(RESULTS, "a") as f:
        f.write(render(record))
    return path


def render(record: Dict[str, Any]) -> str:
    """A record as RESULTS.md shows it: its markdown, then where it came from (commit and record file)."""
    return (
        record["markdown"].rstrip("\n") + f"\n\n<sub>record: commit {record['commit']}, "
        f"`{record['command']}`, {record['date']}</sub>\n"
    )


def append_results(text: str) -> None:
    """Record ``text`` (a RESULTS.md section) as a run: :func:`record_run` without rows."""
    record_run(text)


if __name__ == "__main__":  # python benchmarks/harness.py render RECORD.json: a record's markdown again
    if len(sys.argv) == 3 and sys.argv[1] == "render":
        print(render(json.loads(Path(sys.argv[2]).read_text())), end="")
    else:
        sys.exit("usage: python benchmarks/harness.py render benchmarks/records/RECORD.json")
