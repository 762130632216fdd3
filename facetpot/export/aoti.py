"""torch.export / AOTInductor export: a compiled package of the one-call computation.

    (species (N,), edge_index (2, E), edge_vec (E, 3)) -> (E_i (N,), dE/dr_ij (E, 3))

with N >= 2 atoms and E >= 2 edges dynamic. The gradient is traced into the graph (``make_fx`` of the forward and
backward pass, then ``torch.export``), so the package needs no autograd at run time; load it with
``torch._inductor.aoti_load_package`` in Python or ``torch::inductor::AOTIModelPackageLoader`` in
C++ (metadata as ``facetpot_*`` keys of the package's metadata). Every atom receives (an ASE-style periodic
graph, or a LAMMPS ghost shell of L x r_c).
The edge-wise backend is used: the density backend's padded neighbour matrix has a
data-dependent width, which ``torch.export`` cannot trace.
"""

import copy
import json
import warnings
from pathlib import Path
from typing import Optional

import torch

from ..io.atomic_write import atomic_write
from ..io.format_header import check_header, make_header
from .torchscript import export_metadata, prepare

FORMAT_NAME = "facetpot-aoti"
FORMAT_VERSION = 1


class _Traced(torch.nn.Module):
    def __init__(self, graph_module):
        super().__init__()
        self.graph_module = graph_module

    def forward(self, species, edge_index, edge_vec):
        return self.graph_module(species, edge_index, edge_vec)


def _example(model, device, dtype):
    # a small two-species-safe example; shapes are symbolic, values only need to be valid
    n, e = 6, 18
    species = torch.arange(n, device=device) % len(model.species)
    edge_index = torch.stack([torch.arange(e, device=device) % n, (torch.arange(e, device=device) + 1) % n])
    edge_vec = torch.linspace(0.5, 2.5, e * 3, device=device, dtype=dtype).view(e, 3)
    return species, edge_index, edge_vec


def export_program(model, dtype: Optional[str] = None, device: str = "cpu"):
    """The ``torch.export.ExportedProgram`` of the one-call computation (dynamic N and E)."""
    from torch.export import Dim
    from torch.fx.experimental.proxy_tensor import make_fx

    model = copy.deepcopy(model).set_backend("edgewise")
    deployed = prepare(model, dtype, device)

    def energies_and_grad(species, edge_index, edge_vec):
        return deployed(species, edge_index, edge_vec, species.shape[0])

    example = _example(model, device, deployed.e_iso.dtype)
    traced = make_fx(energies_and_grad, tracing_mode="symbolic", _allow_non_fake_inputs=True)(*example)
    n, e = Dim("num_atoms", min=2), Dim("num_edges", min=2)
    return deployed, torch.export.export(_Traced(traced), example, dynamic_shapes=({0: n}, {1: e}, {0: e}))


def export_aoti(model, path, dtype: Optional[str] = None, device: str = "cpu") -> Path:
    """Compile with AOTInductor into the package ``path`` (.pt2); metadata as in the TorchScript export."""
    from torch._inductor import aoti_compile_and_package

    version = tuple(int(x) for x in torch.__version__.split("+")[0].split(".")[:2])
    if version < (2, 6):
        raise ValueError(
            f"AOTInductor export needs torch >= 2.6 (package metadata, dynamic shapes); this is {torch.__version__}"
        )
    path = Path(path)
    if path.suffix != ".pt2":
        raise ValueError(f"an AOTInductor package must end in .pt2, got {path.name}")
    with warnings.catch_warnings():  # torch's notices about its own internal APIs (FutureWarning) are not the user's
        warnings.simplefilter("ignore", FutureWarning)
        deployed, program = export_program(model, dtype, device)
        meta = {**export_metadata(model, deployed, device), **make_header(FORMAT_NAME, FORMAT_VERSION)}
        meta["backend"] = "edgewise"
        # metadata inside the package (AOTIModelPackageLoader::get_metadata in C++), keys facetpot_*
        strings = {f"facetpot_{k}": json.dumps(v) if not isinstance(v, str) else v for k, v in meta.items()}
        return atomic_write(
            path,
            lambda tmp: aoti_compile_and_package(
                program, package_path=str(tmp), inductor_configs={"aot_inductor.metadata": strings}
            ),
        )


def load_aoti(path):
    """(callable, metadata) of a package written by :func:`export_aoti`."""
    from torch._inductor import aoti_load_package

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such AOTInductor package: {path}")
    runner = aoti_load_package(str(path))
    meta = {}
    for key, value in runner.get_metadata().items():
        if key.startswith("facetpot_"):
            try:
                meta[key[len("facetpot_") :]] = json.loads(value)
            except json.JSONDecodeError:
                meta[key[len("facetpot_") :]] = value
    check_header(meta, FORMAT_NAME, FORMAT_VERSION, path, "facetpot AOTInductor package", "export the model again")
    return runner, meta
