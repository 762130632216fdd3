"""Conversion benchmark: write a synthetic MPtrj-format JSON of N frames, convert it to a cache.

    python benchmarks/convert_mptrj.py [--frames 200000] [--workdir /tmp/facet_convert]

Prints frames/s and the peak RSS of the conversion, which runs in a fresh subprocess (so the
writer's memory does not count) and is compared with the size of the JSON file. Appends to
benchmarks/RESULTS.md. Frames: 2-64 atoms (mean ~20), 5 frames per trajectory, like MPtrj.
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

import numpy as np

HERE = Path(__file__).resolve().parent
ELEMENTS = ["Li", "O", "Fe", "Mn", "Si", "Na", "Cl", "Ti", "Al", "Mg", "N", "S", "P", "Co", "Ni", "Cu"]


def write_synthetic(path: Path, n_frames: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    per_traj = 5
    with open(path, "w") as f:
        f.write("{")
        for t in range(-(-n_frames // per_traj)):
            if t:
                f.write(",")
            mp_id = f"mp-{t}"
            n = int(rng.integers(2, 40))
            lattice = (np.eye(3) * (2.5 * n ** (1 / 3) + 1) + 0.2 * rng.standard_normal((3, 3))).round(6)
            frames = {}
            for k in range(min(per_traj, n_frames - t * per_traj)):
                frac = rng.random((n, 3)).round(6)
                frames[f"{mp_id}-0-{k}"] = {
                    "structure": {
                        "@module": "pymatgen.core.structure",
                        "@class": "Structure",
                        "charge": 0,
                        "lattice": {"matrix": lattice.tolist()},
                        "sites": [
                            {
                                "species": [{"element": ELEMENTS[(i * 7 + t) % len(ELEMENTS)], "occu": 1}],
                                "abc": fr.tolist(),
                                "xyz": (fr @ lattice).round(6).tolist(),
                                "label": "X",
                                "properties": {"magmom": 0.0},
                            }
                            for i, fr in enumerate(frac)
                        ],
                    },
                    "uncorrected_total_energy": float(-4.0 * n + rng.standard_normal()),
                    "corrected_total_energy": float(-4.1 * n),
                    "energy_per_atom": -4.0,
                    "ef_per_atom": -0.5,
                    "e_per_atom_relaxed": -4.0,
                    "ef_per_atom_relaxed": -0.5,
                    "force": rng.standard_normal((n, 3)).round(6).tolist(),
                    "stress": rng.standard_normal((3, 3)).round(4).tolist(),
                    "magmom": None,
                    "bandgap": 0.0,
                    "mp_id": mp_id,
                }
            f.write(json.dumps(mp_id) + ":" + json.dumps(frames))
        f.write("}")


CONVERT = r"""
import json, resource, sys, time
from facetpot.data.cache import convert
from facetpot.data.readers import iter_frames
t = time.time()
m = convert(iter_frames(sys.argv[1]), sys.argv[2], shard_frames=50000, progress=False)
print("RESULT", json.dumps({"frames": m["frames"], "frames_in": m["frames_in"], "rejected": m["rejected"],
      "seconds": time.time() - t, "rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6}))
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=200_000)
    ap.add_argument("--workdir", default="/tmp/facet_convert")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    src = work / f"mptrj_synthetic_{args.frames}.json"
    if not src.exists():
        t = time.time()
        write_synthetic(src, args.frames)
        print(f"wrote {src} ({src.stat().st_size / 1e9:.2f} GB) in {time.time() - t:.0f} s", flush=True)
    out = subprocess.run([sys.executable, "-c", CONVERT, str(src), str(work / "cache")], capture_output=True, text=True)
    line = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
    if not line:
        raise SystemExit(out.stderr[-3000:])
    r = json.loads(line[0][7:])
    size_gb = src.stat().st_size / 1e9
    print(
        f"converted {r['frames_in']:,} frames ({r['rejected']} rejected) in {r['seconds']:.0f} s: "
        f"{r['frames_in'] / r['seconds']:,.0f} frames/s, peak RSS {r['rss_gb']:.2f} GB for a {size_gb:.2f} GB JSON"
    )
    if not args.no_write:
        append_results(
            f"\n### MPtrj-format JSON conversion ({datetime.date.today().isoformat()})\n\n"
            f"Command: `python benchmarks/convert_mptrj.py --frames {args.frames}` on this project's "
            f"2-core CPU machine. Synthetic MPtrj JSON, {args.frames:,} frames, {size_gb:.2f} GB: "
            f"{r['frames_in'] / r['seconds']:,.0f} frames/s ({r['seconds']:.0f} s), peak RSS "
            f"{r['rss_gb']:.2f} GB (one shard of 50,000 frames in memory at a time, plus the "
            f"largest trajectory being parsed)."
        )


if __name__ == "__main__":
    main()
