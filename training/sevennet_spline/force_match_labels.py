"""Labels for end-to-end force matching of a spline trim to its exact port (issue 36): pure distillation.

Every structure is labelled by the EXACT port in float64 (energy, forces, stress); no DFT label is used. The
structures are the fidelity benchmark's families made from the fitting half of the shared MPtrj frames
(``frames[0::2]``; the odd half stays held out), with their own random numbers (``--seed``, not the
benchmark's): the frames themselves, near-equilibrium, strained and sheared, compressed, rattled, hot MD
(driven by the shipped trim), slabs and vacancies, close contacts (one pair at 0.7-1.5 Å), element-diverse
frames, plus ``--extra`` more close contacts and rattled structures. ``config_type`` names the family. A structure
with atoms closer than 0.5 Å (a rattle can put H onto O) is dropped. Each family's labels are kept beside the
output (``OUTPUT.FAMILY.extxyz``) as it finishes, so a rerun after a failure labels only the families missing.

    python training/sevennet_spline/force_match_labels.py .spline_work/7net0_port.pt \
        -o .spline_work/force_match_7net0.extxyz --trim facet-7net0-spline

Then ``facet train training/sevennet_spline/force_match_7net0_cpu.yaml`` (resumable: ``--resume``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from ase.io import read, write

from facetpot.inference.model_source import load_model
from facetpot.inference.prepare import inference_model
from facetpot.inference.single_points import predict_structures
from facetpot.ports.sevennet import convert_sevennet
from facetpot.structure.validation import MIN_DISTANCE

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
from fidelity import close_contacts, families, rattled  # noqa: E402  (the benchmark's families, other random numbers)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_labels import min_distance, with_labels  # noqa: E402  (the distillation labels' own helpers)

DEFAULT_DATA = ROOT.parent / "shared/data/mptrj/mptrj-random-1k.extxyz"


def labelled(structures, port, family: str, batch_atoms: int) -> list:
    return [
        with_labels(a, *result, family, 1.0)
        for a, result in zip(structures, predict_structures(port, structures, batch_atoms))
    ]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("port", help="the exact port's model file, or a SevenNet model name (needs sevenn)")
    p.add_argument("-o", "--output", required=True, help="extxyz file to write")
    p.add_argument("--trim", default="facet-7net0-spline", help="model that drives the hot MD snapshots")
    p.add_argument("--per-family", type=int, default=150)
    p.add_argument("--extra", type=int, default=400, help="more close contacts and rattled structures (each)")
    p.add_argument("--max-atoms", type=int, default=40, help="largest frame the families start from")
    p.add_argument("--frames-max-atoms", type=int, default=80, help="largest unperturbed frame kept")
    p.add_argument("--seed", type=int, default=2)
    p.add_argument("--data", default=str(DEFAULT_DATA))
    p.add_argument("--batch-atoms", type=int, default=400)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    t0 = time.time()
    port = load_model(args.port) if Path(args.port).is_file() else convert_sevennet(args.port)
    port = inference_model(port, dtype="float64")
    frames = [a for a in read(args.data, ":")[0::2] if a.calc is not None]
    for a in frames:
        a.info["dft_forces"] = a.get_forces().copy()  # families() reads it (near-equilibrium picks)
        a.calc = None
    small = [a for a in frames if len(a) <= args.max_atoms]
    rng = np.random.default_rng(args.seed)
    made = {"frames": [a for a in frames if len(a) <= args.frames_max_atoms]}
    made.update(families(small, args.per_family, rng, inference_model(args.trim, dtype="float64")))
    pick = lambda: small[int(rng.integers(len(small)))].copy()  # noqa: E731
    made["close_contact"] += close_contacts(pick, args.extra, rng)
    made["rattled"] += rattled(pick, args.extra, rng)
    print(f"structures made ({time.time() - t0:.0f} s)", flush=True)
    out = []
    for family, structures in made.items():
        kept = Path(f"{args.output}.{family}.extxyz")
        if kept.is_file():
            out += read(kept, ":")
            print(f"{family}: labels read from {kept}", flush=True)
            continue
        apart = [a for a in structures if min_distance(a, cutoff=MIN_DISTANCE) >= MIN_DISTANCE]
        done = labelled(apart, port, family, args.batch_atoms)
        write(kept, done, format="extxyz")
        out += done
        print(
            f"{family}: {len(done)} structures labelled, {len(structures) - len(apart)} dropped (atoms closer than "
            f"{MIN_DISTANCE} Å) ({time.time() - t0:.0f} s)",
            flush=True,
        )
    write(args.output, out, format="extxyz")
    print(f"wrote {args.output}: {len(out)} structures, {sum(len(a) for a in out):,} atoms ({time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
