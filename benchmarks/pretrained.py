"""The spline trims of SevenNet-0 and SevenNet-l3i5 side by side with the originals, in one run (issue 9).

    python benchmarks/pretrained.py                                  # both models, accuracy + speed, 1 thread
    python benchmarks/pretrained.py --threads 1 --speed-threads 2    # accuracy on 1 thread, speed on 2
    python benchmarks/pretrained.py --only l3i5 --skip-speed --frames 100   # a quick look
    python benchmarks/pretrained.py --write                          # also append the tables to RESULTS.md

For every model (``--model-7net0``, ``--model-l3i5``: facetpot model files, by default the shipped ones
in ``pretrained/``):

* accuracy against the DFT labels of ``../shared/data/mptrj/mptrj-random-1k.extxyz`` (MPtrj,
  uncorrected energies, the convention SevenNet predicts): the SevenNet original through its own
  ``SevenNetCalculator`` (float32, as shipped) and the spline model through
  ``facetpot.inference.single_points.predict_structures`` in float32 and float64, on all 1,000 frames, on the
  even-indexed half (the frames the spline fit and the distillation used) and on the odd-indexed
  half (held out from any fitting). All 1,000 frames come from MPtrj, which SevenNet was trained on.
  Energy MAE per atom (meV/atom), force MAE per component (eV/Å), stress MAE per component
  (eV/Å^3 and GPa), and ratios spline / original.
* parameter counts: SevenNet's (the trainable parameters of its torch module: 842,440 and 1,171,144) and
  ``model.num_parameters()`` of the spline model.
* speed of one energy + forces + stress call, float32, on Si 64, Si 512, MgO 512 and SrTiO3 320
  (``ase.build`` crystals, rattled by 0.01 Å): every (system, model) in a fresh process with
  ``--speed-threads`` torch threads and OpenMP's default wait policy (``--omp-wait-policy PASSIVE`` as
  before 2026-12-01: it slows small calls of both models, Si 64 by 1.2-1.7x), median of ``--reps`` calls
  after 3 warm-up calls; the original and the spline model (facetpot's default ``density``
  convolution backend and the ``edgewise`` one) alternate over ``--rounds`` rounds and the median
  over rounds is reported, with the speed-up original / spline.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from ase.io import read

from facetpot.inference.model_source import load_model
from facetpot.inference.single_points import predict_structures
from facetpot.structure.units import EV_PER_A3_TO_GPA
from harness import append_results, run_worker  # benchmarks/harness.py
from machine import machine  # benchmarks/machine.py
from systems import WORKER_IMPORT  # benchmarks/systems.py

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parent.parent / "shared/data/mptrj/mptrj-random-1k.extxyz"

#: key -> (shipped name, SevenNet name (NAME@FIDELITY for a multi-fidelity model), label of the original, default:
#: the shipped model file). Only PBE heads: the frames carry PBE labels
MODELS = {
    "7net0": ("facet-7net0-spline", "7net-0", "SevenNet-0", str(HERE.parent / "pretrained/facet-7net0-spline.pt")),
    "l3i5": (
        "facet-7net-l3i5-spline",
        "7net-l3i5",
        "SevenNet-l3i5",
        str(HERE.parent / "pretrained/facet-7net-l3i5-spline.pt"),
    ),
    "mf0": (
        "facet-7net-mf0-pbe-spline",
        "7net-mf-0@PBE",
        "SevenNet-MF-0 (PBE)",
        str(HERE.parent / "pretrained/facet-7net-mf0-pbe-spline.pt"),
    ),
}
SYSTEMS = ["Si 64", "Si 512", "MgO 512", "SrTiO3 320"]
BUDGET = 0.75  # the aim: at most 75% of the original's parameters

WORKER = (
    WORKER_IMPORT
    + r"""
import json, sys
import torch
from systems import median_ms, perovskite_srtio3, rocksalt_mgo, silicon, time_calls
which, system, model, backend, reps, threads = sys.argv[1:7]
reps, threads = int(reps), int(threads)
torch.set_num_threads(threads)
build = {"Si 64": lambda: silicon(2), "Si 512": lambda: silicon(4), "MgO 512": lambda: rocksalt_mgo(4),
         "SrTiO3 320": lambda: perovskite_srtio3(4)}
