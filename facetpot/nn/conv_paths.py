"""The paths of a channel-wise convolution: which (l1, l2 -> l3) couplings it sums, and their CG tensors.

For input blocks x^(b) of irreps (mul_b, l1, p1) and spherical harmonics of degrees l2 = 0..l_max,
a path p = (b, l2 -> l3) exists when |l1 - l2| <= l3 <= l1 + l2 and its output irrep (l3, p1 p2)
is allowed. Its coupling is the Wigner-3j tensor scaled to unit norm per output component,

    C^(p)_{m1 m2 m3} = sqrt(2 l3 + 1) * wigner_3j(l1, l2, l3)_{m1 m2 m3}

and it carries ``mul_b`` radial weights (one per channel). Paths are ordered by input block, then
l2, then l3; the radial weights of path p are columns ``weight_offset(p) .. + mul`` of W.
This is the math every convolution backend computes; backends build their own tables from it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Sequence, Tuple

import torch
from e3nn import o3

from .irreps import Irrep, sh_parity


@dataclass(frozen=True)
class ConvPath:
    block: int  # input block b
    mul: int  # channels of block b (= radial weights of the path)
    l1: int
    l2: int  # spherical-harmonic degree
    l3: int
    p3: int  # output parity


class ConvolutionPaths:
    """All paths of one convolution, with their float64 coupling tensors ``cg[k]`` (2l1+1, 2l2+1, 2l3+1)."""

    def __init__(self, irreps_in: Sequence[Irrep], sh_lmax: int, parity: bool, irreps_out_allowed: Sequence[Tuple[int, int]]):
        self.irreps_in: List[Irrep] = list(irreps_in)
        self.sh_lmax = int(sh_lmax)
        allowed = {(l, p) for l, p in irreps_out_allowed}
        self.paths: List[ConvPath] = []
        self.cg: List[torch.Tensor] = []
        for b, (mul, l1, p1) in enumerate(self.irreps_in):
            for l2 in range(self.sh_lmax + 1):
                p3 = p1 * sh_parity(l2, parity)
                for l3 in range(abs(l1 - l2), l1 + l2 + 1):
                    if (l3, p3) not in allowed:
                        continue
                    self.paths.append(ConvPath(b, mul, l1, l2, l3, p3))
                    self.cg.append(o3.wigner_3j(l1, l2, l3, dtype=torch.float64) * math.sqrt(2 * l3 + 1))

    @property
    def irreps_mid(self) -> List[Irrep]:
        """Output irrep of every path, in path order."""
        return [(p.mul, p.l3, p.p3) for p in self.paths]

    @property
    def num_weights(self) -> int:
        return sum(p.mul for p in self.paths)

    def weight_offsets(self) -> List[int]:
        """First column of every path's radial weights in W (K, num_weights)."""
        out, offset = [], 0
        for p in self.paths:
            out.append(offset)
            offset += p.mul
        return out

    def of_block(self, b: int) -> List[int]:
        """Indices of the paths reading input block b (contiguous)."""
        return [k for k, p in enumerate(self.paths) if p.block == b]

    def block_coupling(self, b: int) -> Tuple[torch.Tensor, List[int], int, int]:
        """The CG tensors of all paths of input block b side by side, for backends that sum a block at once:
        (CC ((2l1+1) (hi - lo), cols) float64 with rows (m1, Y column - lo) and columns the output components
        of every path in order; the path (within the block) of every column; the degrees l2_min and
        l2_max + 1 of the spherical harmonics the block reads: columns lo = l2_min^2 .. hi - 1 = (l2_max + 1)^2 - 1)."""
        ks = self.of_block(b)
        l1 = self.irreps_in[b][1]
        l2s = [self.paths[k].l2 for k in ks] or [0]
        lo, hi = min(l2s) ** 2, (max(l2s) + 1) ** 2
        dims = [2 * self.paths[k].l3 + 1 for k in ks]
        cc = torch.zeros(2 * l1 + 1, hi - lo, sum(dims), dtype=torch.float64)
        colpath: List[int] = []
        col = 0
        for local, k in enumerate(ks):
            l2, d3 = self.paths[k].l2, dims[local]
            cc[:, l2 * l2 - lo : l2 * l2 - lo + 2 * l2 + 1, col : col + d3] = self.cg[k]
            colpath.extend([local] * d3)
            col += d3
        return cc.reshape((2 * l1 + 1) * (hi - lo), -1), colpath, min(l2s), max(l2s) + 1
