"""Exported models (TorchScript, AOTInductor) compute what the eager model computes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facetpot.io.model_file import save_model
from facetpot.testing import SEVENNET_LIKE, model_outputs, small_model, triclinic_cell
from facetpot.testing import domain_from_atoms, run_layerwise
from facetpot.export.torchscript import export_torchscript, load_torchscript, prepare
from facetpot.inference.engine_library import load_engine


def _fold(dom, edge_vec, edge_index, grad, volume):
    """Forces on the cell's atoms (ghost contributions summed into owners) and stress."""
    f = torch.zeros(len(dom.positions), 3, dtype=grad.dtype)
    f.index_add_(0, edge_index[0], grad).index_add_(0, edge_index[1], -grad)
    forces = torch.zeros(dom.nlocal, 3, dtype=grad.dtype).index_add_(0, torch.as_tensor(dom.owner), f)
    s = (edge_vec.unsqueeze(2) * grad.unsqueeze(1)).sum(0)
    return forces, 0.5 * (s + s.T) / volume


def _structure():
    atoms = triclinic_cell(3).repeat((2, 1, 1))
    atoms.rattle(0.05, seed=4)
    return atoms


@pytest.mark.parametrize(
    "backend,cfg",
    [
        ("density", {}),
        ("edgewise", {}),
        ("edgewise", SEVENNET_LIKE),
        ("density", {"radial_rank": 2}),
        ("triton", {}),
        ("density", {"radial_rank": [2, 3], "first_linear_in": False}),
        ("density", {"linear_in_bias": True}),
    ],
    ids=[
        "density",
        "edgewise",
        "sevennet-like",
        "density-low-rank",
        "triton",
        "ranks-per-layer-folded",
        "linear-in-bias",
    ],
)
def test_torchscript_file_matches_eager(tmp_path, backend, cfg):
    model = small_model(seed=1, **cfg).set_backend(backend)
    if cfg.get("linear_in_bias"):  # zero at the start: values, so that a bias the export dropped would show
        with torch.no_grad():
            for layer in model.layers:
                for bias in layer.linear_in.biases:
                    bias.normal_(0.0, 0.3, generator=torch.Generator().manual_seed(2))
    atoms = _structure()
    ref = model_outputs(model, atoms)
    path = export_torchscript(model, tmp_path / "model.pt")
    module, meta = load_torchscript(path)
    assert meta["species"] == model.species and meta["cutoff"] == model.cutoff and meta["dtype"] == "float64"
    # Triton kernels cannot be scripted: the archive computes with the default backend (same numbers)
    assert meta["num_layers"] == model.num_layers and meta["backend"] == ("density" if backend == "triton" else backend)
    if meta["backend"] == "density":  # frozen weights: the fast formulation, as an operator C++ also provides
        conv = getattr(module.model.layers, "1").conv.backend  # (a scripted ModuleList has no [ ])
        assert "ops.facetpot.density_group" in conv._grouped.code and len(conv.kept_ms_shapes) > 0
    species = lambda z: model.species_index(torch.as_tensor(z))  # noqa: E731

    # one call, every atom receives: ghost shell of L x r_c
    dom = domain_from_atoms(atoms, model.cutoff, (model.num_layers) * model.cutoff, all_receive=True)
    ei = torch.as_tensor(dom.edge_index)
    x = torch.as_tensor(dom.positions)
    ev = x[ei[1]] - x[ei[0]]
    e, g = module(species(dom.species_z), ei, ev, dom.nlocal)
    forces, stress = _fold(dom, ev, ei, g, atoms.get_volume())
    assert torch.allclose(e, ref["energies"], rtol=0, atol=1e-10)
    assert torch.allclose(forces, ref["forces"], rtol=0, atol=1e-10)
    assert torch.allclose(stress, ref["stress"][0], rtol=0, atol=1e-10)

    # layer by layer with ghost features from their owners: ghost shell of one cutoff
    dom = domain_from_atoms(atoms, model.cutoff, model.cutoff)
    out = run_layerwise(module, species(dom.species_z), dom)
    forces, stress = _fold(dom, out["edge_vec"], out["edge_index"], out["edge_grad"], atoms.get_volume())
    assert torch.allclose(out["energies"], ref["energies"], rtol=0, atol=1e-10)
    assert torch.allclose(forces, ref["forces"], rtol=0, atol=1e-10)
    assert torch.allclose(stress, ref["stress"][0], rtol=0, atol=1e-10)
    assert abs(float(ref["forces"].abs().max())) > 1e-3  # the comparison is not vacuous

    # one call of the C++ engine, the neighbours' images mapped to their owners (one LAMMPS rank)
    assert meta["engine"] == (meta["backend"] == "density" and cfg.get("radial") != "bessel_mlp" and load_engine())
    if meta["engine"]:
        owner = torch.as_tensor(dom.owner)
        local = out["edge_index"][0] < dom.nlocal
        ei = torch.stack([out["edge_index"][0][local], owner[out["edge_index"][1][local]]])
        ev = out["edge_vec"][local].detach()
        e, g = module.domain(species(dom.species_z[: dom.nlocal]), ei, ev)
        forces = torch.zeros(dom.nlocal, 3, dtype=g.dtype).index_add_(0, ei[0], g).index_add_(0, ei[1], -g)
        s = (ev.unsqueeze(2) * g.unsqueeze(1)).sum(0)
        assert torch.allclose(e, ref["energies"], rtol=0, atol=1e-10)
        assert torch.allclose(forces, ref["forces"], rtol=0, atol=1e-10)
        assert torch.allclose(0.5 * (s + s.T) / atoms.get_volume(), ref["stress"][0], rtol=0, atol=1e-10)