atoms = build[system]()
atoms.rattle(0.01, seed=1)
if which == "sevennet":
    from sevenn.calculator import SevenNetCalculator
    name, _, modal = model.partition("@")
    calc = SevenNetCalculator(name, device="cpu", **({"modal": modal} if modal else {}))
else:
    import facetpot
    m = facetpot.load_model(model, dtype="float32")
    m.set_backend(backend)
    calc = facetpot.FacetCalculator(m, dtype="float32")
atoms.calc = calc
def call():
    atoms.get_potential_energy(); atoms.get_forces(); atoms.get_stress()
def move():
    atoms.positions[0, 0] += 1e-4  # a new calculation every time
print("RESULT", json.dumps({"atoms": len(atoms), "ms": median_ms(time_calls(call, reps, warmup=3, before=move))}))
"""
)


# ---------------------------------------------------------------------------------------- accuracy
def predict_sevennet(name, frames):
    from sevenn.calculator import SevenNetCalculator  # lazy: optional, only this benchmark needs it

    name, _, modal = name.partition("@")
    calc = SevenNetCalculator(name, device="cpu", **({"modal": modal} if modal else {}))  # float32, as shipped
    n_params = sum(p.numel() for p in calc.model.parameters() if p.requires_grad)  # trainable, as SevenNet counts
    e, f, s = [], [], []
    for atoms in frames:
        a = atoms.copy()
        a.calc = calc
        e.append(a.get_potential_energy())
        f.append(a.get_forces().copy())
        s.append(a.get_stress().copy())
    return (np.array(e), f, np.array(s)), n_params


def predict_facet(model, frames, batch_atoms):
    e, f, s = zip(*predict_structures(model, frames, batch_atoms))
    return np.array(e), list(f), np.array(s)


def errors(pred, ref, idx):
    (ep, fp, sp), (er, fr, sr, n) = pred, ref
    return {
        "energy": 1e3 * float(np.mean(np.abs((ep[idx] - er[idx]) / n[idx]))),
        "forces": float(np.mean(np.abs(np.concatenate([fp[i] - fr[i] for i in idx])))),
        "stress": float(np.mean(np.abs(sp[idx] - sr[idx]))),
    }


def cached_sevennet(name, frames, data, cache, log):
    """predict_sevennet, kept in ``cache`` (a folder; None: no cache) per model, data file and frame count:
    the originals' predictions never change, and SevenNet-l3i5 needs about 20 minutes for 1,000 frames."""
    if cache is None:
        return predict_sevennet(name, frames)
    stat = Path(data).stat()
    path = Path(cache) / f"{name}_{Path(data).stem}_{stat.st_size}_{len(frames)}.npz"
    if path.is_file():
        z = np.load(path)
        sizes = np.cumsum([len(a) for a in frames])[:-1]
        log(f"{name}: predictions read from {path}")
        return (z["energy"], np.split(z["forces"], sizes), z["stress"]), int(z["params"])
    (e, f, s), n_params = predict_sevennet(name, frames)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, energy=e, forces=np.concatenate(f), stress=s, params=n_params)
    return (e, f, s), n_params


