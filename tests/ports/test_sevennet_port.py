"""The SevenNet port: facetpot's converted model computes what SevenNet's own ASE calculator computes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk, molecule

from facetpot.cli import main as facet
from facetpot.inference.model_source import load_model
from facetpot.structure.graph import atoms_to_graph
from facetpot.derivatives import compute_properties

sevenn_calculator = pytest.importorskip("sevenn.calculator")


def structures():
    si = bulk("Si", "diamond", a=5.43, cubic=True)
    si.positions[0] += (0.05, -0.03, 0.02)
    si.set_cell(si.cell * (1.01, 1.0, 0.99), scale_atoms=True)
    nacl = bulk("NaCl", "rocksalt", a=5.6) * (2, 1, 1)
    nacl.rattle(0.05, seed=2)
    sto = Atoms(
        "SrTiO3",
        scaled_positions=[[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]],
        cell=np.eye(3) * 3.905,
        pbc=True,
    ) * (2, 1, 1)
    sto.set_cell(sto.cell.array + [[0, 0.1, 0.05], [0.08, 0, 0], [0, 0.12, 0]], scale_atoms=True)  # triclinic
    sto.rattle(0.03, seed=3)
    return {"Si8 strained": si, "NaCl rattled": nacl, "SrTiO3 triclinic": sto, "ethanol": molecule("CH3CH2OH")}


def facet_results(model, atoms):
    periodic = bool(atoms.pbc.all())
    out = compute_properties(model, atoms_to_graph(atoms, model.cutoff), stress=periodic)
    stress = out["stress"][0].detach().numpy() if periodic else None
    if stress is not None:
        stress = stress[[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]]
    return float(out["energy"][0].detach()), out["forces"].detach().numpy(), stress


@pytest.mark.parametrize(
    "name, modal", [("7net-0", None), ("7net-l3i5", None), ("7net-mf-0", "PBE"), ("7net-mf-0", "R2SCAN")]
)
def test_port_equals_sevennet(tmp_path, name, modal):
    fidelity = ["--modal", modal.lower()] if modal else []  # any case: SevenNet's own spelling is upper case
    assert facet(["convert", "sevennet", name, "-o", str(tmp_path / "m.pt")] + fidelity) == 0
    model = load_model(tmp_path / "m.pt")
    assert model.dtype == torch.float64 and model.backend == "edgewise"
    calc = sevenn_calculator.SevenNetCalculator(name, device="cpu", **({"modal": modal} if modal else {}))
    for label, atoms in structures().items():
        atoms.calc = calc
        e_ref, f_ref = atoms.get_potential_energy(), atoms.get_forces()
        e, f, s = facet_results(model, atoms)
        n = len(atoms)
        assert abs(e - e_ref) / n < 1e-5, (label, e, e_ref)
        assert np.abs(f - f_ref).max() < 1e-4 * max(1.0, np.abs(f_ref).max()), label
        if s is not None:
            assert np.abs(s - atoms.get_stress()).max() < 1e-5, label
        assert np.abs(f_ref).max() > 1e-2 or label == "NaCl rattled"  # the comparison is not vacuous


def test_port_values_float64():
    """Float64 references of SevenNet-0 (sevenn's own model run in float64, 11Jul2024 checkpoint)."""
    from facetpot.ports.sevennet import convert_sevennet

    model = convert_sevennet("7net-0")
    e, _, s = facet_results(model, bulk("Si", "diamond", a=5.43))
    assert e == pytest.approx(-10.80166113, abs=2e-8)
    assert s[:3] == pytest.approx([-1.194310e-2] * 3, abs=2e-8)
    e, f, _ = facet_results(model, molecule("CH3CH2OH"))
    assert e == pytest.approx(-46.68064410, abs=2e-8)
    assert np.abs(f).max() == pytest.approx(0.299914, abs=2e-6)


def test_multi_fidelity_model_needs_its_fidelity():
    """SevenNet-MF-0's fidelities differ by eV per cell (R2SCAN's energy zero is another): the choice is required,
    checked, and changes the model."""
    from facetpot.ports.sevennet import ConversionError, convert_sevennet

    with pytest.raises(ConversionError, match="choose its fidelity with modal=.*R2SCAN, PBE"):
        convert_sevennet("7net-mf-0")
    with pytest.raises(ConversionError, match="unknown fidelity 'scan'"):
        convert_sevennet("7net-mf-0", modal="scan")
    with pytest.raises(ConversionError, match="has one fidelity"):
        convert_sevennet("7net-0", modal="PBE")
    si = bulk("Si", "diamond", a=5.43)
    pbe, r2scan = (facet_results(convert_sevennet("7net-mf-0", modal=m), si)[0] for m in ("PBE", "r2scan"))
    assert abs(pbe - r2scan) > 1.0
    assert "fidelity R2SCAN" in convert_sevennet("7net-mf-0", modal="R2SCAN").metadata["source"]


def test_converter_errors(tmp_path):
    from facetpot.ports.sevennet import ConversionError, convert_sevennet

    with pytest.raises(ConversionError, match="neither a checkpoint file nor a SevenNet model name"):
        convert_sevennet("7net-nonexistent")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pth")
    with pytest.raises(ConversionError, match="not a SevenNet checkpoint"):
        convert_sevennet(tmp_path / "other.pth")
    model = convert_sevennet("7net-0")
    with pytest.raises(ValueError, match="use the edgewise backend"):
        model.set_backend("density")


def test_other_fidelity_of_a_trim():
    """A trim of one fidelity with the other fidelity's biases and energies (the SevenNet-MF-0 trim's recipe):
    applied to a port it gives the other port exactly; applied to a folded port with changed radial weights (a
    stand-in trim) it keeps them and equals the other port changed alike; ports of two models are refused."""
    from facetpot.ports.multi_fidelity import other_fidelity
    from facetpot.ports.sevennet import convert_sevennet
    from facetpot.ports.spline_fit import fold_first_linear

    pbe, r2scan = (convert_sevennet("7net-mf-0", modal=m).double() for m in ("PBE", "R2SCAN"))
    si = bulk("Si", "diamond", a=5.43)
    si.rattle(0.05, seed=3)
    made = other_fidelity(pbe, pbe, r2scan)
    for got, want in zip(facet_results(made, si), facet_results(r2scan, si)):
        assert np.allclose(got, want, rtol=0, atol=1e-10)

    def changed(model):
        out = fold_first_linear(model)
        with torch.no_grad():
            out.layers[2].conv.radial_mlp.weights[1].mul_(1.05)
        return out

    trim = changed(pbe)
    made = other_fidelity(trim, pbe, r2scan)
    e_made, f_made, _ = facet_results(made, si)
    e_want, f_want, _ = facet_results(changed(r2scan), si)
    assert e_made == pytest.approx(e_want, abs=1e-8) and np.allclose(f_made, f_want, atol=1e-8)
    assert abs(e_made - facet_results(fold_first_linear(r2scan), si)[0]) > 1e-4  # the change is kept
    with pytest.raises(ValueError, match="differ in their configs"):
        other_fidelity(pbe, pbe, convert_sevennet("7net-0").double())
