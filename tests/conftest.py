"""Session set-up and fixtures. The helpers the tests share (small models, awkward structures, the equivariance
assertion, the oracles) live in ``facetpot.testing``."""

from __future__ import annotations

import os

# Triton decides at kernel definition whether a kernel runs in its CPU interpreter: set the switch before
# any test module (or torch) imports facetpot's kernels, so the whole session tests them on CPU tensors
os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402

from facetpot.testing import small_model  # noqa: E402


@pytest.fixture
def model():
    return small_model()
