"""Training data: readers (extended XYZ, ASE databases, MPtrj JSON) -> frames -> on-disk cache -> batches."""

from .frame import Frame

__all__ = ["Frame"]
