"""TorchScript export: the file ``pair_style facet`` (LAMMPS) and C++ programs load.

The archive holds a scripted :class:`~facetpot.export.deployed.DeployedFacet` and, as extra
files, what a loader must check before running it (plain text, one value each, so C++ needs no
parser): ``format`` (``facetpot-torchscript``), ``format_version``, ``facetpot_version``,
``torch_version``, ``cutoff`` (Å), ``num_layers``, ``species`` (atomic numbers in model order),
``dtype``, ``device``, ``feature_dims`` (widths of the features exchanged between layers),
and ``metadata.json`` (all of it plus the model's own metadata).
"""

import copy
import json
import warnings
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import torch

from ..io.atomic_write import atomic_write
from ..io.format_header import check_header, make_header
from ..inference.model_source import torch_dtype
from ..nn.convolution import DEFAULT_BACKEND
from ..inference.engine_library import load_engine
from ..inference.frozen_program import Unsupported
from .deployed import DeployedFacet, DeployedFacetEngine

FORMAT_NAME = "facetpot-torchscript"
FORMAT_VERSION = 1
_TEXT_KEYS = (
    "format",
    "format_version",
    "facetpot_version",
    "torch_version",
    "cutoff",
    "num_layers",
    "species",
    "dtype",
    "device",
    "feature_dims",
)


def prepare(model, dtype: Optional[str] = None, device: str = "cpu", engine: bool = False) -> DeployedFacet:
    """A deployable copy of ``model`` in ``dtype`` (default: the model's) on ``device``; with ``engine``, on the CPU
    where the C++ engine is loaded and can express the model, one that has :meth:`DeployedFacetEngine.domain`."""
    wanted = torch_dtype(dtype) or model.dtype
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda asked for, but this torch has no CUDA device")
    m = copy.deepcopy(model).to(device=device, dtype=wanted).eval()
    if not m.backend_scriptable:  # fused GPU kernels (triton, cueq) are not scriptable: same numbers
        m.set_backend(DEFAULT_BACKEND)
    if engine and str(device) == "cpu" and load_engine():
        try:
            return DeployedFacetEngine(m)
        except Unsupported:
            pass
    return DeployedFacet(m)


def export_metadata(model, deployed: DeployedFacet, device: str) -> Dict[str, Any]:
    return {
        **make_header(FORMAT_NAME, FORMAT_VERSION),
        "torch_version": torch.__version__.split("+")[0],
        "cutoff": float(model.cutoff),
        "num_layers": int(model.num_layers),
        "species": [int(z) for z in model.species],
        "dtype": str(deployed.e_iso.dtype).replace("torch.", ""),
        "device": str(device),
        "feature_dims": list(deployed.feature_dims),
        "backend": deployed.model.backend,  # what the archive computes with
        "engine": isinstance(deployed, DeployedFacetEngine),  # whether it calls the C++ engine (domain)
        "model_metadata": {k: v for k, v in getattr(model, "metadata", {}).items() if _jsonable(v)},
    }


def _jsonable(v) -> bool:
    try:
        json.dumps(v)
        return True
    except TypeError:
        return False


def export_torchscript(model, path, dtype: Optional[str] = None, device: str = "cpu") -> Path:
    """Script ``model`` (a FacetModel) and write it to ``path`` atomically; returns the path."""
    deployed = prepare(model, dtype, device, engine=True)
    with warnings.catch_warnings():  # TorchScript is deprecated in favour of torch.export, but LAMMPS/C++ load it
        warnings.simplefilter("ignore", DeprecationWarning)
        scripted = torch.jit.script(deployed)
    meta = export_metadata(model, deployed, device)
    extra = {k: (" ".join(str(x) for x in meta[k]) if isinstance(meta[k], list) else str(meta[k])) for k in _TEXT_KEYS}
    extra["metadata.json"] = json.dumps(meta, indent=1)
    return atomic_write(path, lambda tmp: torch.jit.save(scripted, str(tmp), _extra_files=extra))


def _jit_load(path: Path, device: str, extra: Dict[str, str]) -> torch.jit.ScriptModule:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.load(str(path), map_location=device, _extra_files=extra)


def load_torchscript(path, device: str = "cpu") -> Tuple[torch.jit.ScriptModule, Dict[str, Any]]:
    """(scripted module, metadata); a file that is not a facetpot TorchScript export is refused."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such exported model: {path}")
    extra = {"metadata.json": ""}
    try:
        module = _jit_load(path, device, extra)
    except RuntimeError as exc:
        if "facetpot::frozen_program" not in str(exc):
            raise ValueError(f"{path} is not a TorchScript archive ({str(exc).splitlines()[0]})") from None
        # an export that calls the C++ engine (DeployedFacetEngine.domain): its operator must exist first
        if not load_engine():
            raise ValueError(
                f"{path} calls facetpot's C++ inference engine, which this process cannot load (FACETPOT_ENGINE or "
                "no compiler): export the model again where the engine is unavailable, or allow it"
            ) from None
        module = _jit_load(path, device, extra)
    if not extra["metadata.json"]:
        raise ValueError(f"{path} is a TorchScript archive but not a facetpot export (no metadata.json)")
    meta = json.loads(extra["metadata.json"])
    check_header(meta, FORMAT_NAME, FORMAT_VERSION, path, "facetpot export", "export the model again with this version")
    return module, meta
