"""Readers and the on-disk cache: MPtrj JSON streaming, key mapping, rejections named, bounded shards."""

import json
import re

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.db import connect
from ase.io import write

from facetpot.cli import main as facet
from facetpot.data import mptrj
from facetpot.data.batching import BudgetBatchSampler
from facetpot.data.cache import FrameCache, convert
from facetpot.data.frame import Frame
from facetpot.data.mptrj import iter_mptrj_entries
from facetpot.data.readers import iter_frames
from facetpot.structure.units import KBAR_TO_EV_PER_A3
from facetpot.structure.validation import check_atoms


def mptrj_entry(mp_id, k, rng):
    lattice = np.diag([3.0, 3.1, 3.2]) + 0.1 * rng.standard_normal((3, 3))
    frac = rng.random((2, 3))
    return {
        "structure": {
            "@module": "pymatgen.core.structure",
            "lattice": {"matrix": lattice.tolist()},
            "sites": [
                {"species": [{"element": el, "occu": 1}], "abc": f.tolist(), "xyz": (f @ lattice).tolist()}
                for el, f in zip(("Li", "O"), frac)
            ],
        },
        "uncorrected_total_energy": -10.0 - k,
        "corrected_total_energy": -11.0 - k,
        "energy_per_atom": -5.0,
        "ef_per_atom": 0.0,
        "force": rng.standard_normal((2, 3)).tolist(),
        "stress": [[10.0, 1.0, 0.0], [1.0, -20.0, 0.0], [0.0, 0.0, 5.0]],
        "magmom": None,
        "bandgap": 0.0,
        "mp_id": mp_id,
    }


def write_mptrj(path, n_traj=5, per_traj=3, seed=0):
    rng = np.random.default_rng(seed)
    data = {
        f"mp-{t}": {f"mp-{t}-0-{k}": mptrj_entry(f"mp-{t}", k, rng) for k in range(per_traj)} for t in range(n_traj)
    }
    path.write_text(json.dumps(data, indent=1))
    return data


def test_mptrj_json_streams_with_units_and_sign(tmp_path, monkeypatch):
    monkeypatch.setattr(mptrj, "BLOCK", 64)  # tiny blocks: every value straddles a block boundary
    data = write_mptrj(tmp_path / "mptrj.json")
    frames = list(iter_frames(tmp_path / "mptrj.json"))
    assert len(frames) == 15
    f = frames[4]  # trajectory mp-1, frame 1
    entry = data["mp-1"]["mp-1-0-1"]
    assert f.group == "mp-1" and f.energy == entry["uncorrected_total_energy"]
    assert np.allclose(f.positions, [s["xyz"] for s in entry["structure"]["sites"]])
    assert list(f.numbers) == [3, 8]
    # VASP kBar, compressive positive -> eV/Å^3, tensile positive: 10 kBar = 1 GPa = 0.00624 eV/Å^3
    assert f.stress[0, 0] == pytest.approx(-10 * KBAR_TO_EV_PER_A3) and f.stress[0, 0] == pytest.approx(
        -0.0062415, rel=1e-4
    )
    corrected = list(iter_frames(tmp_path / "mptrj.json", mptrj_energy="corrected"))
    assert corrected[4].energy == entry["corrected_total_energy"]


