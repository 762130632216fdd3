"""Batched relaxation on the GPU (run by benchmarks/gpu.sh): the machinery and the time per FIRE step
(30 steps, cell free) for 4 and 64 rattled Cu32 copies in one batch. The model is untrained (it does not
converge; benchmarks/relax.py measures real relaxations with a shipped model); prints as it goes."""

import sys
import time
from pathlib import Path

import torch
from ase.build import bulk

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import facetpot  # noqa: E402
from facetpot.workflows.batched_relax import BatchedRelaxation  # noqa: E402

torch.manual_seed(0)
device = "cuda" if torch.cuda.is_available() else "cpu"
model = facetpot.build_model(species=[13, 29]).to(device, torch.float32)


def copies(n):
    items = []
    for k in range(n):
        a = bulk("Cu", "fcc", a=3.7, cubic=True) * (2, 2, 2)
        a.rattle(0.1, seed=k)
        items.append((f"cu{k}", a, None))
    return items


t = time.time()
a = copies(1)[0][1]
a.calc = facetpot.FacetCalculator(model, device=device, dtype="float32")  # (float64 would convert the model)
print(f"one ASE call on {device}: energy {a.get_potential_energy():.4f} eV, {time.time() - t:.2f} s", flush=True)
for n in (4, 64):
    t = time.time()
    done = 0
    for r, _ in BatchedRelaxation(model, fmax=0.05, max_steps=30, max_atoms=4096, smax_gpa=None).run(copies(n)):
        done += 1
        if done in (1, n // 2, n):
            print(
                f"  {done}/{n} done after {time.time() - t:.1f} s (steps {r.steps}, converged {r.converged})",
                flush=True,
            )
    print(
        f"{n} Cu32 batched on {device}: {time.time() - t:.1f} s for 30 steps, "
        f"{1e3 * (time.time() - t) / 30:.1f} ms per step",
        flush=True,
    )
