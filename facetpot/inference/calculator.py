"""ASE calculator for Facet models."""

from __future__ import annotations

import difflib
from typing import Optional

import numpy as np
import torch
from ase import Atoms
from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes

from .ase_results import as_numpy, energy_problem, per_atom_stress, voigt
from .committee import Committee, model_properties
from ..descriptors import atom_descriptors
from ..dispersion import add_dispersion, make_dispersion
from ..structure.graph import atoms_to_graph
from ..hessian import hessian
from .prepare import inference_model
from .model_source import torch_dtype
from ..pretrained import DEFAULT_MODEL, available
from ..structure.adaptors import to_atoms
from ..structure.option_checks import at_least, torch_device
from ..structure.validation import MIN_DISTANCE, has_volume

#: keywords of ase's own Calculator, passed on to it
ASE_KEYWORDS = ("restart", "ignore_bad_restart_file", "label", "atoms", "directory")
#: other packages' spellings of our keywords (MACE, SevenNet, CHGNet), named in the error
OTHER_SPELLINGS = {
    "model_paths": "model",
    "model_path": "model",
    "default_dtype": "dtype",
    "use_device": "device",
    "modal": None,
    "enable_cueq": "backend",
    "file_type": None,
    "sevennet_config": None,
    "damping": "dispersion (e.g. 'd3-zero')",
    "dispersion_xc": "dispersion=D3Dispersion(functional)",
    "dispersion_cutoff": "dispersion=D3Dispersion(cutoff=...)",
}


def _unknown_keywords(kwargs) -> Optional[str]:
    unknown = [k for k in kwargs if k not in ASE_KEYWORDS]
    if not unknown:
        return None
    accepted = ("model", "device", "dtype", "backend", "min_distance", "dispersion") + ASE_KEYWORDS
    hints = []
    for k in unknown:
        if k in OTHER_SPELLINGS:
            ours = OTHER_SPELLINGS[k]
            hints.append(f"{k}: {'use ' + ours if ours else 'no equivalent here'}")
        else:
            close = difflib.get_close_matches(k, accepted, n=1)
            if close:
                hints.append(f"{k}: did you mean {close[0]}?")
    return (
        f"FacetCalculator got unknown keyword(s) {', '.join(unknown)}"
        + (f" ({'; '.join(hints)})" if hints else "")
        + f"; accepted: {', '.join(accepted)}"
    )


