"""The ASE calculator: relaxations with cell filters, pymatgen input, dtypes, per-atom properties."""

import numpy as np
import pytest
import torch
from ase.build import bulk
from ase.filters import FrechetCellFilter
from ase.optimize import BFGS, FIRE

import facetpot
from facetpot.io.model_file import save_model
from facetpot.testing import model_outputs, small_model, awkward_structures


def _gentle_model():
    return small_model(species=[14, 8])


@pytest.mark.parametrize("optimizer", [FIRE, BFGS])
def test_relaxation_with_frechet_cell_filter(optimizer):
    atoms = bulk("Si", "diamond", a=5.43) * (2, 1, 1)
    atoms.rattle(0.05, seed=0)
    atoms.calc = facetpot.FacetCalculator(_gentle_model())
    e0 = atoms.get_potential_energy()
    opt = optimizer(FrechetCellFilter(atoms), logfile=None)
    assert np.abs(atoms.get_forces()).max() > 0.1  # far from the minimum at the start
    converged = opt.run(fmax=0.005, steps=500)
    assert converged
    assert atoms.get_potential_energy() < e0 - 1e-3
    assert np.abs(atoms.get_forces()).max() < 0.005
    # FrechetCellFilter's fmax also bounds the stress: |virial| / N < fmax
    assert np.abs(atoms.get_stress()).max() * atoms.get_volume() / len(atoms) < 0.005


def test_one_calculator_over_changing_compositions_matches_the_model():
    """The frozen model remembers isolated-atom energies for all species at once: every composition, in any
    order, still gets its own reference (E_i = E0 + sigma (e_i - e_iso[s_i]))."""
    model = small_model()
    calc = facetpot.FacetCalculator(model)
    structures = [bulk("Si", "diamond", a=5.43), bulk("Cu", "fcc", a=3.6), bulk("NaCl", "rocksalt", a=5.0)]
    structures[2].set_chemical_symbols(["Al", "O"])
    structures.append(bulk("Si", "diamond", a=5.43) * (1, 1, 2))
    structures[3].symbols[[1, 2]] = "CH"
    for atoms in structures + structures[::-1]:
        atoms = atoms.copy()
        atoms.rattle(0.02, seed=1)
        ref = model_outputs(model, atoms)
        atoms.calc = calc
        assert atoms.get_potential_energy() == pytest.approx(ref["energy"].item(), abs=1e-12), atoms.symbols
        assert np.abs(atoms.get_potential_energies() - ref["energies"].numpy()).max() < 1e-12


def test_calculator_matches_model_and_reports_all_properties():
    model = small_model()
    atoms = awkward_structures()["triclinic"]
    ref = model_outputs(model, atoms)
    atoms.calc = facetpot.FacetCalculator(model)
    assert atoms.get_potential_energy() == pytest.approx(ref["energy"].item(), abs=1e-12)
    assert atoms.get_potential_energy(force_consistent=True) == pytest.approx(ref["energy"].item(), abs=1e-12)
    assert np.allclose(atoms.get_forces(), ref["forces"].numpy(), atol=1e-12)
    assert np.allclose(atoms.get_potential_energies(), ref["energies"].numpy(), atol=1e-12)
    stress = atoms.get_stress()  # Voigt xx yy zz yz xz xy
    s = ref["stress"].numpy()[0]
    assert np.allclose(stress, [s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]], atol=1e-12)
    assert "stresses" not in atoms.calc.results  # per-atom virials only when asked for
    assert np.allclose(atoms.get_stresses().sum(0), stress, atol=1e-12)  # asked: computed then, same numbers
    assert np.allclose(atoms.get_forces(), ref["forces"].numpy(), atol=1e-12)


def test_float32_agrees_with_float64():
    model = small_model()
    atoms = awkward_structures()["triclinic"] * (2, 2, 1)
    atoms.calc = facetpot.FacetCalculator(model, dtype="float64")
    e64, f64 = atoms.get_potential_energy(), atoms.get_forces()
    atoms.calc = facetpot.FacetCalculator(small_model(), dtype="float32")
    e32, f32 = atoms.get_potential_energy(), atoms.get_forces()
    # relative to the size of the per-atom terms summed (E0 and interaction parts nearly cancel in
    # the total of this cell: 2.4 eV from terms of ~46 eV, so |e64| is no measure of float32 round-off)
    scale = np.abs(atoms.calc.results["energies"]).sum()
    assert abs(e32 - e64) < 1e-5 * scale
    assert np.abs(f32 - f64).max() < 1e-4 * max(1, np.abs(f64).max())


def test_model_file_and_pymatgen_structure(tmp_path):
    pytest.importorskip("pymatgen")
    from pymatgen.io.ase import AseAtomsAdaptor

    model = small_model()
    save_model(model, tmp_path / "m.pt")
    atoms = awkward_structures()["triclinic"]
    structure = AseAtomsAdaptor.get_structure(atoms)
    calc = facetpot.FacetCalculator(tmp_path / "m.pt")
    calc.calculate(structure, ["energy", "forces", "stress"])
    assert calc.results["energy"] == pytest.approx(model_outputs(model, atoms)["energy"].item(), abs=1e-10)
    assert facetpot.to_atoms(structure).get_chemical_formula() == atoms.get_chemical_formula()


def test_backends_agree():
    """The node-density backend (default) and the edge-wise reference compute the same sum."""
    for cfg in ({}, {"nonlinearity": "gate"}, {"parity": False}):
        model = small_model(**cfg)
        for name, atoms in awkward_structures().items():
            a = model_outputs(model, atoms)
            model.set_backend("edgewise")
            b = model_outputs(model, atoms)
            model.set_backend("density")
            for k in a:
                assert torch.allclose(a[k], b[k], atol=1e-11, rtol=1e-11), (cfg, name, k)


