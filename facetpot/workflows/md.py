"""``facet md``: molecular dynamics with ASE's integrators and a Facet model.

    nve        velocity Verlet
    langevin   Langevin NVT (friction in 1/fs)
    nhc        Nose-Hoover chain NVT (tdamp in fs)
    npt        Martyna-Tobias-Klein NPT, full cell fluctuations (ASE's MTKNPT; tdamp, pdamp in fs)

Written as it runs: ``trajectory.extxyz`` (every ``traj_every`` steps, with momenta, the step and the
time) and ``thermo.csv`` (every ``log_every`` steps: step, time_ps, T_K, E_pot, E_kin, E_tot (eV), P_GPa
with the kinetic part, volume (Å^3)). ``restart`` continues from the trajectory's last frame (positions,
cell, momenta) up to ``steps`` in total; the thermostat and barostat variables start afresh.
"""
from __future__ import annotations

import csv
import time
from pathlib import Path

import numpy as np
from ase import units
from ase.io import read, write
from ase.md.langevin import Langevin
from ase.md.nose_hoover_chain import MTKNPT, NoseHooverChainNVT
from ase.constraints import FixCom
from ase.md.velocitydistribution import Stationary, thermalize_momenta
from ase.md.verlet import VelocityVerlet
from tqdm import tqdm

from ..calculator import FacetCalculator
from ..option_checks import at_least, finite, positive
from ..units import GPA_TO_EV_PER_A3, EV_PER_A3_TO_GPA
from ..validation import MIN_DISTANCE
from .structure_inputs import read_structure

ENSEMBLES = ("nve", "langevin", "nhc", "npt")
THERMO = ("step", "time_ps", "T_K", "E_pot", "E_kin", "E_tot", "P_GPa", "volume")


def make_integrator(atoms, ensemble: str, timestep_fs: float, temperature: float, pressure_gpa: float, friction: float,
                    tdamp_fs: float, pdamp_fs: float, seed: int):
    dt = timestep_fs * units.fs
    if ensemble == "nve":
        return VelocityVerlet(atoms, timestep=dt)
    if ensemble == "langevin":
        atoms.set_constraint(FixCom())  # ASE's recommended way to keep the centre of mass (not fixcm)
        return Langevin(atoms, timestep=dt, temperature_K=temperature, friction=friction / units.fs,
                        fixcm=False, rng=np.random.default_rng(seed))
    if ensemble == "nhc":
        return NoseHooverChainNVT(atoms, timestep=dt, temperature_K=temperature, tdamp=tdamp_fs * units.fs)
    if not (atoms.pbc.all() and atoms.cell.volume > 1e-8):
        raise ValueError("npt needs a periodic structure with a 3D cell")
    return MTKNPT(atoms, timestep=dt, temperature_K=temperature, pressure_au=pressure_gpa * GPA_TO_EV_PER_A3,
                  tdamp=tdamp_fs * units.fs, pdamp=pdamp_fs * units.fs)


def _thermo_row(atoms, step: int, timestep_fs: float) -> dict:
    e_pot, e_kin = atoms.get_potential_energy(), atoms.get_kinetic_energy()
    periodic = atoms.pbc.all() and atoms.cell.volume > 1e-8
    pressure = -np.trace(atoms.get_stress(voigt=False, include_ideal_gas=True)) / 3 * EV_PER_A3_TO_GPA if periodic else np.nan
    return {"step": step, "time_ps": step * timestep_fs / 1000.0, "T_K": atoms.get_temperature(), "E_pot": e_pot,
            "E_kin": e_kin, "E_tot": e_pot + e_kin, "P_GPa": pressure, "volume": atoms.get_volume() if periodic else np.nan}


def run_md(model, structure, out_dir, ensemble: str = "nve", steps: int = 1000, timestep_fs: float = 1.0,
           temperature: float = 300.0, pressure_gpa: float = 0.0, friction: float = 0.01, tdamp_fs: float = 100.0,
           pdamp_fs: float = 1000.0, log_every: int = 10, traj_every: int = 10, seed: int = 0, restart: bool = False,
           device: str = "cpu", dtype: str = "float32", progress: bool = True, min_distance: float = MIN_DISTANCE) -> int:
    """Run (or continue) MD of ``structure`` (a file ASE reads, its last frame) with ``model`` (a FacetModel, a
    file or a shipped name); returns the last step. Options are checked, the structure read and evaluated once
    before any file is written: a failed start leaves no output behind."""
    if ensemble not in ENSEMBLES:
        raise ValueError(f"ensemble must be one of {ENSEMBLES}, got {ensemble!r}")
    at_least("steps", steps, 1)
    positive("timestep", timestep_fs, "fs")
    at_least("temperature", temperature, 0.0, "K")
    finite("pressure", pressure_gpa, "GPa")
    positive("friction", friction, "1/fs")
    positive("tdamp", tdamp_fs, "fs")
    positive("pdamp", pdamp_fs, "fs")
    at_least("log_every", log_every, 1)
    at_least("traj_every", traj_every, 1)
    out = Path(out_dir)
    traj, thermo = out / "trajectory.extxyz", out / "thermo.csv"
    start = 0
    if restart:
        if not traj.is_file():
            raise FileNotFoundError(f"nothing to restart from: {traj} does not exist")
        atoms = read(traj, -1)
        start = int(atoms.info.get("step", 0))
        rows = list(csv.DictReader(open(thermo))) if thermo.is_file() else []
        kept = [r for r in rows if int(r["step"]) <= start]
    else:
        if traj.exists() or thermo.exists():
            raise ValueError(f"{out} already holds an MD run: continue it with --restart, or choose another folder")
        atoms = read_structure(structure)
        thermalize_momenta(atoms, temperature_K=temperature, rng=np.random.default_rng(seed))
        Stationary(atoms)
        kept = []
    atoms.calc = FacetCalculator(model, device=device, dtype=dtype, min_distance=min_distance)
    atoms.get_potential_energy()  # unknown element, overlapping atoms ...: refused before any file is written
    dyn = make_integrator(atoms, ensemble, timestep_fs, temperature, pressure_gpa, friction, tdamp_fs, pdamp_fs, seed)
    out.mkdir(parents=True, exist_ok=True)
    with open(thermo, "w", newline="") as f:
        log = csv.DictWriter(f, fieldnames=THERMO)
        log.writeheader()
        log.writerows(kept)
        step = start

        def record():
            if step % log_every == 0 and not (restart and step == start and kept):
                log.writerow({k: (f"{v:.10g}" if isinstance(v, float) else v) for k, v in _thermo_row(atoms, step, timestep_fs).items()})
                f.flush()
            if step % traj_every == 0 and not (restart and step == start):
                atoms.info.update(step=step, time_ps=step * timestep_fs / 1000.0)
                write(traj, atoms, format="extxyz", append=step > 0)

        record()
        bar = tqdm(total=steps, initial=start, unit="step", disable=not progress)
        t0 = time.perf_counter()
        while step < steps:
            dyn.run(1)
            step += 1
            e = atoms.get_potential_energy()
            if not np.isfinite(e):
                raise FloatingPointError(f"non-finite energy at step {step}; the last good frame is in {traj}")
            record()
            bar.update(1)
            if step % log_every == 0:
                elapsed = time.perf_counter() - t0
                bar.set_postfix(T=f"{atoms.get_temperature():.0f}K",
                                ns_per_day=f"{(step - start) * timestep_fs * 1e-6 / max(elapsed, 1e-9) * 86400:.3g}")
        bar.close()
    return step
