"""facetpot models in TorchSim: a ``torch_sim`` ``ModelInterface`` for batched relaxations and MD.

    import torch, torch_sim as ts
    from facetpot.torchsim import FacetModel

    model = FacetModel("facet-7net0-spline", device="cpu", dtype=torch.float64)
    state = ts.io.atoms_to_state(list_of_atoms, model.device, model.dtype)
    relaxed = ts.optimize(state, model, optimizer=ts.frechet_cell_fire)

For a batch of systems (``SimState``: positions, atomic numbers, per-atom system index, cell, pbc) one call
builds one neighbour graph and runs the model once; energy (n_systems,) eV, forces (n_atoms, 3) eV/Å, stress
(n_systems, 3, 3) eV/Å^3 with ASE's sign (tensile > 0; TorchSim's convention too). A list of models is a
committee (``facetpot.inference.committee``): the means, plus ``energy_std`` and ``forces_std``.

Neighbour lists: ``"vesin"`` (vesin's C++ list per system on the host: one transfer of the batch, no device
sync per system) or ``"torch"`` (TorchSim's batched linked-cell list on the model's device: no loop over
systems); ``"auto"`` takes vesin on the CPU and the batched list on a GPU for periodic batches. Tested with
torch-sim-atomistic 0.3.0, which names the system index ``system_idx`` (older releases' ``batch`` is read
too). Needs ``pip install 'facetpot[torchsim]'``.
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence, Union

import numpy as np
import torch

try:
    from torch_sim.models.interface import ModelInterface
    from torch_sim.neighbors import torch_nl_linked_cell
except ImportError as err:  # pragma: no cover - exercised where torch-sim is missing
    raise ImportError(
        "facetpot.torchsim needs TorchSim: pip install 'facetpot[torchsim]' (the torch-sim-atomistic package)"
    ) from err

from .inference.committee import Committee, model_properties
from .inference.model_source import torch_dtype
from .inference.prepare import inference_model
from .model import FacetModel as _Network
from .pretrained import DEFAULT_MODEL
from .structure.graph import AtomicGraph
from .structure.neighbors import radius_graph

NEIGHBOR_LISTS = ("auto", "vesin", "torch")


class FacetModel(ModelInterface):
    """``FacetModel(model=DEFAULT_MODEL, device=None, dtype=torch.float64, compute_forces=True,
    compute_stress=True, neighbor_list="auto", backend=None)``: ``model`` is a pretrained name, a model file, a
    ``facetpot.FacetModel`` (a prepared copy is used; the object is untouched) or a list of them (a committee);
    ``device`` defaults to CUDA when available."""

    def __init__(
        self,
        model: Union[str, _Network, Sequence] = DEFAULT_MODEL,
        device: Union[str, torch.device, None] = None,
        dtype: torch.dtype = torch.float64,
        compute_forces: bool = True,
        compute_stress: bool = True,
        neighbor_list: str = "auto",
        backend: Optional[str] = None,
    ):
        super().__init__()
        if neighbor_list not in NEIGHBOR_LISTS:
            raise ValueError(f"neighbor_list must be one of {NEIGHBOR_LISTS}, got {neighbor_list!r}")
        if isinstance(dtype, str):
            dtype = torch_dtype(dtype)
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        device = torch.device(device if device is not None else "cuda" if torch.cuda.is_available() else "cpu")
        name = str(dtype).split(".")[-1]
        if isinstance(model, (list, tuple)):
            self.network: Union[_Network, Committee] = Committee(model, device=device, dtype=name, backend=backend)
        else:
            self.network = inference_model(model, device=device, dtype=name, backend=backend)
        self.cutoff = float(self.network.cutoff)
        self._device, self._dtype = device, dtype
        self._compute_forces, self._compute_stress = bool(compute_forces), bool(compute_stress)
        # the density backend's work and memory grow with atoms x neighbours within the cutoff
        self._memory_scales_with = "n_atoms_x_density"
        self.neighbor_list = neighbor_list

    # TorchSim's validate_model_outputs switches these on; a model that computes them may
    @ModelInterface.compute_stress.setter
    def compute_stress(self, value: bool) -> None:
        self._compute_stress = bool(value)

    @ModelInterface.compute_forces.setter
    def compute_forces(self, value: bool) -> None:
        self._compute_forces = bool(value)

    def forward(self, state, **kwargs) -> Dict[str, torch.Tensor]:
        """energy (n_systems,), forces (n_atoms, 3) and stress (n_systems, 3, 3) as asked; a system without a
        cell volume (not periodic) gets NaN stress."""
        graph = self.graph(state)
        stress = None if self._compute_stress else False
        out = model_properties(self.network, graph, forces=self._compute_forces, stress=stress)
        results = {"energy": out["energy"].detach()}
        if self._compute_forces:
            results["forces"] = out["forces"].detach()
        if self._compute_stress:
            s = out.get("stress")
            nan = torch.full((graph.num_graphs, 3, 3), float("nan"), dtype=self._dtype, device=self._device)
            results["stress"] = nan if s is None else s.detach()
        for key in ("energy_std", "forces_std"):
            if key in out:
                results[key] = out[key].detach()
        return results

    def graph(self, state) -> AtomicGraph:
        """The batch as one facetpot graph on the model's device and dtype (cell rows are the cell vectors)."""
        get = state.get if isinstance(state, dict) else lambda k, d=None: getattr(state, k, d)
        positions = get("positions").to(self._device, self._dtype)
        cell = get("cell").to(self._device, self._dtype)
        cell = cell.unsqueeze(0) if cell.ndim == 2 else cell
        cell = cell.transpose(-1, -2)  # TorchSim's cell columns are the vectors; facetpot's rows
        numbers = get("atomic_numbers")
        if numbers is None:
            raise ValueError("the state has no atomic_numbers")
        numbers = numbers.to(self._device, torch.long)
        system = get("system_idx")
        system = get("batch") if system is None else system  # torch-sim releases before system_idx
        n = positions.shape[0]
        system = torch.zeros(n, dtype=torch.long, device=self._device) if system is None else system.to(self._device)
        b = cell.shape[0]
        pbc = torch.as_tensor(get("pbc", True), device=self._device, dtype=torch.bool)
        pbc = pbc.expand(b, 3) if pbc.ndim < 2 else pbc
        if not bool(torch.isfinite(positions).all()):  # one sync per call, not per system
            bad = sorted(set(system[~torch.isfinite(positions).all(dim=1)].tolist()))
            raise ValueError(f"non-finite positions in system(s) {bad}")
        kind = self.neighbor_list
        if kind == "auto":
            kind = "torch" if self._device.type == "cuda" and bool(pbc.all()) else "vesin"
        if kind == "torch":
            edge_index, shifts = batched_neighbors(positions, cell, pbc, system, self.cutoff)
        else:
            edge_index, shifts = host_neighbors(positions, cell, pbc, system, b, self.cutoff)
        return AtomicGraph(
            numbers=numbers,
            positions=positions,
            cell=cell,
            pbc=pbc,
            edge_index=edge_index.to(self._device),
            shifts=shifts.to(self._device, self._dtype),
            batch=system,
        )


