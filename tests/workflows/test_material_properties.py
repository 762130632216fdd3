"""EOS, elastic constants and phonons (matcalc/phonopy layers) on EMT copper, against ASE and phonopy run
directly in the test."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.eos import EquationOfState
from ase.units import GPa

pytest.importorskip("matcalc")
from facetpot.workflows.material_properties import elastic_constants, equation_of_state, phonons  # noqa: E402


def copper():
    return bulk("Cu", "fcc", a=3.6)


def test_eos_matches_ase(tmp_path):
    result = equation_of_state(EMT(), copper(), out_dir=tmp_path)
    assert json.loads((tmp_path / "eos.json").read_text())["bulk_modulus_GPa"] == result["bulk_modulus_GPa"]
    # ASE directly: the same volumes (fcc: the cell scales, atoms stay put), Birch-Murnaghan fit
    atoms = copper()
    atoms.calc = EMT()
    cell0 = atoms.cell.copy()
    energies = []
    for v in result["volumes_A3"]:
        atoms.set_cell(cell0 * (v / abs(np.linalg.det(cell0))) ** (1 / 3), scale_atoms=True)
        energies.append(atoms.get_potential_energy())
    assert np.allclose(energies, result["energies_eV"], atol=1e-6)
    v0, e0, b = EquationOfState(result["volumes_A3"], energies, eos="birchmurnaghan").fit()
    assert result["bulk_modulus_GPa"] == pytest.approx(b / GPa, rel=0.01)
    assert 100 < result["bulk_modulus_GPa"] < 160  # EMT copper: about 134 GPa


def test_bulk_modulus_is_the_curvature_at_the_minimum():
    """The default fit range (+-1% linear strain, +-3% in volume) gives the bulk modulus of the minimum, -V dP/dV
    from the stress (EMT copper 135.05 GPa: 134.46 by default; matcalc's +-10% range gave 131.70, 2.5% off)."""
    result = equation_of_state(EMT(), copper())
    v0 = result["relaxed_volume_A3"]
    atoms = copper()
    atoms.calc = EMT()
    cell0 = atoms.cell.array * (v0 / atoms.get_volume()) ** (1 / 3)

    def pressure(volume_factor):
        atoms.set_cell(cell0 * volume_factor ** (1 / 3), scale_atoms=True)
        return -atoms.get_stress()[:3].mean()

    h = 1e-3
    b_stress = -(pressure(1 + h) - pressure(1 - h)) / (2 * h) / GPa
    assert result["bulk_modulus_GPa"] == pytest.approx(b_stress, rel=0.01)
    assert max(result["volumes_A3"]) / min(result["volumes_A3"]) == pytest.approx((1.01 / 0.99) ** 3, rel=1e-3)


def test_elastic_matches_finite_differences(tmp_path):
    result = elastic_constants(EMT(), bulk("Cu", "fcc", a=3.6, cubic=True), out_dir=tmp_path)
    c = np.array(result["C_voigt_GPa"])
    # ASE directly: stress of small strains of the relaxed cubic cell (EMT fcc: positions stay put)
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    atoms.calc = EMT()
    a0 = (result["relaxed_volume_A3"]) ** (1 / 3)
    atoms.set_cell(np.eye(3) * a0, scale_atoms=True)
    cell0 = atoms.cell.array.copy()

    def stress(eps):
        atoms.set_cell(cell0 @ (np.eye(3) + eps), scale_atoms=True)
        return -atoms.get_stress(voigt=True) / GPa * -1

    h = 1e-3
    e11 = np.zeros((3, 3))
    e11[0, 0] = h
    c11 = (stress(e11)[0] - stress(-e11)[0]) / (2 * h)
    c12 = (stress(e11)[1] - stress(-e11)[1]) / (2 * h)
    e23 = np.zeros((3, 3))
    e23[1, 2] = e23[2, 1] = h / 2
    c44 = (stress(e23)[3] - stress(-e23)[3]) / (2 * h)
    assert c[0, 0] == pytest.approx(c11, rel=0.03)
    assert c[0, 1] == pytest.approx(c12, rel=0.03)
    assert c[3, 3] == pytest.approx(c44, rel=0.03)
    assert result["bulk_modulus_vrh_GPa"] == pytest.approx((c11 + 2 * c12) / 3, rel=0.03)


def test_phonons_match_phonopy(tmp_path):
    from phonopy import Phonopy
    from phonopy.structure.atoms import PhonopyAtoms

    result = phonons(EMT(), copper(), out_dir=tmp_path, supercell=(3, 3, 3), mesh=10.0)
    assert result["imaginary_modes_on_mesh"] == 0 and "GAMMA" in " ".join(result["band_path"]).upper()
    assert (tmp_path / "phonons.json").is_file()
    ours = result["phonopy"]
    # phonopy directly on the relaxed cell, EMT forces of its displaced supercells
    unit = ours.unitcell
    direct = Phonopy(
        PhonopyAtoms(symbols=unit.symbols, cell=unit.cell, scaled_positions=unit.scaled_positions),
        supercell_matrix=np.diag([3, 3, 3]),
    )
    direct.generate_displacements(distance=0.01)
    forces = []
    for sc in direct.supercells_with_displacements:
        from ase import Atoms

        a = Atoms(sc.symbols, cell=sc.cell, scaled_positions=sc.scaled_positions, pbc=True)
        a.calc = EMT()
        forces.append(a.get_forces())
    direct.forces = forces
    direct.produce_force_constants()
    for q in ([0, 0, 0], [0.5, 0, 0.5], [0.5, 0.5, 0.5]):
        assert np.allclose(ours.get_frequencies(q), direct.get_frequencies(q), atol=1e-3)
    assert max(direct.get_frequencies([0.5, 0, 0.5])) > 5  # copper's zone-boundary phonons: ~7 THz


def test_cli(tmp_path, capsys):
    from ase.io import write

    from facetpot.testing import small_model
    from facetpot.cli import main as facet
    from facetpot.io.model_file import save_model

    save_model(small_model(species=[29], scale=0.3), tmp_path / "model.pt")
    write(tmp_path / "cu.extxyz", bulk("Cu", "fcc", a=3.6))
    assert facet(["eos", str(tmp_path / "model.pt"), str(tmp_path / "cu.extxyz"), "-o", str(tmp_path / "eos")]) == 0
    assert json.loads((tmp_path / "eos" / "eos.json").read_text())["bulk_modulus_GPa"] > 0
    assert (tmp_path / "eos" / "eos.png").is_file()
    # the fit's range, points and relaxation from the command line
    assert (
        facet(
            [
                "eos",
                str(tmp_path / "cu.extxyz"),
                "-m",
                str(tmp_path / "model.pt"),
                "-o",
                str(tmp_path / "eos2"),
                "--max-strain",
                "0.1",
                "--points",
                "7",
                "--no-relax",
                "--no-progress",
            ]
        )
        == 0
    )
    eos = json.loads((tmp_path / "eos2" / "eos.json").read_text())
    assert (eos["max_strain"], eos["points"], len(eos["volumes_A3"])) == (0.1, 7, 7)
    assert eos["relaxed_volume_A3"] == pytest.approx(bulk("Cu", "fcc", a=3.6).get_volume())  # not relaxed
    # the model's minimum is not within +-1% of this unrelaxed cell: a message, not pymatgen's traceback
    assert (
        facet(
            [
                "eos",
                str(tmp_path / "cu.extxyz"),
                "-m",
                str(tmp_path / "model.pt"),
                "-o",
                str(tmp_path / "eos4"),
                "--no-relax",
                "--no-progress",
            ]
        )
        == 2
    )
    assert "no energy minimum within the volumes scanned" in capsys.readouterr().err
    assert (
        facet(
            [
                "eos",
                str(tmp_path / "cu.extxyz"),
                "-m",
                str(tmp_path / "model.pt"),
                "-o",
                str(tmp_path / "eos3"),
                "--max-strain",
                "0.7",
            ]
        )
        == 2
    )


def test_unwritable_output_is_refused_before_any_model_call(tmp_path, capsys, monkeypatch):
    from ase.io import write

    from facetpot.testing import small_model
    from facetpot.inference.calculator import FacetCalculator
    from facetpot.cli import main as facet
    from facetpot.io.model_file import save_model

    save_model(small_model(species=[29], scale=0.3), tmp_path / "model.pt")
    write(tmp_path / "cu.extxyz", bulk("Cu", "fcc", a=3.6))
    monkeypatch.setattr(FacetCalculator, "calculate", lambda *a, **k: pytest.fail("the model was called"))
    for command in ("eos", "elastic", "phonons"):
        assert (
            facet(
                [
                    command,
                    str(tmp_path / "cu.extxyz"),
                    "-m",
                    str(tmp_path / "model.pt"),
                    "-o",
                    str(tmp_path / "cu.extxyz"),
                ]
            )
            == 2
        )
        err = capsys.readouterr().err
        assert "is a file" in err and "Traceback" not in err


def test_outputs_hold_what_the_readme_promises(tmp_path):
    """eos.json has the fitted V0, E0, B0 and B0' (ASE's Birch-Murnaghan); phonons.json the band structure and DOS
    behind the plot and a force-constants file phonopy reads back; elastic constants of a non-orthogonal cell say
    in which frame they are (issue 20 item 12)."""
    import phonopy

    eos = equation_of_state(EMT(), copper(), out_dir=tmp_path / "eos")
    bm = json.loads((tmp_path / "eos" / "eos.json").read_text())["birch_murnaghan"]
    v0, e0, b = EquationOfState(eos["volumes_A3"], eos["energies_eV"], eos="birchmurnaghan").fit()
    assert bm["V0_A3"] == pytest.approx(v0, rel=1e-6) and bm["B0_GPa"] == pytest.approx(b / GPa, rel=1e-6)
    assert 3 < bm["B0_prime"] < 7 and bm["E0_eV"] == pytest.approx(e0, abs=1e-6)

    ph = phonons(EMT(), copper(), out_dir=tmp_path / "ph", supercell=(2, 2, 2), mesh=8.0)
    data = json.loads((tmp_path / "ph" / "phonons.json").read_text())
    segments = data["band_structure"]["segments"]
    assert len(segments) >= 2 and max(np.max(s["frequencies_THz"]) for s in segments) == pytest.approx(
        ph["band_max_frequency_THz"]
    )
    assert len(data["dos"]["frequencies_THz"]) == len(data["dos"]["total_dos_per_THz"]) > 10
    loaded = phonopy.load(tmp_path / "ph" / "phonopy_params.yaml")  # phonopy symmetrises on loading: 1e-3 THz
    for phonon in (loaded, ph["phonopy"]):
        phonon.run_qpoints([[0.5, 0.0, 0.5], [0.5, 0.5, 0.5]])
    assert np.allclose(
        loaded.get_qpoints_dict()["frequencies"], ph["phonopy"].get_qpoints_dict()["frequencies"], atol=1e-3
    )

    with pytest.warns(UserWarning, match="non-orthogonal cell"):
        el = elastic_constants(EMT(), copper(), out_dir=tmp_path / "el")
    assert "not orthogonal" in el["frame"]
    assert (
        "orthogonal: along its cell vectors" in elastic_constants(EMT(), bulk("Cu", "fcc", a=3.6, cubic=True))["frame"]
    )
