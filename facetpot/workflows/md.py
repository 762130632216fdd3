"""``facet md``: molecular dynamics with ASE's integrators and a Facet model.

    nve        velocity Verlet
    langevin   Langevin NVT (friction in 1/fs)
    nhc        Nose-Hoover chain NVT (tdamp in fs)
    npt        Martyna-Tobias-Klein NPT, full cell fluctuations (ASE's MTKNPT; tdamp, pdamp in fs)

Written as it runs: ``trajectory.extxyz`` (every ``traj_every`` steps and at the last step, with momenta, the
step, the time and the ensemble), ``thermo.csv`` (every ``log_every`` steps and the last: step, time_ps, T_K,
E_pot_eV, E_kin_eV, E_tot_eV, P_GPa with the kinetic part, volume_A3; with a committee of models also
max_force_std_eV_per_A, the largest per-atom committee force std) and ``restart.npz`` beside every frame
(``md_state``: exact positions, momenta, cell and the integrator's own variables). ``restart`` continues from it
up to ``steps`` in total and reproduces the uninterrupted run in every ensemble (Langevin included: its random
generator's state is saved); a restart with another ensemble is refused.
"""

from __future__ import annotations

import csv
import time
import warnings
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np
from ase import Atoms, units
from ase.io import read, write
from ase.md.langevin import Langevin
from ase.md.nose_hoover_chain import MTKNPT, NoseHooverChainNVT
from ase.constraints import FixCom
from ase.md.velocitydistribution import Stationary, thermalize_momenta
from ase.md.verlet import VelocityVerlet
from tqdm import tqdm

from ..inference.calculator import FacetCalculator
from ..io.output_folder import check_output_folder
from ..structure.option_checks import at_least, finite, positive
from ..structure.units import GPA_TO_EV_PER_A3, EV_PER_A3_TO_GPA
from ..structure.validation import MIN_DISTANCE, is_crystal
from .md_state import load_state, restore_atoms, restore_integrator, save_state
from ..io.structure_inputs import read_structure

ENSEMBLES = ("nve", "langevin", "nhc", "npt")
THERMO = ("step", "time_ps", "T_K", "E_pot_eV", "E_kin_eV", "E_tot_eV", "P_GPa", "volume_A3")
#: thermo.csv's extra column of a committee run (``model`` a list): the largest committee force std of the step
COMMITTEE_THERMO = "max_force_std_eV_per_A"
#: thermo.csv columns before their names carried units (read when restarting such a run)
OLD_THERMO_NAMES = {"E_pot": "E_pot_eV", "E_kin": "E_kin_eV", "E_tot": "E_tot_eV", "volume": "volume_A3"}
#: the run's state for --restart (``md_state``)
STATE = "restart.npz"


def make_integrator(
    atoms,
    ensemble: str,
    timestep_fs: float,
    temperature: float,
    pressure_gpa: float,
    friction: float,
    tdamp_fs: float,
    pdamp_fs: float,
    seed: int,
):
    dt = timestep_fs * units.fs
    if ensemble == "nve":
        return VelocityVerlet(atoms, timestep=dt)
    if ensemble == "langevin":
        atoms.set_constraint(FixCom())  # ASE's recommended way to keep the centre of mass (not fixcm)
        return Langevin(
            atoms,
            timestep=dt,
            temperature_K=temperature,
            friction=friction / units.fs,
            fixcm=False,
            rng=np.random.default_rng(seed),
        )
    if ensemble == "nhc":
        return NoseHooverChainNVT(atoms, timestep=dt, temperature_K=temperature, tdamp=tdamp_fs * units.fs)
    if not is_crystal(atoms):
        raise ValueError("npt needs a periodic structure with a 3D cell")
    return MTKNPT(
        atoms,
        timestep=dt,
        temperature_K=temperature,
        pressure_au=pressure_gpa * GPA_TO_EV_PER_A3,
        tdamp=tdamp_fs * units.fs,
        pdamp=pdamp_fs * units.fs,
    )