def host_neighbors(positions, cell, pbc, system, n_systems: int, cutoff: float):
    """vesin's list per system on the host; (2, E) receiver/neighbour indices and (E, 3) integer shifts."""
    pos = positions.detach().cpu().double().numpy()
    cells = cell.detach().cpu().double().numpy()
    periodic = pbc.cpu().numpy()
    counts = np.bincount(system.cpu().numpy(), minlength=n_systems)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    pieces_i, pieces_j, pieces_s = [], [], []
    for k in range(n_systems):
        lo, hi = starts[k], starts[k] + counts[k]
        i, j, s = radius_graph(pos[lo:hi], cells[k], periodic[k], cutoff)
        pieces_i.append(i + lo)
        pieces_j.append(j + lo)
        pieces_s.append(s)
    edge_index = torch.from_numpy(np.stack([np.concatenate(pieces_i), np.concatenate(pieces_j)]))
    return edge_index, torch.from_numpy(np.concatenate(pieces_s))


def batched_neighbors(positions, cell, pbc, system, cutoff: float):
    """TorchSim's linked-cell list for the whole batch on its device. Positions are wrapped into their cells
    first (x' = x - n . cell) and the shifts turned back, so r_ij = x_j - x_i + S . cell holds for the
    positions given."""
    if not bool(pbc.all()):
        raise ValueError('neighbor_list="torch" needs periodic systems (pbc on every axis); use "vesin"')
    x = positions.detach()
    own = cell[system]  # (N, 3, 3) rows
    frac = torch.linalg.solve(own.transpose(1, 2), x.unsqueeze(-1)).squeeze(-1)
    n = torch.floor(frac)
    wrapped = x - torch.bmm(n.unsqueeze(1), own).squeeze(1)
    mapping, _, shifts = torch_nl_linked_cell(cutoff, wrapped, cell.reshape(-1, 3), pbc, system)
    shifts = shifts.to(x.dtype) - n[mapping[1]] + n[mapping[0]]
    return mapping, shifts.round()
