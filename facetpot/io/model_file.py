"""The model file format: one ``torch.save`` archive of plain tensors and types.

A model file holds the format header (``facetpot.io.format_header``), the model config, the weights, the dtype
they were trained in and metadata. Reading uses ``torch.load(weights_only=True)``, which never unpickles code;
a file of another format version, or not a facetpot model at all, is refused with a message that says so.
Turning a file (or a shipped model's name) into a model is ``facetpot.inference.model_source``'s job.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

from .format_header import check_header, make_header
from .state_upgrade import OLDEST_READABLE, upgrade_state
from .torch_archive import atomic_torch_save, read_torch_file

FORMAT_NAME = "facetpot-model"
FORMAT_VERSION = 2  # 2: rank-R convolutions name their factors as io.state_upgrade says


def save_model(model, path, metadata: Optional[Dict[str, Any]] = None) -> None:
    """Write ``model`` (a ``FacetModel``) to ``path`` atomically: a crash mid-write leaves the old file (if any) intact."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    payload = {
        **make_header(FORMAT_NAME, FORMAT_VERSION),
        "config": model.config,
        "state_dict": state,
        "dtype": str(model.dtype).replace("torch.", ""),
        "metadata": {
            "species": list(model.species),
            "cutoff": float(model.cutoff),
            "num_layers": int(model.num_layers),
            "units": {"energy": "eV", "length": "Angstrom", "stress": "eV/Angstrom^3"},
            **(metadata or {}),
        },
    }
    atomic_torch_save(payload, path)


def read_model_file(path) -> Dict[str, Any]:
    """The checked payload of a model file (header, config, state_dict, dtype, metadata); the weights of an
    older format version are read as the current one names them (``io.state_upgrade``)."""
    payload = read_torch_file(path, "model file")
    version = check_header(
        payload,
        FORMAT_NAME,
        FORMAT_VERSION,
        path,
        "facetpot model file",
        "convert it with the facetpot version that wrote it, or retrain",
        older=range(OLDEST_READABLE, FORMAT_VERSION),
    )
    payload["state_dict"] = upgrade_state(payload["state_dict"], version)
    return payload
