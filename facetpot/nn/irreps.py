"""Irreps bookkeeping: features are flat tensors in e3nn's ``mul_ir`` layout.

A feature tensor of irreps ``m0 x l0p0 + m1 x l1p1 + ...`` has shape ``(N, sum m_k (2 l_k + 1))``;
block ``k`` is the slice viewed as ``(N, m_k, 2 l_k + 1)``. Inside the layers we pass the list
of blocks around, so that no layer needs to know the flat offsets.
"""
from __future__ import annotations

from typing import List, Sequence, Tuple

import torch
from e3nn import o3

Irrep = Tuple[int, int, int]  # (multiplicity, l, parity)


def parse_irreps(irreps) -> List[Irrep]:
    """``"128x0e+64x1o"`` -> ``[(128, 0, 1), (64, 1, -1)]`` (merged, sorted by l then parity)."""
    irreps = o3.Irreps(irreps).sort().irreps.simplify()
    return [(mul, ir.l, ir.p) for mul, ir in irreps if mul > 0]


def irreps_str(irreps: Sequence[Irrep]) -> str:
    return str(o3.Irreps([(m, (l, p)) for m, l, p in irreps]))


def irreps_dim(irreps: Sequence[Irrep]) -> int:
    return sum(m * (2 * l + 1) for m, l, _ in irreps)


def sh_parity(l: int, parity: bool) -> int:
    """Parity of a spherical harmonic of degree l: (-1)^l, or +1 when parity is not tracked."""
    return (-1) ** l if parity else 1


def split_blocks(x: torch.Tensor, irreps: List[Tuple[int, int]]) -> List[torch.Tensor]:
    """Flat ``(N, dim)`` -> list of ``(N, mul, 2l+1)`` views; ``irreps`` is ``[(mul, l), ...]``."""
    out: List[torch.Tensor] = []
    start = 0
    for mul, l in irreps:
        d = mul * (2 * l + 1)
        out.append(x.narrow(1, start, d).reshape(x.shape[0], mul, 2 * l + 1))
        start += d
    return out


def join_blocks(blocks: List[torch.Tensor]) -> torch.Tensor:
    """Inverse of :func:`split_blocks`."""
    return torch.cat([b.reshape(b.shape[0], -1) for b in blocks], dim=1)
