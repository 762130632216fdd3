"""The C++ inference engine: ``facetpot::frozen_program`` (``frozen_program_op.cpp``) with the density convolution
it calls (``density_group_op.cpp``), compiled once per machine and torch version, then loaded into this process.

Sources: the package's C++ folder (``facetpot/lammps/src``, the repository's ``md/lammps``, shared with the LAMMPS
plugin). The library is cached under ``~/.cache/facetpot/engine/<key>/`` (``FACETPOT_CACHE`` overrides the root), the
key hashing the sources, the flags, the compiler and the torch version; a first build takes about a minute on 2
cores and prints one line. ``FACETPOT_ENGINE`` chooses: ``auto`` (default: build if needed, fall back to the
Python layers with one warning if no compiler works), ``python`` (never build or load), ``cpp`` (an error
if it cannot be built).
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import List, Optional

import torch

from ..io.atomic_write import atomic_write

SOURCES = ("density_group_op.cpp", "frozen_program_op.cpp")
HEADERS = ("density_group.h", "vector_loops.h")
LIBRARY = "libfacetpot_engine.so"
CHOICES = ("auto", "python", "cpp")

_loaded: Optional[Path] = None
_failed: Optional[str] = None


class EngineBuildError(RuntimeError):
    """The engine cannot be built here: the message says why (no compiler, a compile error with its log)."""


def engine_choice() -> str:
    choice = os.environ.get("FACETPOT_ENGINE", "auto").strip().lower() or "auto"
    if choice not in CHOICES:
        raise ValueError(f"FACETPOT_ENGINE must be one of {', '.join(CHOICES)}, got {choice!r}")
    return choice


def source_dir() -> Path:
    """The package's C++ folder (installed: facetpot/lammps/src; repository: md/lammps)."""
    here = Path(__file__).resolve().parents[1]
    for cand in (here / "lammps" / "src", here.parent / "md" / "lammps"):
        if all((cand / s).is_file() for s in SOURCES + HEADERS):
            return cand
    raise EngineBuildError(f"the engine's C++ sources ({', '.join(SOURCES)}) are not in {here / 'lammps' / 'src'}")


def compiler_flags(include: Path) -> List[str]:
    """The compiler and its flags: C++17, -O3 for this machine's instruction set (-march=native: the library is built
    per machine, its key holds the CPU's, :func:`cpu_signature`), position-independent, hidden symbols, OpenMP where
    torch has it, against this torch's headers."""
    import torch.utils.cpp_extension as cpp  # lazy: only a build needs it, and importing it costs every calculator

    # hidden visibility: the library's own calls stay inside it, whatever else a process has loaded (the LAMMPS
    # plugin compiles density_group_op.cpp too)
    cmd = [os.environ.get("CXX", "g++"), "-std=c++17", "-O3", "-march=native", "-fPIC", "-fvisibility=hidden"]
    if torch.backends.openmp.is_available():
        # ATen's parallel_for in the engine's kernels is an OpenMP loop compiled into the engine: without the flag it
        # runs on one thread whatever torch.set_num_threads says. The runtime is torch's own libgomp.so.1 (the
        # library's rpath, the soname torch has loaded): one thread pool in the process.
        cmd.append("-fopenmp")
    cmd += [f"-D_GLIBCXX_USE_CXX11_ABI={int(torch.compiled_with_cxx11_abi())}", f"-I{include}"]
    for inc in cpp.include_paths():
        cmd += ["-isystem", str(inc)]
    return cmd


def link_flags() -> List[str]:
    """libtorch's libraries, with an rpath to the torch wheel's lib folder."""
    torch_lib = Path(torch.__file__).resolve().parent / "lib"
    return [f"-L{torch_lib}", f"-Wl,-rpath,{torch_lib}", "-Wl,--no-as-needed", "-ltorch", "-ltorch_cpu", "-lc10"]


