"""GPU check and benchmark (run on a CUDA machine; writes JSON + text to $OUT or ./gpu_out).

    python benchmarks/gpu_check.py

1. correctness on CUDA: float64 energies/forces/stress equal the CPU's (1e-10), rotation
   invariance on CUDA (1e-10), float32 CUDA within 1e-5 relative of float64;
2. speed: Facet-S float32 force+stress call (model only, neighbour list timed apart) on Si
   512 / 4096 / 32768 / 110592 / 262144 atoms, density vs edge-wise backend, peak GPU memory.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from ase import Atoms
from ase.build import bulk

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import facetpot  # noqa: E402
from facetpot.graph import atoms_to_graph  # noqa: E402
from facetpot.derivatives import compute_properties  # noqa: E402

out_dir = Path(os.environ.get("OUT", "gpu_out"))
out_dir.mkdir(parents=True, exist_ok=True)
report = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__}
log = open(out_dir / "gpu_check.txt", "w")


def say(*a):
    msg = " ".join(str(x) for x in a)
    print(msg, flush=True)
    log.write(msg + "\n")
    log.flush()


def props(model, atoms, device, dtype):
    g = atoms_to_graph(atoms, model.cutoff, dtype=dtype).to(device, dtype)
    o = compute_properties(model, g, virials=True)
    return {k: v.detach().double().cpu() for k, v in o.items()}


say("device", report["device"], "torch", report["torch"])
# ---------------------------------------------------------------- correctness
torch.manual_seed(0)
cpu64 = facetpot.build_model().double()
gpu64 = facetpot.build_model().double()
gpu64.load_state_dict(cpu64.state_dict())
gpu64 = gpu64.cuda()
rng = np.random.default_rng(0)
cell = np.array([[3.1, 0.0, 0.0], [1.2, 2.9, 0.0], [0.7, -0.9, 3.3]]) * 1.4
atoms = Atoms("AlCuSiOMgO", scaled_positions=rng.random((6, 3)), cell=cell, pbc=True)
a = props(cpu64, atoms, "cpu", torch.float64)
b = props(gpu64, atoms, "cuda", torch.float64)
diff = {k: float((a[k] - b[k]).abs().max() / a[k].abs().max().clamp(min=1e-12)) for k in a}
say("cuda64 vs cpu64 relative max diff", diff)
report["cuda64_vs_cpu64"] = diff
q, _ = np.linalg.qr(rng.standard_normal((3, 3)))
rot = atoms.copy()
rot.positions = atoms.positions @ q.T
rot.cell = atoms.cell.array @ q.T
c = props(gpu64, rot, "cuda", torch.float64)
inv = {"energy": float(abs(c["energy"] - b["energy"]).max() / abs(b["energy"]).max()),
       "forces": float((c["forces"] - b["forces"] @ torch.as_tensor(q.T)).abs().max())}
say("cuda64 rotation", inv)
report["cuda64_rotation"] = inv
gpu32 = facetpot.build_model()
gpu32.load_state_dict(cpu64.state_dict())
gpu32 = gpu32.cuda()
d = props(gpu32, atoms, "cuda", torch.float32)
rel32 = float(abs(d["energy"] - b["energy"]).max() / abs(b["energy"]).max())
say("cuda32 vs cuda64 energy rel", rel32)
report["cuda32_vs_cuda64_energy_rel"] = rel32
report["correct"] = bool(max(diff.values()) < 1e-10 and inv["energy"] < 1e-10 and rel32 < 1e-4)

# ---------------------------------------------------------------- speed
model = gpu32
speed = []
for n in (4, 8, 16, 24, 32):
    atoms = bulk("Si", "diamond", a=5.43, cubic=True) * (n, n, n)
    atoms.rattle(0.01, seed=1)
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
            for _ in range(2):
                compute_properties(model, g)
            torch.cuda.synchronize()
            reps = 5 if len(atoms) < 50000 else 2
            t = time.perf_counter()
            for _ in range(reps):
                compute_properties(model, g)
            torch.cuda.synchronize()
            ms = 1e3 * (time.perf_counter() - t) / reps
            row = {"atoms": len(atoms), "backend": backend, "chunk_atoms": chunk, "ms": ms,
                   "us_per_atom": 1e3 * ms / len(atoms), "peak_gb": torch.cuda.max_memory_allocated() / 1e9,
                   "neighbor_list_ms_cpu": 1e3 * t_nl}
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
