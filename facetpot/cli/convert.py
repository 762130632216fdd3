"""``facet convert FILES -o CACHE``: labelled data files into an on-disk training cache.

(``facet convert sevennet NAME -o OUT.pt`` is the command ``convert-sevennet``; ``main`` routes it there.)
"""

from __future__ import annotations

from .options import add_command, add_key_option, parse_keys


def add_to(sub) -> None:
    p = add_command(
        sub,
        "convert",
        "convert data files into an on-disk training cache (a SevenNet model into a "
        "facetpot model: facet convert sevennet NAME_OR_CHECKPOINT -o OUT.pt, see facet convert-sevennet "
        "--help)",
        run,
    )
    p.add_argument("inputs", nargs="+", help="extxyz / ASE .db / MPtrj .json files or globs")
    p.add_argument("-o", "--output", required=True, help="cache folder")
    add_key_option(p, "energy=REF_energy, forces=REF_forces, stress=REF_stress")
    p.add_argument(
        "--mptrj-energy",
        default="uncorrected",
        choices=["uncorrected", "corrected"],
        help="MPtrj JSON: which energy is the label",
    )
    p.add_argument("--shard-frames", type=int, default=50_000, help="frames per cache shard")


def run(args) -> int:
    from ..data.cache import convert, source_fingerprints  # lazy: facet --help start-up
    from ..data.readers import iter_frames  # lazy: facet --help start-up

    frames = iter_frames(args.inputs, keys=parse_keys(args.key), mptrj_energy=args.mptrj_energy)
    convert(frames, args.output, shard_frames=args.shard_frames, sources=source_fingerprints(args.inputs))
    return 0
