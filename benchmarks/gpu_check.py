"""GPU benchmark (run on a CUDA machine; writes JSON + text to $OUT or ./gpu_out); the correctness checks on
CUDA are tests: ``pytest -m cuda tests/test_cuda.py`` (gpu.sh runs both).

    python benchmarks/gpu_check.py

Speed: Facet-S float32 force+stress call (model only, neighbour list timed apart) on Si
   512 / 4096 / 32768 / 110592 / 262144 atoms, density vs edge-wise backend, peak GPU memory.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import facetpot  # noqa: E402
from facetpot.structure.graph import atoms_to_graph  # noqa: E402
from facetpot.derivatives import compute_properties  # noqa: E402
from systems import silicon, time_calls  # noqa: E402  (benchmarks/systems.py)

out_dir = Path(os.environ.get("OUT", "gpu_out"))
out_dir.mkdir(parents=True, exist_ok=True)
report = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__}
log = open(out_dir / "gpu_check.txt", "w")


def say(*a):
    msg = " ".join(str(x) for x in a)
    print(msg, flush=True)
    log.write(msg + "\n")
    log.flush()


say("device", report["device"], "torch", report["torch"])
# correctness on CUDA (float64 = CPU, rotations, float32): tests/test_cuda.py, which gpu.sh runs first
torch.manual_seed(0)
gpu32 = facetpot.build_model().cuda()
# ---------------------------------------------------------------- speed
model = gpu32
speed = []
for n in (4, 8, 16, 24, 32):
    atoms = silicon(n, rattle=0.01)
    t = time.perf_counter()
    g = atoms_to_graph(atoms, model.cutoff, dtype=torch.float32)
    t_nl = time.perf_counter() - t
    g = g.to("cuda", torch.float32)
    for backend, chunk in (("density", 0), ("density", 4096), ("edgewise", 0)):
        if backend == "edgewise" and len(atoms) > 40000:
            continue
        model.set_backend(backend, **({"chunk_atoms": chunk} if backend == "density" else {}))
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        try:
            reps = 5 if len(atoms) < 50000 else 2
            times = time_calls(lambda: compute_properties(model, g), reps, warmup=2, sync=torch.cuda.synchronize)
            ms = 1e3 * sum(times) / reps
            row = {
                "atoms": len(atoms),
                "backend": backend,
                "chunk_atoms": chunk,
                "ms": ms,
                "us_per_atom": 1e3 * ms / len(atoms),
                "peak_gb": torch.cuda.max_memory_allocated() / 1e9,
                "neighbor_list_ms_cpu": 1e3 * t_nl,
            }
        except torch.cuda.OutOfMemoryError:
            row = {"atoms": len(atoms), "backend": backend, "chunk_atoms": chunk, "oom": True}
        say(json.dumps(row))
        speed.append(row)
        with open(out_dir / "gpu_check.json", "w") as f:
            json.dump({**report, "speed": speed}, f, indent=1)
model.set_backend("density")
report["speed"] = speed
with open(out_dir / "gpu_check.json", "w") as f:
    json.dump(report, f, indent=1)
say("done")
