"""``facet export [MODEL] -o FILE``: a model as a TorchScript archive (LAMMPS, C++) or an AOTInductor package."""

from __future__ import annotations

from ..pretrained import DEFAULT_MODEL
from .options import add_command


def add_to(sub) -> None:
    p = add_command(sub, "export", "export a model for LAMMPS / C++ (TorchScript) or AOTInductor", run)
    p.add_argument("model", nargs="?", default=None, help=f"model file or pretrained name (default: {DEFAULT_MODEL})")
    p.add_argument("-o", "--output", required=True, help="output file (.pt for torchscript, .pt2 for aoti)")
    p.add_argument("--format", default="torchscript", choices=["torchscript", "aoti"], help="archive kind")
    p.add_argument("--dtype", default=None, choices=["float32", "float64"], help="default: the model file's")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where the archive computes")


def run(args) -> int:
    from ase.data import chemical_symbols  # lazy: facet --help start-up

    from ..export.aoti import export_aoti  # lazy: facet --help start-up
    from ..export.torchscript import export_torchscript  # lazy: facet --help start-up
    from ..inference.model_source import resolve_model  # lazy: facet --help start-up

    model = resolve_model(args.model or DEFAULT_MODEL, device="cpu", dtype=args.dtype)  # None: the file's own dtype
    dtype = str(model.dtype).replace("torch.", "")
    export = export_torchscript if args.format == "torchscript" else export_aoti
    path = export(model, args.output, dtype=dtype, device=args.device)
    print(
        f"wrote {path} ({args.format}, {dtype}, {args.device}; cutoff {model.cutoff} A, "
        f"{model.num_layers} layers, species {' '.join(chemical_symbols[z] for z in model.species)})"
    )
    return 0
