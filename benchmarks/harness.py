"""The one way benchmarks time something in a fresh process (``run_worker``) and the one way they record a run
(``record_run``: a JSON record under ``benchmarks/records/``, then RESULTS.md rendered again from all records;
no other script opens RESULTS.md, and it equals its records' rendering: ``tests/test_structure.py`` checks both).

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
#: the records of the sections written before run records existed, in their old order (git blame dates them)
LEGACY = RECORDS / "legacy"
HEADER = """# Benchmark results

Rendered from the run records in `benchmarks/records/` by `python benchmarks/harness.py render`; do not edit it
by hand. Each section is one record: a run a script in this folder recorded (`harness.record_run`: machine,
commit, command, date, rows, its markdown), a note reading runs above it (`python benchmarks/harness.py note
FILE.md`), or a section written before records existed (`records/legacy/`). A correction edits the record's
markdown and renders again. Timings on the shared 2-core machines are only comparable within one run (nothing
else running).

"""


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


def _write_record(script: str, command: Optional[str], text: str, **fields) -> Path:
    now = datetime.datetime.now()
    record = {"script": script, "command": command, "date": now.isoformat(timespec="seconds"), "commit": commit()}
    record.update(fields, markdown=text)
    RECORDS.mkdir(exist_ok=True)
    path = RECORDS / f"{now:%Y-%m-%d-%H%M%S}-{script}.json"
    path.write_text(json.dumps(record, indent=1, ensure_ascii=False, default=str) + "\n")
    write_results()
    return path


def record_run(text: str, rows: Optional[List[Dict[str, Any]]] = None, device: Optional[str] = None) -> Path:
    """Record a run: ``benchmarks/records/<date>-<time>-<script>.json`` (script, command, date, commit, machine,
    device, rows, markdown), then RESULTS.md rendered again from all records. Returns the record."""
    from machine import machine  # lazy: benchmarks/machine.py imports torch

    script = Path(sys.argv[0]).stem or "python"
    command = " ".join(["python", f"benchmarks/{script}.py", *sys.argv[1:]])
    return _write_record(script, command, text, machine=machine(), device=device, rows=rows or [])


def append_results(text: str) -> None:
    """Record ``text`` (a RESULTS.md section) as a run: :func:`record_run` without rows."""
    record_run(text)


def record_note(text: str) -> Path:
    """Record a note that reads the runs above it (no run of its own), then render RESULTS.md again."""
    return _write_record("note", None, text)


def records() -> List[Dict[str, Any]]:
    """Every record in RESULTS.md's order: the legacy sections by number, then the runs and notes by date."""
    paths = sorted(LEGACY.glob("*.json")) + sorted(RECORDS.glob("*.json"))
    return [json.loads(p.read_text()) for p in paths]


def render(record: Dict[str, Any]) -> str:
    """A record as RESULTS.md shows it: its markdown, then, for a run, where it came from (commit, command, date)."""
    if record.get("legacy") or record["script"] == "note":
        return record["markdown"]
    return (
        record["markdown"].rstrip("\n") + f"\n\n<sub>record: commit {record['commit']}, "
        f"`{record['command']}`, {record['date']}</sub>\n"
    )


def render_results() -> str:
    """RESULTS.md's text: the header, then every record rendered in order."""
    return HEADER + "".join(render(r) for r in records())


def write_results() -> None:
    """Write RESULTS.md from the records (the only writer of that file)."""
    tmp = RESULTS.with_suffix(".md.tmp")
    tmp.write_text(render_results())
    os.replace(tmp, RESULTS)


USAGE = """usage: python benchmarks/harness.py render [--check] | note FILE.md
  render          write benchmarks/RESULTS.md from benchmarks/records/ (--check: exit 1 if it differs)
  note FILE.md    record FILE.md as a note reading the runs above it, then render"""


def main(argv: Sequence[str]) -> int:
    if argv[:1] == ["render"] and len(argv) <= 2 and set(argv[1:]) <= {"--check"}:
        if "--check" in argv:
            same = RESULTS.is_file() and RESULTS.read_text() == render_results()
            print("RESULTS.md matches its records" if same else "RESULTS.md differs from its records: render it")
            return 0 if same else 1
        write_results()
        return 0
    if argv[:1] == ["note"] and len(argv) == 2 and Path(argv[1]).is_file():
        print(record_note(Path(argv[1]).read_text()))
        return 0
    print(USAGE, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