def test_batched_evaluation_equals_single():
    from facetpot.structure.graph import atoms_list_to_graph
    from facetpot.derivatives import compute_properties

    model = small_model()
    items = list(awkward_structures().values())
    out = compute_properties(model, atoms_list_to_graph(items, model.cutoff))
    start = 0
    for k, atoms in enumerate(items):
        single = model_outputs(model, atoms)
        assert out["energy"][k].item() == pytest.approx(single["energy"].item(), abs=1e-11)
        assert torch.allclose(out["forces"][start : start + len(atoms)], single["forces"], atol=1e-11)
        start += len(atoms)


def test_chunked_density_matches_unchunked():
    """Large cells run the density backend in chunks of atoms (cache-sized, or checkpointed to
    bound memory): same numbers, forces and stress included."""
    model = small_model()
    atoms = awkward_structures()["triclinic"] * (2, 2, 1)
    model.set_backend("density", chunk_atoms=0, cache_atoms=1000)
    ref = model_outputs(model, atoms)
    model.set_backend("density", chunk_atoms=0, cache_atoms=5)  # 16 atoms -> plain chunks 5, 5, 5, 1
    plain = model_outputs(model, atoms)
    model.set_backend("density", chunk_atoms=3)  # -> checkpointed chunks of 3
    checkpointed = model_outputs(model, atoms)
    for k in ref:
        assert torch.allclose(ref[k], plain[k], atol=1e-12, rtol=1e-12), k
        assert torch.allclose(ref[k], checkpointed[k], atol=1e-12, rtol=1e-12), k


@pytest.mark.parametrize(
    "kwargs,named",
    [
        ({"dtyp": "float32"}, "did you mean dtype"),
        ({"model_paths": "x.pt", "default_dtype": "float32"}, "model_paths: use model"),
        ({"devise": "cuda"}, "did you mean device"),
    ],
)
def test_unknown_keywords_raise(kwargs, named):
    """ase alone stores a misspelt keyword as a parameter and runs with the default (issue 20 item 1)."""
    with pytest.raises(TypeError, match=named) as err:
        facetpot.FacetCalculator(small_model(), **kwargs)
    assert "accepted: model, device, dtype, backend, min_distance" in str(err.value)
    facetpot.FacetCalculator(small_model(), label="run", directory=".")  # ase's own keywords still pass


def test_calculators_do_not_change_the_model_they_are_given():
    """Two calculators of one model object in different dtypes both work, and the object keeps its dtype and
    its trainable weights (issue 20 item 2)."""
    model = small_model().float()
    a = facetpot.FacetCalculator(model, dtype="float32")
    b = facetpot.FacetCalculator(model, dtype="float64")
    c = facetpot.FacetCalculator(model)  # no dtype: the model's own
    atoms = awkward_structures()["triclinic"]
    energies = [calc.get_potential_energy(atoms.copy()) for calc in (a, b, c)]
    assert model.dtype == torch.float32 and all(p.requires_grad for p in model.parameters())
    assert c.dtype == torch.float32 and b.dtype == torch.float64
    assert energies[0] == pytest.approx(energies[1], abs=1e-4) and energies[0] == energies[2]


def test_lower_level_block_with_a_float32_model_and_stress_without_cell():
    """The README's compute_properties block works with the shipped (float32) model on a default (float64) graph;
    stress of a structure without a cell is an error, not -1e29 (issue 20 item 3)."""
    from ase.build import molecule

    from facetpot.structure.graph import atoms_list_to_graph
    from facetpot.derivatives import compute_properties

    model = small_model().float()
    crystal = awkward_structures()["triclinic"]
    graph = atoms_list_to_graph([crystal, crystal.copy()], model.cutoff)  # float64 by default
    out = compute_properties(model, graph, forces=True, stress=True, virials=True)
    assert out["stress"].dtype == torch.float32 and torch.isfinite(out["stress"]).all()
    water = atoms_list_to_graph([molecule("H2O")], model.cutoff)
    with pytest.raises(ValueError, match="stress needs a periodic cell"):
        compute_properties(model, water, stress=True)
    assert "stress" not in compute_properties(model, water)  # default: stress only where there is a cell
    mixed = compute_properties(model, atoms_list_to_graph([crystal, molecule("H2O")], model.cutoff))
    assert torch.isfinite(mixed["stress"][0]).all() and torch.isnan(mixed["stress"][1]).all()


def test_pymatgen_structure_through_ase_getters():
    """calc.get_potential_energy(structure) with a pymatgen Structure, as the README says (issue 20 item 6)."""
    pytest.importorskip("pymatgen")
    from pymatgen.io.ase import AseAtomsAdaptor

    model = small_model()
    atoms = awkward_structures()["triclinic"]
    calc = facetpot.FacetCalculator(model)
    structure = AseAtomsAdaptor.get_structure(atoms)
    assert calc.get_potential_energy(structure) == pytest.approx(
        model_outputs(model, atoms)["energy"].item(), abs=1e-10
    )
    assert calc.get_forces(structure).shape == (len(atoms), 3) and calc.get_stress(structure).shape == (6,)


def test_a_file_that_is_not_a_model_gets_a_message(tmp_path):
    """Not torch's KeyError nor its advice to load with weights_only=False (issue 20 items 5 and 9)."""
    import argparse

    (tmp_path / "junk.pt").write_text("hello")
    torch.save(argparse.Namespace(a=1), tmp_path / "pickled.pt")  # torch would advise unpickling it unsafely
    for name in ("junk.pt", "pickled.pt"):
        with pytest.raises(ValueError) as err:
            facetpot.FacetCalculator(tmp_path / name)
        assert "is not a facetpot model file" in str(err.value) and "weights_only" not in str(err.value)
