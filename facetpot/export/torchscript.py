"""TorchScript export: the file ``pair_style facet`` (LAMMPS) and C++ programs load.

The archive holds a scripted :class:`~facetpot.export.deployed.DeployedFacet` and, as extra
files, what a loader must check before running it (plain text, one value each, so C++ needs no
parser): ``format`` (``facetpot-torchscript``), ``format_version``, ``facetpot_version``,
``torch_version``, ``cutoff`` (Å), ``num_layers``, ``species`` (atomic numbers in model order),
``dtype``, ``device``, ``feature_dims`` (widths of the features exchanged between layers),
and ``metadata.json`` (all of it plus the model's own metadata).
"""
import json
import warnings
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import torch

from .deployed import DeployedFacet

FORMAT_NAME = "facetpot-torchscript"
FORMAT_VERSION = 1
_TEXT_KEYS = ("format", "format_version", "facetpot_version", "torch_version", "cutoff", "num_layers",
              "species", "dtype", "device", "feature_dims")


def prepare(model, dtype: Optional[str] = None, device: str = "cpu") -> DeployedFacet:
    """A deployable copy of ``model`` in ``dtype`` (default: the model's) on ``device``."""
    if dtype not in (None, "float32", "float64"):
        raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
    torch_dtype = getattr(torch, dtype) if dtype else model.dtype
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda asked for, but this torch has no CUDA device")
    import copy

    m = copy.deepcopy(model).to(device=device, dtype=torch_dtype).eval()
    return DeployedFacet(m)


def export_metadata(model, deployed: DeployedFacet, device: str) -> Dict[str, Any]:
    from .. import __version__

    return {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "facetpot_version": __version__,
        "torch_version": torch.__version__.split("+")[0],
        "cutoff": float(model.cutoff),
        "num_layers": int(model.num_layers),
        "species": [int(z) for z in model.species],
        "dtype": str(deployed.e_iso.dtype).replace("torch.", ""),
        "device": str(device),
        "feature_dims": list(deployed.feature_dims),
        "backend": model.backend,
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
    import os
    import tempfile

    deployed = prepare(model, dtype, device)
    with warnings.catch_warnings():  # TorchScript is deprecated in favour of torch.export, but LAMMPS/C++ load it
        warnings.simplefilter("ignore", DeprecationWarning)
        scripted = torch.jit.script(deployed)
    meta = export_metadata(model, deployed, device)
    extra = {k: (" ".join(str(x) for x in meta[k]) if isinstance(meta[k], list) else str(meta[k])) for k in _TEXT_KEYS}
    extra["metadata.json"] = json.dumps(meta, indent=1)
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=str(path.parent.resolve()))
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would hide the model from other users / jobs
    try:
        torch.jit.save(scripted, tmp, _extra_files=extra)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_torchscript(path, device: str = "cpu") -> Tuple[torch.jit.ScriptModule, Dict[str, Any]]:
    """(scripted module, metadata); a file that is not a facetpot TorchScript export is refused."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such exported model: {path}")
    extra = {"metadata.json": ""}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            module = torch.jit.load(str(path), map_location=device, _extra_files=extra)
    except RuntimeError as exc:
        raise ValueError(f"{path} is not a TorchScript archive ({str(exc).splitlines()[0]})") from None
    if not extra["metadata.json"]:
        raise ValueError(f"{path} is a TorchScript archive but not a facetpot export (no metadata.json)")
    meta = json.loads(extra["metadata.json"])
    if meta.get("format") != FORMAT_NAME or meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{path}: export format {meta.get('format')} {meta.get('format_version')}; this facetpot reads "
            f"{FORMAT_NAME} {FORMAT_VERSION}: export the model again with this version"
        )
    return module, meta
