"""Ports of other packages' trained models into facetpot models (``facet convert sevennet``)."""