def accuracy(key, path, frames, batch_atoms, log, data=None, cache=None):
    name, sevennet, original, _ = MODELS[key]
    ref = (
        np.array([a.get_potential_energy() for a in frames]),
        [a.get_forces() for a in frames],
        np.array([a.get_stress() for a in frames]),
        np.array([len(a) for a in frames]),
    )
    t = time.time()
    preds = {}
    preds[(original, "float32")], orig_params = cached_sevennet(sevennet, frames, data, cache, log)
    log(f"{original}: {len(frames)} frames in {time.time() - t:.0f} s")
    spline_params = None
    for dtype in ("float32", "float64"):
        t = time.time()
        model = load_model(path, dtype=dtype)
        spline_params = model.num_parameters()
        preds[(name, dtype)] = predict_facet(model, frames, batch_atoms)
        log(f"{name} {dtype}: {len(frames)} frames in {time.time() - t:.0f} s")
    spline_meta = load_model(path).metadata
    n = len(frames)
    subsets = [
        (f"all {n:,}", np.arange(n)),
        (f"even {len(range(0, n, 2)):,} (fit)", np.arange(0, n, 2)),
        (f"odd {len(range(1, n, 2)):,} (held out)", np.arange(1, n, 2)),
    ]
    rows = []
    for label, idx in subsets:
        base = errors(preds[(original, "float32")], ref, idx)
        for (model_name, dtype), pred in preds.items():
            err = errors(pred, ref, idx)
            rows.append(
                {
                    "frames": label,
                    "model": model_name,
                    "dtype": dtype,
                    **err,
                    "ratios": {k: err[k] / base[k] for k in err},
                }
            )
    return {"rows": rows, "params": (orig_params, spline_params), "meta": spline_meta}


