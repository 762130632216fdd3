"""Dispersion corrections added to a model's energy, forces and stress (``FacetCalculator(dispersion="d3")``)."""

from .d3 import D3Dispersion, add_dispersion, dispersion_edges, dispersion_graph, make_dispersion

__all__ = ["D3Dispersion", "add_dispersion", "dispersion_edges", "dispersion_graph", "make_dispersion"]