def test_layerwise_needs_the_exchange():
    """Without the ghost feature exchange (ghosts keep layer-0 features) the energies are wrong."""
    model = small_model(seed=2)
    atoms = _structure()
    ref = model_outputs(model, atoms)
    module = torch.jit.script(prepare(model))
    dom = domain_from_atoms(atoms, model.cutoff, model.cutoff)
    dom.owner[dom.nlocal :] = np.arange(dom.nlocal, len(dom.owner)) % dom.nlocal  # wrong owners
    out = run_layerwise(module, model.species_index(torch.as_tensor(dom.species_z)), dom)
    assert float((out["energies"] - ref["energies"]).abs().max()) > 1e-6


def test_float32_export(tmp_path):
    model = small_model(seed=3)
    atoms = _structure()
    ref = model_outputs(model, atoms)
    module, meta = load_torchscript(export_torchscript(model, tmp_path / "m32.pt", dtype="float32"))
    assert meta["dtype"] == "float32"
    dom = domain_from_atoms(atoms, model.cutoff, model.cutoff)
    out = run_layerwise(module, model.species_index(torch.as_tensor(dom.species_z)), dom, dtype=torch.float32)
    assert out["energies"].dtype == torch.float32
    assert torch.allclose(out["energies"].double(), ref["energies"], atol=1e-4)


