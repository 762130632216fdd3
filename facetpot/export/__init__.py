"""Export a Facet model for deployment: TorchScript (LAMMPS, C++) and torch.export / AOTInductor.

export_torchscript(model, "deployed.pt", dtype="float32")   # facet export MODEL -o deployed.pt
module, metadata = load_torchscript("deployed.pt")
export_aoti(model, "deployed.pt2")                           # facet export ... --format aoti
"""

from .aoti import export_aoti, load_aoti
from .deployed import DeployedFacet
from .torchscript import export_torchscript, load_torchscript

__all__ = ["DeployedFacet", "export_torchscript", "load_torchscript", "export_aoti", "load_aoti"]