def accuracy_table(key, result, path):
    name, _, original, _ = MODELS[key]
    lines = [
        f"Accuracy of `{name}` ({path}) and {original} against the DFT labels (MPtrj, uncorrected "
        "energies). All frames are MPtrj frames that SevenNet saw in training; the even half also "
        "served the trim's fit (its fitting structures are made from them), the odd half was held out.",
        "",
        "| frames | model | dtype | E MAE meV/atom | F MAE eV/Å | S MAE eV/Å³ | S MAE GPa | E / orig | F / orig | S / orig |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        q = r["ratios"]
        lines.append(
            f"| {r['frames']} | {r['model']} | {r['dtype']} | {r['energy']:.2f} | {r['forces']:.4f} | "
            f"{r['stress']:.5f} | {r['stress'] * EV_PER_A3_TO_GPA:.4f} | {q['energy']:.3f} | "
            f"{q['forces']:.3f} | {q['stress']:.3f} |"
        )
    orig, spline = result["params"]
    fit = result["meta"].get("spline_fit", {})
    lines += [
        "",
        "| model | parameters | / original | budget (75%) |",
        "|---|---|---|---|",
        f"| {original} (trainable parameters of the sevenn module) | {orig:,} | 1.000 | {int(BUDGET * orig):,} |",
        f"| {name} (`num_parameters()`, K = {fit.get('num_splines', '?')}, R = {fit.get('spline_rank', 0)}, spline_start "
        f"{fit.get('spline_start', '?')} Å) | {spline:,} | {spline / orig:.3f} | "
        f"{'within' if spline <= BUDGET * orig else 'OVER'} |",
    ]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------- speed
#: OMP_WAIT_POLICY of the timed processes; None: OpenMP's default (what users get)
WAIT_POLICY = {"policy": None}


def time_call(python, which, system, model, backend, reps, threads):
    return run_worker(
        python,
        WORKER,
        [which, system, model, backend, reps, threads],
        threads=threads,
        omp_wait_policy=WAIT_POLICY["policy"],
    )[0]


def speed(key, path, systems, reps, rounds, threads, log):
    _, sevennet, _, _ = MODELS[key]
    runs = [
        ("original", "sevennet", sevennet, "-"),
        ("density", "facet", str(path), "density"),
        ("edgewise", "facet", str(path), "edgewise"),
    ]
    out = {}
    for system in systems:
        ms = {label: [] for label, *_ in runs}
        atoms = 0
        for r in range(rounds):
            order = runs if r % 2 == 0 else runs[::-1]  # alternate so drifts of the machine hit all alike
            for label, which, model, backend in order:
                res = time_call(sys.executable, which, system, model, backend, reps, threads)
                ms[label].append(res["ms"])
                atoms = res["atoms"]
        out[system] = {"atoms": atoms, **{label: statistics.median(v) for label, v in ms.items()}}
        log(f"{key} {system}: " + ", ".join(f"{label} {statistics.median(v):.1f} ms" for label, v in ms.items()))
    return out


def speed_table(key, result, threads, reps, rounds):
    name, _, original, _ = MODELS[key]
    lines = [
        f"Speed of one energy + forces + stress call, float32, {threads} thread(s), "
        f"OMP_WAIT_POLICY={WAIT_POLICY['policy'] or 'unset (OpenMP default)'}, "
        f"median of {reps} calls after 3 warm-up calls, median over {rounds} alternating rounds "
        f"(fresh process each): {original} (SevenNetCalculator) vs `{name}` (FacetCalculator; "
        "convolution backend density = facetpot's default, or edgewise).",
        "",
        f"| system | atoms | {original} ms | spline density ms | spline edgewise ms | speed-up density | speed-up edgewise |",
        "|---|---|---|---|---|---|---|",
    ]
    for system, r in result.items():
        lines.append(
            f"| {system} | {r['atoms']} | {r['original']:.1f} | {r['density']:.1f} | {r['edgewise']:.1f} | "
            f"{r['original'] / r['density']:.2f}x | {r['original'] / r['edgewise']:.2f}x |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model-7net0", default=MODELS["7net0"][3], help="facet-7net0-spline model file")
    p.add_argument("--model-l3i5", default=MODELS["l3i5"][3], help="facet-7net-l3i5-spline model file")
    p.add_argument("--model-mf0", default=MODELS["mf0"][3], help="facet-7net-mf0-pbe-spline model file")
    p.add_argument("--only", nargs="+", choices=sorted(MODELS), default=list(MODELS), help="models to run")
    p.add_argument("--data", default=str(DEFAULT_DATA), help="MPtrj frames with DFT labels (default: %(default)s)")
    p.add_argument("--frames", type=int, default=None, help="only the first N frames (a quick look)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (accuracy; speed too unless --speed-threads)")
    p.add_argument("--speed-threads", type=int, default=None)
    p.add_argument("--systems", nargs="+", default=SYSTEMS, choices=SYSTEMS)
    p.add_argument("--reps", type=int, default=10, help="timed calls per process")
    p.add_argument("--rounds", type=int, default=2, help="alternating rounds of the speed measurement")
    p.add_argument("--batch-atoms", type=int, default=200, help="atom budget of a batch (accuracy)")
    p.add_argument("--skip-accuracy", action="store_true")
    p.add_argument("--cache", default=None, help="folder that keeps the originals' predictions between runs")
    p.add_argument("--skip-speed", action="store_true")
    p.add_argument(
        "--omp-wait-policy",
        default=None,
        choices=["PASSIVE", "ACTIVE"],
        help="OMP_WAIT_POLICY of the timed processes (default: unset, OpenMP's default)",
    )
    p.add_argument("--write", action="store_true", help="append the tables to benchmarks/RESULTS.md")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    speed_threads = args.speed_threads or args.threads
    WAIT_POLICY["policy"] = args.omp_wait_policy
    paths = {"7net0": args.model_7net0, "l3i5": args.model_l3i5, "mf0": args.model_mf0}
    for key in args.only:
        if not Path(paths[key]).is_file():
            raise SystemExit(
                f"model file {paths[key]} not found: make it (training/sevennet_spline/README.md) or pass --model-{key}"
            )

    def log(msg):
        print(f"# {msg}", file=sys.stderr, flush=True)

    frames = None
    if not args.skip_accuracy:
        frames = read(args.data, ":")[: args.frames]
    sections = [
        f"### Issue 9: SevenNet-0 and SevenNet-l3i5 as Facet splines, side by side with the originals "
        f"({datetime.date.today()})",
        "",
        f"Machine: {machine()}. `python benchmarks/pretrained.py "
        + " ".join(sys.argv[1:] if argv is None else argv)
        + f"` (accuracy on {args.threads} thread(s), speed on {speed_threads}).",
        "",
    ]
    for key in args.only:
        if not args.skip_accuracy:
            sections += [
                accuracy_table(
                    key, accuracy(key, paths[key], frames, args.batch_atoms, log, args.data, args.cache), paths[key]
                ),
                "",
            ]
        if not args.skip_speed:
            result = speed(key, paths[key], args.systems, args.reps, args.rounds, speed_threads, log)
            sections += [speed_table(key, result, speed_threads, args.reps, args.rounds), ""]
    text = "\n".join(sections)
    print(text)
    if args.write:
        append_results("\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
