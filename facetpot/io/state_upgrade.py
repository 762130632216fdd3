"""Weights saved by an older format version, read as today's: what changed, version by version.

Version 1 -> 2 (model files and checkpoints): in a convolution of rank R (``radial_rank``, W = A M),
version 1 stored the mixing matrix A (K, R) under ``radial_weight`` and the weights M (R, n) under
``radial_mix``; version 2 stores A as ``radial_mix`` and M as ``radial_weight``, so ``radial_weight`` always
holds the weights of the paths (W itself at full rank, where ``radial_mix`` is not saved).
"""

from __future__ import annotations

from typing import Dict

import torch

#: the oldest format version whose weights :func:`upgrade_state` reads
OLDEST_READABLE = 1


def upgrade_state(state: Dict[str, torch.Tensor], version: int) -> Dict[str, torch.Tensor]:
    """``state`` (a model's parameters by name) of format ``version`` as the current version names them."""
    out = dict(state)
    if version < 2:  # rank-R convolutions: swap the names of A and M
        for key in state:
            if key.endswith(".radial_mix"):
                partner = key[: -len("radial_mix")] + "radial_weight"
                out[key], out[partner] = state[partner], state[key]
    return out
