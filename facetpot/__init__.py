"""facetpot: the Facet machine-learning interatomic potential.

    model = facetpot.build_model()                # Facet-S, randomly initialised
    facetpot.save_model(model, "model.pt"); model = facetpot.load_model("model.pt")
    atoms.calc = facetpot.FacetCalculator(model)  # ASE: energy, forces, stress, energies
    results = facetpot.predict(["a.cif", "folder/"])  # many structures, batched: energy, forces, stress
    atoms.calc = facetpot.FacetCalculator(dispersion="d3")  # the default model plus DFT-D3(BJ) for PBE

Names are imported on first use, so ``import facetpot`` (and the LAMMPS entry point) stays cheap.
"""

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "FacetCalculator": ".inference.calculator",
    "FacetModel": ".model",
    "build_model": ".model",
    "DEFAULT_CONFIG": ".model",
    "load_model": ".inference.model_source",
    "save_model": ".io.model_file",
    "resolve_model": ".inference.model_source",
    "to_atoms": ".structure.adaptors",
    "predict": ".inference.single_points",
    "inference_model": ".inference.prepare",
    "D3Dispersion": ".dispersion",
    "compute_properties": ".derivatives",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'facetpot' has no attribute {name!r}")
