"""Session set-up and fixtures. The helpers the tests share (small models, awkward structures, the equivariance
assertion, the oracles) live in ``facetpot.testing``."""

from __future__ import annotations

import os

# Triton decides at kernel definition whether a kernel runs in its CPU interpreter: set the switch before
# any test module (or torch) imports facetpot's kernels, so the whole session tests them on CPU tensors
os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402

from facetpot.testing import small_model  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _engine_built():
    """The C++ inference engine built (or found in the cache) once, before any test: a command a test runs in a
    subprocess then never prints the one-time build message into the output it checks."""
    from facetpot.inference.engine_library import load_engine

    load_engine()


@pytest.fixture
def model():
    return small_model()