def test_truncated_mptrj_json_is_an_error(tmp_path):
    write_mptrj(tmp_path / "m.json")
    text = (tmp_path / "m.json").read_text()
    (tmp_path / "cut.json").write_text(text[: len(text) // 2])
    with pytest.raises(ValueError, match="truncated|malformed"):
        list(iter_mptrj_entries(tmp_path / "cut.json"))


def test_extxyz_with_ref_keys_and_rejections_named(tmp_path):
    frames = []
    for k in range(6):
        a = Atoms("Cu2", positions=[[0, 0, 0], [1.3, 1.3, 0.2 * k]], cell=[3, 3, 3], pbc=True)
        a.info["REF_energy"] = -1.0 * k
        a.arrays["REF_forces"] = np.ones((2, 3)) * k
        a.info["config_type"] = "even" if k % 2 == 0 else "odd"
        frames.append(a)
    frames[2].info["REF_energy"] = float("nan")
    frames[4].arrays["REF_forces"][0, 0] = np.inf
    write(tmp_path / "d.extxyz", frames)
    keys = {"energy": "REF_energy", "forces": "REF_forces", "stress": "REF_stress"}
    manifest = convert(
        iter_frames(tmp_path / "d.extxyz", keys=keys), tmp_path / "cache", shard_frames=2, progress=False
    )
    assert manifest["frames_in"] == 6 and manifest["frames"] == 4 and manifest["rejected"] == 2
    rejected = (tmp_path / "cache" / "rejected.tsv").read_text().splitlines()[1:]
    assert any("d.extxyz:2" in r and "energy" in r for r in rejected)
    assert any("d.extxyz:4" in r and "forces" in r for r in rejected)
    cache = FrameCache(tmp_path / "cache")
    assert len(cache) == 4 and len(manifest["shards"]) == 2
    f = cache[1]
    assert f.energy == -1.0 and np.allclose(f.forces, 1.0) and f.stress is None and f.config_type == "odd"


def test_interrupted_conversion_is_not_mistaken_for_a_cache(tmp_path):
    def frames():
        yield from iter_frames(tmp_path / "none.extxyz")

    with pytest.raises(FileNotFoundError):
        convert(frames(), tmp_path / "cache", progress=False)
    with pytest.raises(FileNotFoundError, match="not a complete facetpot cache"):
        FrameCache(tmp_path / "cache")


def test_budget_batches_are_deterministic_and_complete():
    sizes = np.random.default_rng(0).integers(1, 30, size=200)
    s = BudgetBatchSampler(sizes, max_atoms=64, seed=3)
    batches = s.all_batches(0)
    assert sorted(i for b in batches for i in b) == list(range(200))
    assert all(sizes[b].sum() <= 64 for b in batches)
    assert batches == BudgetBatchSampler(sizes, max_atoms=64, seed=3).all_batches(0)
    assert batches != s.all_batches(1)
    s.set_epoch(0, skip=5)
    assert list(s) == batches[5:]
    ranks = [BudgetBatchSampler(sizes, 64, seed=3, rank=r, world_size=2).all_batches(0) for r in range(2)]
    assert len(ranks[0]) == len(ranks[1])
    with pytest.raises(ValueError, match="more than batch max_atoms"):
        BudgetBatchSampler([100], max_atoms=64)


def test_ase_db_reader_and_convert_cli(tmp_path):
    with connect(tmp_path / "d.db") as db:
        for k in range(3):
            a = Atoms("Cu2", positions=[[0, 0, 0], [1.4, 1.4, 0.1 * k]], cell=[3, 3, 3], pbc=True)
            a.calc = SinglePointCalculator(
                a, energy=-1.0 - k, forces=np.full((2, 3), 0.1 * k), stress=np.arange(6) * 1e-3
            )
            db.write(a, config_type="db", weight=2.0)
    frames = list(iter_frames(tmp_path / "d.db"))
    assert [f.energy for f in frames] == [-1.0, -2.0, -3.0]
    assert frames[1].weight == 2.0 and frames[1].config_type == "db"
    assert np.allclose(frames[2].forces, 0.2)
    assert frames[0].stress[1, 2] == pytest.approx(3e-3) and frames[0].stress[0, 1] == pytest.approx(5e-3)
    assert facet(["convert", str(tmp_path / "d.db"), "-o", str(tmp_path / "cache")]) == 0
    assert len(FrameCache(tmp_path / "cache")) == 3


def test_cache_reads_numbers_and_energies_of_single_frames(tmp_path):
    frames = []
    for k in range(5):
        a = Atoms("Cu2" if k % 2 else "CuAl", positions=[[0, 0, 0], [1.3, 1.3, 0.1 * k]], cell=[3, 3, 3], pbc=True)
        a.calc = SinglePointCalculator(a, energy=-1.5 * k)
        frames.append(a)
    write(tmp_path / "d.extxyz", frames)
    convert(iter_frames(tmp_path / "d.extxyz"), tmp_path / "cache", shard_frames=2, progress=False)
    cache = FrameCache(tmp_path / "cache")
    assert cache.species == [13, 29]
    for i in range(len(cache)):
        assert list(cache.frame_numbers(i)) == list(cache[i].numbers)
    assert (
        cache.energies([4, 0, 3]).tolist() == [cache[4].energy, cache[0].energy, cache[3].energy] == [-6.0, 0.0, -4.5]
    )
    manifest = json.loads((tmp_path / "cache" / "manifest.json").read_text())
    manifest["format_version"] = 99
    (tmp_path / "cache" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="cache format version 99"):
        FrameCache(tmp_path / "cache")


def test_training_frames_and_calculator_input_share_one_structure_check():
    cases = {
        "no atoms": Atoms(),
        "non-finite .*positions for atom\\(s\\) \\[1\\]": Atoms(
            "Cu2", positions=[[0, 0, 0], [np.nan, 0, 0]], cell=[3, 3, 3], pbc=True
        ),
        "cell vector 2 is zero": Atoms("Cu", cell=[3, 3, 0], pbc=[True, True, True]),
        "zero volume": Atoms("Cu", cell=[[3, 0, 0], [0, 3, 0], [0, 0, 1e-7]], pbc=True),
        "linearly dependent": Atoms("Cu", cell=[[3, 0, 0], [6, 0, 0], [0, 0, 0]], pbc=[True, True, False]),
    }
    for message, atoms in cases.items():
        with pytest.raises(ValueError, match=message):
            check_atoms(atoms)
        frame = Frame(
            numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell.array, pbc=atoms.pbc, energy=0.0
        )
        assert re.search(message, frame.problem()), (message, frame.problem())
        assert "\n" not in frame.problem()  # one line of rejected.tsv
    ok = Atoms("Cu", cell=[[3, 0, 0], [0, 3, 0], [0, 0, 1e-3]], pbc=True)  # thin but a volume
    check_atoms(ok)
    assert (
        Frame(numbers=ok.numbers, positions=ok.positions, cell=ok.cell.array, pbc=ok.pbc, energy=0.0).problem() is None
    )
