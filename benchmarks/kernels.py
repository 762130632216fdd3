"""Convolution backends side by side: one convolution layer alone (the kernel) and the whole model.

    python benchmarks/kernels.py [--sizes 1000 10000 100000] [--model facet-s|facet-7net0-spline] [--reps 5]

On CUDA: density, edgewise (the reference), cueq (when cuequivariance_torch imports) and triton (when
triton imports); on the CPU: density, edgewise and cueq (the library's torch method) (the Triton kernels
run on the CPU only under TRITON_INTERPRET=1, a test mode, not timed).
Si supercells of about each --sizes atoms, float32:

1. correctness first (CUDA, float64, a small cell): every backend's energy, forces and stress against
   the edgewise reference;
2. the kernel: the convolution of layer 1 (every input block of the model's features) on random
   features, forward and forward + backward (to the features and the edge vectors), time and peak
   GPU memory;
3. the whole model: one energy + forces + stress call, time per atom and peak GPU memory.

Prints each row as it goes and the ratios against edgewise and against density; writes
$OUT/kernels.json (or ./kernels.json). Sizes that run out of memory or past --budget seconds are skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import facetpot  # noqa: E402
from facetpot.structure.graph import atoms_to_graph  # noqa: E402
from facetpot.inference.model_source import resolve_model  # noqa: E402
from facetpot.inference.prepare import inference_model  # noqa: E402
from facetpot.derivatives import compute_properties  # noqa: E402
from systems import median_ms, silicon_atoms, time_calls  # noqa: E402  (benchmarks/systems.py)


def backends(device: str):
    names = ["edgewise", "density"]
    try:
        import cuequivariance_torch  # noqa: F401

        names.append("cueq")  # CUDA kernels (uniform_1d) on a GPU, the library's torch einsums on the CPU
    except ImportError:
        print("cuequivariance_torch does not import: cueq backend skipped", flush=True)
    if device == "cuda":
        try:
            import triton  # noqa: F401

            names.append("triton")
        except ImportError:
            print("triton does not import: triton backend skipped", flush=True)
    return names


def timed(fn, device, reps):
    """Median ms of ``reps`` calls after 2 warm-up calls, and the peak GPU memory (GB) of the timed calls."""
    sync = torch.cuda.synchronize if device == "cuda" else None
    time_calls(fn, 0, warmup=2, sync=sync)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = time_calls(fn, reps, warmup=0, sync=sync)
    peak = torch.cuda.max_memory_allocated() / 1e9 if device == "cuda" else float("nan")
    return median_ms(times), peak


def correctness(model, device, names, say):
    m64 = model.double().to(device)
    atoms = silicon_atoms(64, rattle=0.01)
    atoms.rattle(0.05, seed=2)
    g = atoms_to_graph(atoms, m64.cutoff, dtype=torch.float64).to(device, torch.float64)
    res = {}
    for name in names:
        m64.set_backend(name)
        out = compute_properties(m64, g, virials=True)
        res[name] = {k: v.detach().cpu() for k, v in out.items()}
    rows = {}
    for name in names:
        rows[name] = {k: float((res[name][k] - res["edgewise"][k]).abs().max()) for k in ("energy", "forces", "stress")}
        say(f"float64 {name} vs edgewise max |diff|: " + ", ".join(f"{k} {v:.2e}" for k, v in rows[name].items()))
    model.float()
    return rows


def kernel_fn(model, g, device, backward):
    """The convolution of layer 1 on random features of the right irreps."""
    layer = model.layers[1]
    conv = layer.conv
    n = g.numbers.shape[0]
    vec = g.edge_vectors().detach().clone().requires_grad_(backward)
    edges = model.edges(g.edge_index, vec, n, n)
    torch.manual_seed(0)
    blocks = [torch.randn(n, mul, 2 * l + 1, device=device, requires_grad=backward) for mul, l, _ in conv.irreps_in]

    def fn():
        out = conv(blocks, edges)
        if backward:
            s = sum((o * o).sum() for o in out)
            torch.autograd.grad(s, blocks + [vec], retain_graph=True)
        return out

    return fn


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=None)
    ap.add_argument("--model", default="facet-s", help="facet-s (random Facet-S), a pretrained name or a model file")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2, help="torch threads on the CPU")
    ap.add_argument(
        "--budget", type=float, default=20.0, help="skip larger sizes of a backend after a call this slow (s)"
    )
    args = ap.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.set_num_threads(args.threads)
    sizes = args.sizes or ([1000, 10000, 100000] if device == "cuda" else [1000, 10000])
    out_dir = Path(os.environ.get("OUT", "."))
    log = []

    def say(msg):
        print(msg, flush=True)
        log.append(msg)

    if args.model == "facet-s":
        torch.manual_seed(0)
        model = facetpot.build_model()
    else:
        model = resolve_model(args.model, dtype="float32")
    for p in model.parameters():
        p.requires_grad_(False)
    names = backends(device)
    say(
        f"device {torch.cuda.get_device_name(0) if device == 'cuda' else 'cpu'}, torch {torch.__version__}, "
        f"model {args.model} ({model.num_parameters():,} parameters), backends {names}"
    )
    report = {"device": device, "model": args.model, "rows": []}
    if device == "cuda":
        report["correctness"] = correctness(model, device, names, say)
        # what a user gets without asking (facetpot.inference.backend_choice: the model's own, density)
        chosen = inference_model(model, device=device, dtype="float32").backend
        say(f"default backend on CUDA: {chosen}")
        report["cuda_default"] = chosen
    model = model.float().to(device)
    slow = set()
    for n_target in sizes:
        atoms = silicon_atoms(n_target, rattle=0.01)
        g = atoms_to_graph(atoms, model.cutoff, dtype=torch.float32).to(device, torch.float32)
        for name in names:
            if name in slow:
                continue
            model.set_backend(name)
            row = {"atoms": len(atoms), "edges": int(g.edge_index.shape[1]), "backend": name}
            try:
                row["kernel_fwd_ms"], row["kernel_fwd_gb"] = timed(
                    kernel_fn(model, g, device, False), device, args.reps
                )
                row["kernel_fwdbwd_ms"], row["kernel_fwdbwd_gb"] = timed(
                    kernel_fn(model, g, device, True), device, args.reps
                )
                row["model_efs_ms"], row["model_efs_gb"] = timed(
                    lambda: compute_properties(model, g), device, args.reps
                )
                row["model_us_per_atom"] = 1e3 * row["model_efs_ms"] / len(atoms)
            except torch.cuda.OutOfMemoryError:
                row["oom"] = True
                torch.cuda.empty_cache()
            if row.get("model_efs_ms", 0) > 1e3 * args.budget:
                slow.add(name)
            report["rows"].append(row)
            say(json.dumps(row))
            with open(out_dir / "kernels.json", "w") as f:
                json.dump(report, f, indent=1)
    # ratio table
    say(
        "\n| atoms | backend | layer fwd ms | layer fwd+bwd ms | model E+F+S ms | µs/atom | peak GB | vs edgewise | vs density |"
    )
    say("|---|---|---|---|---|---|---|---|---|")
    by = {(r["atoms"], r["backend"]): r for r in report["rows"] if "model_efs_ms" in r}
    for (n, name), r in by.items():
        ref, den = by.get((n, "edgewise")), by.get((n, "density"))
        ratio = f"{ref['model_efs_ms'] / r['model_efs_ms']:.2f}x" if ref else "-"
        ratio_d = f"{den['model_efs_ms'] / r['model_efs_ms']:.2f}x" if den else "-"
        say(
            f"| {n} | {name} | {r['kernel_fwd_ms']:.2f} | {r['kernel_fwdbwd_ms']:.2f} | {r['model_efs_ms']:.1f} | "
            f"{r['model_us_per_atom']:.2f} | {r['model_efs_gb']:.2f} | {ratio} | {ratio_d} |"
        )
    (out_dir / "kernels.txt").write_text("\n".join(log) + "\n")


if __name__ == "__main__":
    main()
