"""Training checkpoints: everything needed to continue a run exactly, written atomically.

A checkpoint is a ``torch.save`` archive of plain tensors and types with the facetpot header
(``facetpot.io.format_header``): model config and weights, optimizer, schedule, EMA, data position,
statistics, and the torch and Python RNG states, which :func:`load_checkpoint` restores.
"""

from __future__ import annotations

import random
from typing import Any, Dict

import torch

from ..io.format_header import check_header, make_header
from ..io.state_upgrade import OLDEST_READABLE, upgrade_state
from ..io.torch_archive import atomic_torch_save, read_torch_file

FORMAT = "facetpot-checkpoint"
FORMAT_VERSION = 2  # 2: rank-R convolutions name their factors as io.state_upgrade says


def save_checkpoint(path, state: Dict[str, Any]) -> None:
    payload = {
        **make_header(FORMAT, FORMAT_VERSION),
        **state,
        "rng": {
            "torch": torch.get_rng_state(),
            "python": list(random.getstate()[1]),
            "python_version": random.getstate()[0],
            "python_gauss": random.getstate()[2],
        },
    }
    atomic_torch_save(payload, path)


def load_checkpoint(path) -> Dict[str, Any]:
    """The checked payload of a checkpoint. Side effect, on purpose (``--resume`` continues bit for bit): the
    process's global torch and Python ``random`` generator states are set to the ones it holds. The weights (model and EMA) of an
    older format version are read as the current one names them; the optimizer's state is by position and
    the upgrade keeps positions."""
    payload = read_torch_file(path, "checkpoint")
    version = check_header(
        payload,
        FORMAT,
        FORMAT_VERSION,
        path,
        "facetpot checkpoint",
        "resume it with the facetpot version that wrote it, or start a new run (--overwrite)",
        older=range(OLDEST_READABLE, FORMAT_VERSION),
    )
    payload["model"] = upgrade_state(payload["model"], version)
    if "ema" in payload:
        payload["ema"] = {**payload["ema"], "shadow": upgrade_state(payload["ema"]["shadow"], version)}
    rng = payload["rng"]
    torch.set_rng_state(rng["torch"])
    random.setstate((rng["python_version"], tuple(rng["python"]), rng["python_gauss"]))
    return payload
