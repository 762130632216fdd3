"""Which backend a model gets when none is asked for: density on CPU and CUDA (the fused triton kernels
were slower on an H200); the machinery that makes a fused CUDA default safe (its check on the model itself;
a failing or missing fused path falls back with a warning) is tested with triton as the CUDA default (TorchScript exports of a model on a fused backend: tests/export/test_export.py)."""
from __future__ import annotations

import sys
import warnings

import pytest

pytest.importorskip("triton")

from conftest import small_model  # noqa: E402
from facetpot import backend_default  # noqa: E402
from facetpot.io.model_file import BACKEND_ENV, select_backend  # noqa: E402
from facetpot.nn import s2_grid_triton_kernels  # noqa: E402
from facetpot.nn.conv import triton_kernels as conv_triton_kernels  # noqa: E402


@pytest.fixture
def fake_cuda(monkeypatch):
    """Models count as on CUDA (the kernels run on CPU tensors under TRITON_INTERPRET=1, as in conftest)."""
    monkeypatch.delenv(BACKEND_ENV, raising=False)
    monkeypatch.setattr(backend_default, "runs_on_cuda", lambda model: True)


@pytest.fixture
def fused_default(fake_cuda, monkeypatch):
    monkeypatch.setattr(backend_default, "CUDA_DEFAULT", "triton")


def test_cpu_keeps_the_density_backend(monkeypatch):
    monkeypatch.delenv(BACKEND_ENV, raising=False)
    assert select_backend(small_model()).backend == "density"


def test_cuda_gets_density_by_default(fake_cuda):
    model = small_model()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert select_backend(model).backend == "density"
    assert select_backend(model, "triton").backend == "triton"  # opt-in


def test_cuda_gets_the_fused_backend_after_its_check(fused_default):
    model = small_model()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert select_backend(model).backend == "triton"
    assert backend_default.fused_backend_problem(model) is None
    assert model.backend == "triton"  # the check leaves the model as it found it
    assert select_backend(model, "edgewise").backend == "edgewise"  # an explicit choice wins


def test_wrong_kernels_fall_back_with_a_warning(fused_default, monkeypatch):
    real = conv_triton_kernels.conv_forward
    monkeypatch.setattr(conv_triton_kernels, "conv_forward", lambda *a: 1.01 * real(*a))
    model = small_model()
    with pytest.warns(UserWarning, match="failed its check.*differ from the density"):
        assert select_backend(model).backend == "density"
    assert all(p.requires_grad for p in model.parameters())  # the check gives the weights back as they were
    with warnings.catch_warnings():  # checked once per model and device: no second warning
        warnings.simplefilter("error")
        assert select_backend(model).backend == "density"


def test_the_check_runs_the_fused_force_kernels(fused_default, monkeypatch):
    """A wrong grid-layer backward kernel (used for forces with frozen weights, as the calculator runs) is caught."""
    real = s2_grid_triton_kernels.fused_grid_mlp_backward
    monkeypatch.setattr(s2_grid_triton_kernels, "fused_grid_mlp_backward", lambda *a: 1.05 * real(*a))
    with pytest.warns(UserWarning, match="forces differ from the density"):
        assert select_backend(small_model()).backend == "density"


def test_missing_triton_falls_back_with_a_warning(fused_default, monkeypatch):
    monkeypatch.setitem(sys.modules, "triton", None)
    with pytest.warns(UserWarning, match="pip install triton"):
        assert select_backend(small_model()).backend == "density"

