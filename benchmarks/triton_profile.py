"""Where the Triton backend spends its GPU time: one E+F+S call of Facet-S (float32, frozen weights) on a Si
cell, under torch.profiler, for the triton and density backends side by side.

    python benchmarks/triton_profile.py [--atoms 10000] [--rows 25]

Prints the kernels sorted by their own CUDA time and writes $OUT/triton_profile.txt (or ./triton_profile.txt).
CUDA only.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import facetpot  # noqa: E402
from facetpot.structure.graph import atoms_to_graph  # noqa: E402
from facetpot.derivatives import compute_properties  # noqa: E402
from systems import silicon_atoms  # noqa: E402  (benchmarks/systems.py)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--atoms", type=int, default=10000)
    ap.add_argument("--rows", type=int, default=25)
    args = ap.parse_args()
    atoms = silicon_atoms(args.atoms, rattle=0.01)
    torch.manual_seed(0)
    model = facetpot.build_model().float().to("cuda")
    for p in model.parameters():
        p.requires_grad_(False)
    g = atoms_to_graph(atoms, model.cutoff, dtype=torch.float32).to("cuda", torch.float32)
    lines = []
    for name in ("triton", "density"):
        model.set_backend(name)
        for _ in range(2):
            compute_properties(model, g)
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            compute_properties(model, g)
            torch.cuda.synchronize()
        table = prof.key_averages().table(sort_by="self_cuda_time_total", row_limit=args.rows, max_name_column_width=70)
        lines += [f"== {name}, {len(atoms)} atoms, {int(g.edge_index.shape[1])} edges", table]
        print(lines[-2], flush=True)
        print(table, flush=True)
    out = Path(os.environ.get("OUT", "."))
    (out / "triton_profile.txt").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
