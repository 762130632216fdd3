"""The paths of a channel-wise convolution: which (l1, l2 -> l3) couplings it sums, and their CG tensors.

For input blocks x^(b) of irreps (mul_b, l1, p1) and spherical harmonics of degrees l2 = 0..l_max,
a path p = (b, l2 -> l3) exists when |l1 - l2| <= l3 <= l1 + l2 and its output irrep (l3, p1 p2)
is allowed. Its coupling is the Wigner-3j tensor scaled to unit norm per output component,

    C^(p)_{m1 m2 m3} = sqrt(2 l3 + 1) * wigner_3j(l1, l2, l3)_{m1 m2 m3}

and it carries ``mul_b`` radial weights (one per channel). Paths are ordered by input block, then
l2, then l3; the radial weights of path p are columns ``weight_offset(p) .. + mul`` of W.
This is the math every convolution backend computes; backends build their own tables from it.

The paths of one input block are contiguous, in path order and in W's columns; :attr:`ConvolutionPaths.blocks`
gives that layout (:class:`BlockLayout`), the one loop over it the backends share, and
:func:`expand_block_weights` lays W out per output column of a block, for backends that sum a block at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Sequence, Tuple

import torch
from e3nn import o3

from .irreps import MulIrrep, sh_parity


@dataclass(frozen=True)
class ConvPath:
    block: int  # input block b
    mul: int  # channels of block b (= radial weights of the path)
    l1: int
    l2: int  # spherical-harmonic degree
    l3: int
    p3: int  # output parity


@dataclass(frozen=True)
class BlockLayout:
    """The paths of input block b = ``block``: ``paths`` (indices into ``ConvolutionPaths.paths``, contiguous),
    their weights W[:, weight_offset : weight_offset + len(paths) mul], their output sizes 2 l3 + 1, and
    the harmonic degrees they read, l2_lo .. l2_hi - 1 (0 .. 0 for a block without paths)."""

    block: int
    mul: int
    l1: int
    paths: Tuple[int, ...]
    weight_offset: int
    path_dims: Tuple[int, ...]
    l2_lo: int
    l2_hi: int

    @property
    def num_paths(self) -> int:
        return len(self.paths)


def block_path_weights(weights: torch.Tensor, offset: int, num_paths: int, mul: int) -> torch.Tensor:
    """W of one block per channel and path: Wb[u, p, k] = W[k, offset + p mul + u], (mul, num_paths, K) (a view)."""
    return weights.narrow(1, offset, num_paths * mul).view(weights.shape[0], num_paths, mul).permute(2, 1, 0)


def expand_block_weights(
    weights: torch.Tensor, offset: int, num_paths: int, mul: int, colpath: torch.Tensor
) -> torch.Tensor:
    """W laid out per output column of one block: Wx[k, u, c] = W[k, offset + path(c) mul + u], (K, mul, cols),
    with ``colpath`` the path (within the block) of every column (:meth:`ConvolutionPaths.block_coupling`)."""
    return block_path_weights(weights, offset, num_paths, mul).permute(2, 0, 1).index_select(2, colpath)


class ConvolutionPaths:
    """All paths of one convolution, with their float64 coupling tensors ``cg[k]`` (2l1+1, 2l2+1, 2l3+1)."""

    def __init__(
        self, irreps_in: Sequence[MulIrrep], sh_lmax: int, parity: bool, irreps_out_allowed: Sequence[Tuple[int, int]]
    ):
        self.irreps_in: List[MulIrrep] = list(irreps_in)
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
        self.blocks: List[BlockLayout] = self._block_layouts()

    def _block_layouts(self) -> List[BlockLayout]:
        offsets = self.weight_offsets()
        out: List[BlockLayout] = []
        for b, (mul, l1, _) in enumerate(self.irreps_in):
            ks = tuple(k for k, p in enumerate(self.paths) if p.block == b)
            l2s = [self.paths[k].l2 for k in ks] or [0]
            out.append(
                BlockLayout(
                    b,
                    int(mul),
                    int(l1),
                    ks,
                    offsets[ks[0]] if ks else 0,
                    tuple(2 * self.paths[k].l3 + 1 for k in ks),
                    min(l2s),
                    max(l2s) + 1,
                )
            )
        return out

    @property
    def irreps_mid(self) -> List[MulIrrep]:
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

    def block_coupling(self, b: int) -> Tuple[torch.Tensor, List[int]]:
        """The CG tensors of all paths of input block b side by side, for backends that sum a block at once:
        CC ((2l1+1) (hi - lo), cols) float64 with rows (m1, Y column - lo), lo = l2_lo^2 .. hi = l2_hi^2 the
        columns of the harmonics the block reads, and columns the output components of every path in order;
        and the path (within the block) of every column."""
        layout = self.blocks[b]
        lo, hi = layout.l2_lo**2, layout.l2_hi**2
        cc = torch.zeros(2 * layout.l1 + 1, hi - lo, sum(layout.path_dims), dtype=torch.float64)
        colpath: List[int] = []
        col = 0
        for local, (k, d3) in enumerate(zip(layout.paths, layout.path_dims)):
            l2 = self.paths[k].l2
            cc[:, l2 * l2 - lo : l2 * l2 - lo + 2 * l2 + 1, col : col + d3] = self.cg[k]
            colpath.extend([local] * d3)
            col += d3
        return cc.reshape((2 * layout.l1 + 1) * (hi - lo), -1), colpath
