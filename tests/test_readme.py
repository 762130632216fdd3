"""The README's Python examples run as written (issue 20): the quick start with the shipped model, and the
lower-level block with the shipped (float32) model on a default (float64) graph."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest
import torch

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_quick_start_runs_as_written():
    quick = python_blocks()[0]
    assert "FacetCalculator()" in quick
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(quick, "README quick start", "exec"), {})
    lattice = float(printed.getvalue().split()[-1])
    assert lattice == pytest.approx(4.254, abs=0.002)  # the value the README states


def test_lower_level_block_runs_with_the_shipped_model():
    block = next(b for b in python_blocks() if "compute_properties(model, graph" in b)
    import facetpot
    from ase.build import bulk

    namespace = {
        "model": facetpot.load_model("facet-7net0-spline"),
        "atoms1": bulk("Si", "diamond", a=5.43),
        "atoms2": bulk("MgO", "rocksalt", a=4.21) * (2, 1, 1),
    }
    exec(compile(block, "README lower level", "exec"), namespace)
    out = namespace["out"]
    assert out["energy"].shape == (2,) and out["virials"].shape == (2 + 4, 3, 3)
    assert torch.isfinite(out["stress"]).all()


def test_torchsim_block_runs():
    pytest.importorskip("torch_sim")
    block = next(b for b in python_blocks() if "from facetpot.torchsim import FacetModel" in b)
    assert "n_steps=1000" in block
    from ase.build import bulk

    namespace = {"list_of_atoms": [bulk("Si", "diamond", a=5.5), bulk("MgO", "rocksalt", a=4.3)]}
    exec(compile(block.replace("n_steps=1000", "n_steps=5"), "README TorchSim", "exec"), namespace)
    forces = namespace["model"](namespace["relaxed"])["forces"]
    assert float(forces.abs().max()) < 0.05 and namespace["hot"].n_systems == 2