def _thermo_row(atoms, step: int, timestep_fs: float) -> dict:
    e_pot, e_kin = atoms.get_potential_energy(), atoms.get_kinetic_energy()
    periodic = is_crystal(atoms)
    pressure = (
        -np.trace(atoms.get_stress(voigt=False, include_ideal_gas=True)) / 3 * EV_PER_A3_TO_GPA if periodic else np.nan
    )
    row = {
        "step": step,
        "time_ps": step * timestep_fs / 1000.0,
        "T_K": atoms.get_temperature(),
        "E_pot_eV": e_pot,
        "E_kin_eV": e_kin,
        "E_tot_eV": e_pot + e_kin,
        "P_GPa": pressure,
        "volume_A3": atoms.get_volume() if periodic else np.nan,
    }
    if "forces_std" in atoms.calc.results:
        row[COMMITTEE_THERMO] = float(np.max(atoms.calc.results["forces_std"]))
    return row


def _check_options(
    ensemble, steps, timestep_fs, temperature, pressure_gpa, friction, tdamp_fs, pdamp_fs, log_every, traj_every
) -> None:
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


def _resume(out: Path, ensemble: str) -> Tuple[Atoms, int, List[dict], Optional[dict]]:
    """(atoms, step, thermo rows up to it, saved state or None) of the run in ``out``."""
    traj, thermo, state_file = out / "trajectory.extxyz", out / "thermo.csv", out / STATE
    if not traj.is_file():
        raise FileNotFoundError(f"nothing to restart from: {traj} does not exist")
    atoms = read(traj, -1)
    last_frame = int(atoms.info.get("step", 0))
    state = load_state(state_file) if state_file.is_file() else None
    was = str(state["ensemble"]) if state is not None else atoms.info.get("ensemble")
    if was is not None and was != ensemble:
        raise ValueError(f"{out} holds a {was} run: restart it with --ensemble {was}, or start a new folder")
    if state is not None:
        restore_atoms(atoms, state)
        start = int(state["step"])
    else:  # written by an older facetpot: positions and momenta to 8 decimals, integrator variables afresh
        warnings.warn(
            f"{out} has no {STATE}: continuing from the last trajectory frame; the thermostat and "
            "barostat variables start afresh",
            stacklevel=3,
        )
        start = int(atoms.info.get("step", 0))
    rows = list(csv.DictReader(open(thermo))) if thermo.is_file() else []
    kept = [{OLD_THERMO_NAMES.get(k, k): v for k, v in r.items()} for r in rows if int(r["step"]) <= start]
    if last_frame > start:  # killed between the frame and the state file: frames past the state go
        write(traj, [f for f in read(traj, ":") if int(f.info.get("step", 0)) <= start], format="extxyz")
    return atoms, start, kept, state


def _fresh_start(structure, out: Path, temperature: float, seed: int):
    """(atoms with Maxwell-Boltzmann momenta and no drift, step 0, no thermo rows, no integrator state); ``run_md``
    scales the momenta to the temperature once the integrator's constraints are set."""
    if (out / "trajectory.extxyz").exists() or (out / "thermo.csv").exists():
        raise ValueError(f"{out} already holds an MD run: continue it with --restart, or choose another folder")
    atoms = read_structure(structure)
    thermalize_momenta(atoms, temperature_K=temperature, rng=np.random.default_rng(seed))
    Stationary(atoms)
    return atoms, 0, [], None


def _scale_to_temperature(atoms, temperature: float) -> None:
    """Momenta scaled so the starting temperature is the asked one, as LAMMPS ``velocity create`` does (a draw
    from Maxwell-Boltzmann, less its drift, starts below it: 2-atom Si at 300 K drew 43.6 K, Si 64 278.6 K)."""
    now = atoms.get_temperature()
    if temperature > 0 and now > 0:
        atoms.set_momenta(atoms.get_momenta() * np.sqrt(temperature / now), apply_constraint=False)