def compile_library(sources: List[Path], out: Path) -> Path:
    """Compile ``sources`` into the shared library ``out``: one compiler process per source, in parallel, then a
    link; EngineBuildError with the compiler's message if it fails."""
    compiler = os.environ.get("CXX", "g++")
    if shutil.which(compiler) is None:
        raise EngineBuildError(f"no C++ compiler ({compiler}) on PATH: install g++ (C++17)")
    flags = compiler_flags(sources[0].parent)
    with tempfile.TemporaryDirectory() as tmp:
        objects = [Path(tmp) / (s.stem + ".o") for s in sources]
        procs = [
            subprocess.Popen(
                flags + ["-c", str(s), "-o", str(o)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
            for s, o in zip(sources, objects)
        ]
        for s, proc in zip(sources, procs):
            _, err = proc.communicate()
            if proc.returncode != 0:
                raise EngineBuildError(f"compiling {s.name} failed:\n{err[-3000:]}")
        link = flags + ["-shared"] + [str(o) for o in objects] + ["-o", str(out)] + link_flags()
        proc = subprocess.run(link, capture_output=True, text=True)
        if proc.returncode != 0:
            raise EngineBuildError(f"linking {out.name} failed:\n{proc.stderr[-3000:]}")
    return out


def cpu_signature() -> str:
    """The CPU model and instruction-set flags (Linux: /proc/cpuinfo), so that a cache shared by machines of other
    CPUs (a network home) keeps one build per kind of CPU: -march=native code may not run on another."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return f"{platform.machine()} {platform.processor()}"
    keep = [line for line in lines if line.split(":")[0].strip() in ("model name", "flags", "Features", "CPU part")]
    return "\n".join(sorted(set(keep)))


def build_key(src: Path) -> str:
    h = hashlib.sha256()
    h.update(cpu_signature().encode())
    for name in SOURCES + HEADERS:
        h.update((src / name).read_bytes())
    h.update(" ".join(compiler_flags(Path("INC")) + link_flags()).encode())
    h.update(f"{torch.__version__} {Path(torch.__file__).resolve().parent}".encode())
    try:
        compiler = os.environ.get("CXX", "g++")
        h.update(subprocess.run([compiler, "--version"], capture_output=True, text=True).stdout.encode())
    except OSError:
        pass
    return h.hexdigest()[:20]


def library_path() -> Path:
    """Where this machine's engine library is (or will be) cached."""
    root = Path(os.environ.get("FACETPOT_CACHE", Path.home() / ".cache" / "facetpot")) / "engine"
    src = source_dir()
    return root / build_key(src) / LIBRARY


def build_engine(force: bool = False, verbose: bool = True) -> Path:
    """Build (or reuse) the engine library; returns its path."""
    src = source_dir()
    out = library_path()
    if force or not out.is_file():
        if verbose:
            print(f"facetpot: building the C++ inference engine (torch {torch.__version__}), once ...", file=sys.stderr)
        t0 = time.time()
        atomic_write(out, lambda tmp: compile_library([src / s for s in SOURCES], tmp), mode=0o777)
        if verbose:
            print(f"facetpot: engine built in {time.time() - t0:.0f} s: {out}", file=sys.stderr)
    return out


def load_engine() -> bool:
    """Whether ``torch.ops.facetpot.frozen_program`` can run in this process: loads the library (building it first
    if needed) as ``FACETPOT_ENGINE`` allows. ``auto`` warns once and returns False where it cannot be built."""
    global _loaded, _failed
    choice = engine_choice()
    if choice == "python":
        return False
    if _loaded is not None:
        return True
    if _failed is not None and choice == "auto":
        return False
    try:
        path = build_engine()
        torch.ops.load_library(str(path))
    except (EngineBuildError, OSError, RuntimeError) as exc:
        _failed = str(exc)
        if choice == "cpp":
            raise EngineBuildError(f"FACETPOT_ENGINE=cpp but the C++ engine is unavailable: {exc}") from exc
        warnings.warn(
            f"facetpot: the C++ inference engine is unavailable, running the Python layers (slower): {exc}",
            RuntimeWarning,
            stacklevel=2,
        )
        return False
    _loaded = path
    return True
