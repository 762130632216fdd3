"""The model on a CUDA device (marker ``cuda``; skipped without one; ``benchmarks/gpu.sh`` runs them on the device
machine): float64 on CUDA equals the CPU, rotations and permutations act on CUDA outputs as on the CPU's, and
float32 on CUDA stays close to float64."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms

import facetpot
from facetpot.testing import assert_equivariant, model_outputs, random_orthogonal

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def _crystal() -> Atoms:
    rng = np.random.default_rng(0)
    cell = np.array([[3.1, 0.0, 0.0], [1.2, 2.9, 0.0], [0.7, -0.9, 3.3]]) * 1.4
    return Atoms("AlCuSiOMgO", scaled_positions=rng.random((6, 3)), cell=cell, pbc=True)


@pytest.fixture(scope="module")
def facet_s():
    torch.manual_seed(0)
    return facetpot.build_model().double()


def test_float64_on_cuda_equals_the_cpu(facet_s):
    cpu = model_outputs(facet_s, _crystal())
    gpu = model_outputs(facetpot.inference_model(facet_s, device="cuda", dtype="float64"), _crystal())
    for key in ("energy", "energies", "forces", "stress", "virials"):
        scale = float(cpu[key].abs().max().clamp(min=1e-12))
        assert float((gpu[key] - cpu[key]).abs().max()) <= 1e-10 * scale, key


def test_equivariant_on_cuda(facet_s):
    gpu = facetpot.inference_model(facet_s, device="cuda", dtype="float64")
    rng = np.random.default_rng(1)
    for proper in (True, False):
        assert_equivariant(gpu, _crystal(), random_orthogonal(rng, proper), rng.standard_normal(3), np.arange(6)[::-1])


def test_float32_on_cuda_is_close_to_float64(facet_s):
    e64 = model_outputs(facetpot.inference_model(facet_s, device="cuda", dtype="float64"), _crystal())["energy"]
    e32 = model_outputs(facetpot.inference_model(facet_s, device="cuda", dtype="float32"), _crystal())["energy"]
    assert float((e32.double() - e64).abs().max() / e64.abs().max()) < 1e-4