def run_md(
    model,
    structure,
    out_dir,
    ensemble: str = "nve",
    steps: int = 1000,
    timestep_fs: float = 1.0,
    temperature: float = 300.0,
    pressure_gpa: float = 0.0,
    friction: float = 0.01,
    tdamp_fs: float = 100.0,
    pdamp_fs: float = 1000.0,
    log_every: int = 10,
    traj_every: int = 10,
    seed: int = 0,
    restart: bool = False,
    device: str = "cpu",
    dtype: str = "float32",
    progress: bool = True,
    min_distance: float = MIN_DISTANCE,
    dispersion=None,
) -> int:
    """Run (or continue) MD of ``structure`` (a file ASE reads, its last frame) with ``model`` (a FacetModel, a
    file or a shipped name; a list of them is a committee: thermo.csv gets the largest force std), plus
    ``dispersion`` as for ``FacetCalculator`` (e.g. "d3"); returns the last step. Options are checked, the
    structure read and evaluated once before any file is written: a failed start leaves no output behind."""
    _check_options(
        ensemble, steps, timestep_fs, temperature, pressure_gpa, friction, tdamp_fs, pdamp_fs, log_every, traj_every
    )
    out = check_output_folder(out_dir)
    traj, thermo = out / "trajectory.extxyz", out / "thermo.csv"
    atoms, start, kept, state = _resume(out, ensemble) if restart else _fresh_start(structure, out, temperature, seed)
    atoms.calc = FacetCalculator(model, device=device, dtype=dtype, min_distance=min_distance, dispersion=dispersion)
    atoms.get_potential_energy()  # unknown element, overlapping atoms ...: refused before any file is written
    dyn = make_integrator(atoms, ensemble, timestep_fs, temperature, pressure_gpa, friction, tdamp_fs, pdamp_fs, seed)
    if state is not None:
        restore_integrator(dyn, state)
    else:
        _scale_to_temperature(atoms, temperature)  # after the integrator's constraints (their degrees of freedom)
    out.mkdir(parents=True, exist_ok=True)
    with open(thermo, "w", newline="") as f:
        fields = THERMO + ((COMMITTEE_THERMO,) if "forces_std" in atoms.calc.results else ())
        log = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore", restval="")
        log.writeheader()
        log.writerows(kept)
        record = _Recorder(f, log, traj, atoms, dyn, out / STATE, ensemble, timestep_fs, log_every, traj_every, steps)
        record(start, resumed=restart, kept=bool(kept))
        return _advance(dyn, atoms, record, start, steps, timestep_fs, log_every, progress, traj)


class _Recorder:
    """Writes a step's thermo row (every ``log_every`` steps and the last) and its frame and restart state
    (every ``traj_every`` steps and the last)."""

    def __init__(self, f, log, traj, atoms, dyn, state_path, ensemble, timestep_fs, log_every, traj_every, steps):
        self.f, self.log, self.traj, self.atoms, self.dyn, self.state_path = f, log, traj, atoms, dyn, state_path
        self.ensemble, self.timestep_fs, self.log_every, self.traj_every, self.steps = (
            ensemble,
            timestep_fs,
            log_every,
            traj_every,
            steps,
        )

    def __call__(self, step: int, resumed: bool = False, kept: bool = False) -> None:
        """``resumed``: the first step of a restart, whose frame (and, when ``kept``, row) is already there."""
        last = step == self.steps  # the last step is always logged and saved
        if (step % self.log_every == 0 or last) and not (resumed and kept):
            row = _thermo_row(self.atoms, step, self.timestep_fs)
            self.log.writerow({k: (f"{v:.10g}" if isinstance(v, float) else v) for k, v in row.items()})
            self.f.flush()
        if (step % self.traj_every == 0 or last) and not resumed:
            self.atoms.info.update(step=step, time_ps=step * self.timestep_fs / 1000.0, ensemble=self.ensemble)
            write(self.traj, self.atoms, format="extxyz", append=step > 0)
            save_state(self.state_path, self.atoms, self.dyn, step, self.ensemble)


def _advance(
    dyn,
    atoms,
    record: _Recorder,
    start: int,
    steps: int,
    timestep_fs: float,
    log_every: int,
    progress: bool,
    traj: Path,
) -> int:
    """Steps ``start + 1`` to ``steps``, each recorded; a non-finite energy stops the run."""
    bar = tqdm(total=steps, initial=start, unit="step", disable=not progress)
    t0, step = time.perf_counter(), start
    while step < steps:
        dyn.run(1)
        step += 1
        if not np.isfinite(atoms.get_potential_energy()):
            raise FloatingPointError(f"non-finite energy at step {step}; the last good frame is in {traj}")
        record(step)
        bar.update(1)
        if step % log_every == 0:
            rate = (step - start) * timestep_fs * 1e-6 / max(time.perf_counter() - t0, 1e-9) * 86400
            bar.set_postfix(T=f"{atoms.get_temperature():.0f}K", ns_per_day=f"{rate:.3g}")
    bar.close()
    return step
