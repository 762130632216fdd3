"""``facet lammps build|status``: the LAMMPS plugin (pair_style facet)."""

from __future__ import annotations

from .options import add_command


def add_to(sub) -> None:
    p = add_command(sub, "lammps", "build the LAMMPS plugin (pair_style facet) or show its state", run)
    p.add_argument("action", choices=["build", "status"], help="build: compile (cached); status: where it is")
    p.add_argument("--force", action="store_true", help="rebuild even if up to date")
    p.add_argument("--quiet", action="store_true", help="no build messages")


def run(args) -> int:
    from ..lammps.build import build_plugin, plugin_status  # lazy: facet --help start-up

    if args.action == "build":
        print(f"pair_style facet plugin: {build_plugin(force=args.force, verbose=not args.quiet)}")
    else:
        print(plugin_status())
    return 0
