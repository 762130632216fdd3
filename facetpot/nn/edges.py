"""The per-edge data of a graph, computed once and read by every layer.

An edge e runs from a receiving atom i = receivers[e] to a sending neighbour j = senders[e],
with r_ij = x_j - x_i (+ cell shift). Atoms 0..num_receivers-1 receive (all atoms of an ASE
graph; the local atoms of a LAMMPS domain) and atoms 0..num_senders-1 send (local and ghost).

    vectors (E, 3)          r_ij, Å
    radial  (E, K)          spline basis b_k(|r_ij|)
    sh      (E, (l+1)^2)    spherical harmonics Y_lm(r_ij)
    tables  [Tensor]        what the convolution backend precomputes once per graph (its ``prepare``)

A TorchScript class (the exported model builds it) that ``torch.export`` traces through. For the
layer-by-layer protocol of a LAMMPS domain it flattens to a list of tensors (:meth:`EdgeData.tensors`)
and is rebuilt from one (:func:`edges_from_tensors`), so C++ only ever holds tensors.
"""

from typing import List

import torch


class EdgeData:
    def __init__(
        self,
        receivers: torch.Tensor,
        senders: torch.Tensor,
        num_receivers: int,
        num_senders: int,
        vectors: torch.Tensor,
        radial: torch.Tensor,
        sh: torch.Tensor,
        tables: List[torch.Tensor],
    ):
        self.receivers = receivers
        self.senders = senders
        self.num_receivers = num_receivers
        self.num_senders = num_senders
        self.vectors = vectors
        self.radial = radial
        self.sh = sh
        self.tables = tables

    def num_edges(self) -> int:
        return self.receivers.shape[0]

    def with_radial(self, radial: torch.Tensor, tables: List[torch.Tensor]) -> "EdgeData":
        """The same edges with another radial basis (E, K') and the tables that go with it; the rest shared."""
        return EdgeData(
            self.receivers, self.senders, self.num_receivers, self.num_senders, self.vectors, radial, self.sh, tables
        )

    def tensors(self) -> List[torch.Tensor]:
        """[vectors, radial, sh, *tables]: the differentiable part, flat."""
        return [self.vectors, self.radial, self.sh] + self.tables


def edges_from_tensors(
    edge_index: torch.Tensor, num_receivers: int, num_senders: int, tensors: List[torch.Tensor]
) -> EdgeData:
    """The inverse of :meth:`EdgeData.tensors` for edges ``edge_index`` (2, E) = (receivers, senders)."""
    return EdgeData(
        edge_index[0], edge_index[1], num_receivers, num_senders, tensors[0], tensors[1], tensors[2], tensors[3:]
    )