class FacetCalculator(Calculator):
    """``FacetCalculator(model, device="cpu", dtype=None, backend=None, min_distance=0.5, dispersion=None)``.

    ``dtype`` None computes in the model's own dtype: float32 for the shipped models and for models trained
    in float32, as MACE-MP and SevenNet calculators run for MD, relaxations and screening (about twice the
    speed of float64); ask for "float64" where second derivatives or tiny energy differences matter
    (phonons, elastic constants by finite differences: ``facet phonons/elastic/eos`` default to it).

    Properties: energy, free_energy, forces, stress (Voigt xx yy zz yz xz xy, eV/Å^3, tensile
    positive), energies (per atom) and stresses (per atom, summing to the stress).
    ``model`` is a FacetModel, a model file, or a pretrained name; a list of them (same elements and cutoff) is
    a committee (``facetpot.inference.committee``): the results are the members' means, plus ``energy_std`` (eV),
    ``forces_std`` (per atom, eV/Å), ``stress_std`` (Voigt, eV/Å^3) and ``member_energies`` (eV). ``backend`` forces a convolution
    backend ("density", "edgewise", "triton"; default: the model's, or ``$FACETPOT_BACKEND``).
    ``min_distance`` (Å, default 0.5): structures with atoms closer than this are refused (ValueError naming the
    pair: overlapping atoms, where no model trained on DFT data means anything); 0 allows them.
    ``dispersion``: "d3" (DFT-D3 with PBE's Becke-Johnson parameters, two-body), "d3-zero" (PBE, zero damping),
    or a ``facetpot.dispersion.D3Dispersion`` (other functional, cutoffs): its energy, forces, stress and
    per-atom terms are added to the model's (``results["dispersion_energy"]`` holds its part).
    ``get_hessian(atoms)``: analytic second derivatives of the energy, (3N, 3N) eV/Å^2 (``facetpot.hessian``;
    a committee's mean; ask for dtype="float64"). ``get_descriptors(atoms)``: per-atom invariant features, (N, D)
    (``facetpot.descriptors``; one model). Unknown keywords
    raise TypeError (ase alone would store a misspelt one and run with the default). A pymatgen Structure or
    Molecule may be passed wherever ase takes Atoms (``calc.get_potential_energy(structure)``).
    """

    implemented_properties = ["energy", "free_energy", "energies", "forces", "stress", "stresses"]

    def __init__(
        self,
        model=None,
        device: str = "cpu",
        dtype: Optional[str] = None,
        backend=None,
        min_distance: float = MIN_DISTANCE,
        dispersion=None,
        **kwargs,
    ):
        unknown = _unknown_keywords(kwargs)
        if unknown:  # ase would store a misspelt keyword as a parameter and carry on with the default
            raise TypeError(unknown)
        if model is None:
            if DEFAULT_MODEL is None:
                raise ValueError(
                    "FacetCalculator needs a model: a FacetModel, a model file, or a pretrained name "
                    f"({', '.join(m.name for m in available()) or 'no pretrained model ships yet'})"
                )
            model = DEFAULT_MODEL
        torch_dtype(dtype)  # refuses anything but None, "float32", "float64"
        device = torch_device(device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {str(device)!r} requested but torch has no CUDA device here")
        super().__init__(**kwargs)
        self.device = device
        # a prepared copy: the model object passed in keeps its dtype, device, backend and gradients
        if isinstance(model, (list, tuple)):
            self.model = Committee(model, device=self.device, dtype=dtype, backend=backend)
        else:
            self.model = inference_model(model, device=self.device, dtype=dtype, backend=backend)
        self.dtype = self.model.dtype
        self.min_distance = float(at_least("min_distance", min_distance, 0.0, "Å"))
        self.dispersion = make_dispersion(dispersion, self.device, self.dtype)

    def get_property(self, name, atoms=None, allow_calculation=True):
        """ase's, also for a pymatgen Structure/Molecule (``calc.get_potential_energy(structure)``)."""
        if atoms is not None and not isinstance(atoms, Atoms):
            atoms = to_atoms(atoms)
        return super().get_property(name, atoms, allow_calculation)

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        if atoms is not None:
            atoms = to_atoms(atoms)
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        graph = self._graph_of(atoms)
        volume_ok = has_volume(atoms.cell.array)
        want_stress = "stress" in properties or "stresses" in properties
        if want_stress and not volume_ok:
            raise PropertyNotImplementedError("stress needs a cell of non-zero volume")
        # per-atom virials only when per-atom stresses are asked for (ASE asks again, and this recomputes, if a
        # later get_stresses() finds them missing)
        want_per_atom = volume_ok and "stresses" in properties
        out = model_properties(self.model, graph, forces=True, stress=volume_ok, virials=want_per_atom)
        if self.dispersion is not None:
            out = add_dispersion(out, self.dispersion, [atoms])
            self.results["dispersion_energy"] = float(out["dispersion_energy"][0].detach())
        energy = float(out["energy"][0].detach())
        problem = energy_problem(energy)
        if problem:
            raise ValueError(problem)
        self.results["energy"] = energy
        self.results["free_energy"] = energy
        self.results["energies"] = as_numpy(out["energies"])
        self.results["forces"] = as_numpy(out["forces"])
        if volume_ok:
            self.results["stress"] = voigt(as_numpy(out["stress"][0]))
        if "energy_std" in out:
            self.results["energy_std"] = float(out["energy_std"][0].detach())
            self.results["member_energies"] = as_numpy(out["member_energy"][:, 0])
            self.results["forces_std"] = as_numpy(out["forces_std"])
            if volume_ok:
                self.results["stress_std"] = voigt(as_numpy(out["stress_std"][0]))
        if want_per_atom:
            self.results["stresses"] = per_atom_stress(as_numpy(out["virials"]), np.linalg.det(atoms.cell.array))

    # ------------------------------------------------------------------ beyond ASE's properties
    def _graph_of(self, atoms):
        """The checked graph of ``atoms`` (the calculator's own atoms if None), on the model's device and dtype."""
        atoms = self.atoms if atoms is None else to_atoms(atoms)
        if atoms is None:
            raise ValueError("no structure: pass one (calc.get_hessian(atoms)) or attach the calculator to it")
        graph = atoms_to_graph(atoms, self.model.cutoff, dtype=self.dtype, min_distance=self.min_distance)
        return graph.to(self.device, self.dtype)

    def get_hessian(self, atoms=None) -> np.ndarray:
        """d^2E/dx dx of the model, (3N, 3N) in eV/Å^2 (row/column 3i+a: atom i, Cartesian a), float64 numpy;
        a committee's is its members' mean. Analytic: exact in a float64 calculator, rounded in float32. D3's
        part is not included (its second derivatives are not implemented): refused where dispersion is on."""
        if self.dispersion is not None:
            raise NotImplementedError(
                "the Hessian of the D3 term is not implemented: use a calculator without "
                "dispersion (or finite differences of its forces)"
            )
        graph = self._graph_of(atoms)
        members = self.model.members if isinstance(self.model, Committee) else [self.model]
        return torch.stack([hessian(m, graph) for m in members]).mean(0).cpu().double().numpy()

    def get_descriptors(self, atoms=None, layers=None) -> np.ndarray:
        """Per-atom invariant descriptors, (N, D) float64 numpy: the scalar channels of the model's layers
        (``layers``: indices from 0, default all), as MACE's ``get_descriptors(invariants_only=True)``."""
        if isinstance(self.model, Committee):
            raise ValueError("descriptors are one model's features: use a calculator of one committee member")
        return atom_descriptors(self.model, self._graph_of(atoms), layers).cpu().double().numpy()