def test_load_rejects_other_files(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not a TorchScript archive"):
        load_torchscript(junk)
    plain = tmp_path / "plain.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(plain))
    with pytest.raises(ValueError, match="not a facetpot export"):
        load_torchscript(plain)
    with pytest.raises(FileNotFoundError):
        load_torchscript(tmp_path / "missing.pt")


def test_cli_export(tmp_path, capsys):
    from facetpot.cli import main

    model = small_model(seed=4)
    save_model(model, tmp_path / "model.pt")
    assert main(["export", str(tmp_path / "model.pt"), "-o", str(tmp_path / "deployed.pt")]) == 0
    assert "wrote" in capsys.readouterr().out
    _, meta = load_torchscript(tmp_path / "deployed.pt")
    assert meta["dtype"] == "float64" and meta["species"] == model.species
    assert main(["export", str(tmp_path / "nothere.pt"), "-o", str(tmp_path / "x.pt")]) == 2
    assert "not found" in capsys.readouterr().err


@pytest.mark.parametrize("cfg", [{"num_layers": 1}, dict(SEVENNET_LIKE, num_layers=2)], ids=["facet", "sevennet-like"])
def test_aoti_package_matches_eager(tmp_path, cfg):
    """torch.export + AOTInductor (compiled C++): energies and pair gradients of a periodic graph."""
    from facetpot.export.aoti import export_aoti, load_aoti
    from facetpot.structure.graph import atoms_to_graph

    model = small_model(seed=5, **cfg)
    atoms = _structure()
    ref = model_outputs(model, atoms)
    path = export_aoti(model, tmp_path / "model.pt2")
    runner, meta = load_aoti(path)
    assert meta["format"] == "facetpot-aoti"
    g = atoms_to_graph(atoms, model.cutoff, dtype=torch.float64)
    species = model.species_index(g.numbers)
    ev = g.edge_vectors()
    e, grad = runner(species, g.edge_index, ev)
    i, j = g.edge_index
    forces = torch.zeros(len(atoms), 3, dtype=grad.dtype).index_add_(0, i, grad).index_add_(0, j, -grad)
    assert torch.allclose(e, ref["energies"], rtol=0, atol=1e-10)
    assert torch.allclose(forces, ref["forces"], rtol=0, atol=1e-10)
    # another size: the shapes are dynamic
    big = atoms.repeat((1, 2, 1))
    gb = atoms_to_graph(big, model.cutoff, dtype=torch.float64)
    eb, _ = runner(model.species_index(gb.numbers), gb.edge_index, gb.edge_vectors())
    assert torch.allclose(eb.sum(), 2 * ref["energy"].sum(), rtol=1e-12)


def test_aoti_package_runs_from_cpp(tmp_path):
    """The same package loaded by ``torch::inductor::AOTIModelPackageLoader`` in a C++ program."""
    import subprocess
    from pathlib import Path

    import torch.utils.cpp_extension as cpp

    from facetpot.export.aoti import export_aoti
    from facetpot.structure.graph import atoms_to_graph

    model = small_model(seed=6, num_layers=1)
    atoms = _structure()
    ref = model_outputs(model, atoms)
    path = export_aoti(model, tmp_path / "model.pt2")
    lib = Path(torch.__file__).parent / "lib"
    exe = tmp_path / "aoti_run"
    src = Path(__file__).parent / "cpp" / "aoti_run.cpp"
    cmd = ["g++", "-std=c++17", "-O1", f"-D_GLIBCXX_USE_CXX11_ABI={int(torch.compiled_with_cxx11_abi())}"]
    for inc in cpp.include_paths():
        cmd += ["-isystem", inc]
    cmd += [
        str(src),
        "-o",
        str(exe),
        f"-L{lib}",
        f"-Wl,-rpath,{lib}",
        "-Wl,--no-as-needed",
        "-ltorch",
        "-ltorch_cpu",
        "-lc10",
    ]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    g = atoms_to_graph(atoms, model.cutoff, dtype=torch.float64)
    model.species_index(g.numbers).numpy().astype(np.int64).tofile(tmp_path / "species.i64")
    g.edge_index.numpy().astype(np.int64).tofile(tmp_path / "edge_index.i64")
    g.edge_vectors().numpy().astype(np.float64).tofile(tmp_path / "edge_vec.f64")
    n, e = len(atoms), g.edge_index.shape[1]
    proc = subprocess.run([str(exe), str(path), str(n), str(e), str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "facetpot_format=facetpot-aoti" in proc.stdout
    energies = np.fromfile(tmp_path / "energies.f64")
    grad = torch.as_tensor(np.fromfile(tmp_path / "edge_grad.f64").reshape(e, 3))
    i, j = g.edge_index
    forces = torch.zeros(n, 3, dtype=torch.float64).index_add_(0, i, grad).index_add_(0, j, -grad)
    assert np.abs(energies - ref["energies"].numpy()).max() < 1e-10
    assert float((forces - ref["forces"]).abs().max()) < 1e-10
