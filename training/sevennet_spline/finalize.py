"""Last step of the spline trim: the fine-tuned weights (``facet train``'s ``last.pt``, EMA weights) or the
least-squares refit itself (``refit_outputs.py``'s output, no ``--config``), with the provenance of the spline
fit (source checkpoint, licence, citation, K, fit errors) and of the fine-tune if there was one, written as the
shipped model file in float32 (``--dtype``).

    python training/sevennet_spline/finalize.py .spline_work/7net0_refit.pt --name facet-7net0-spline \
        -o pretrained/facet-7net0-spline.pt

    python training/sevennet_spline/finalize.py .spline_work/runs/7net0_gpu/last.pt \
        --fit .spline_work/7net0_k32r12_fit.pt --config training/sevennet_spline/finetune_7net0_gpu.yaml \
        --name facet-7net0-spline -o pretrained/facet-7net0-spline.pt
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import yaml

from facetpot.inference.model_source import load_model
from facetpot.io.model_file import save_model


def sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("trained", help="the fine-tuned model file (facet train's last.pt), or the refit itself")
    p.add_argument("--fit", default=None, help="the spline fit it started from (fit.py's output; default: TRAINED)")
    p.add_argument("--config", default=None, help="the facet train config of the fine-tune (none: no fine-tune)")
    p.add_argument("--name", required=True)
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("-o", "--output", required=True)
    args = p.parse_args(argv)
    fit = load_model(args.fit or args.trained)
    model = load_model(args.trained, dtype=args.dtype)
    if model.config != fit.config:
        raise SystemExit(f"{args.trained} and {args.fit} have different model configs")
    trained_meta = model.metadata
    meta = {k: fit.metadata[k] for k in ("source", "licence", "citation", "spline_fit") if k in fit.metadata}
    meta["name"] = args.name
    if args.config:
        meta["distillation"] = {
            "config": yaml.safe_load(Path(args.config).read_text()),
            "trained_steps": trained_meta.get("trained_steps"),
            "valid": trained_meta.get("valid", {}).get("all", {}),
            "recipe": "training/sevennet_spline/README.md",
        }
    model.metadata = meta
    save_model(model, args.output, metadata=meta)
    print(
        f"wrote {args.output}: {args.name}, {model.num_parameters():,} parameters, {args.dtype}, "
        f"sha256 {sha256(args.output)}"
    )


if __name__ == "__main__":
    main()
