"""facetpot: the Facet machine-learning interatomic potential.

    model = facetpot.build_model()                # Facet-S, randomly initialised
    model.save("model.pt"); model = facetpot.load_model("model.pt")
    atoms.calc = facetpot.FacetCalculator(model)  # ASE: energy, forces, stress, energies
"""
__version__ = "0.1.0"

from .calculator import FacetCalculator  # noqa: E402
from .model import DEFAULT_CONFIG, FacetModel, build_model  # noqa: E402
from .model_file import load_model  # noqa: E402
from .structures import to_atoms  # noqa: E402

__all__ = ["FacetCalculator", "FacetModel", "build_model", "load_model", "to_atoms", "DEFAULT_CONFIG", "__version__"]
