"""Irreps bookkeeping.

Features of irreps ``m0 x l0p0 + m1 x l1p1 + ...`` travel between layers as a list of blocks of
shape ``(N, m_k, 2 l_k + 1)`` (concatenated, they are e3nn's ``mul_ir`` layout), so that no layer
needs to know flat offsets. An irrep is written ``(mul, l, parity)``.
"""

from typing import List, Sequence, Tuple

from e3nn import o3

#: (multiplicity, l, parity): e3nn's ``MulIr`` (an ``Irrep`` there is (l, parity) alone)
MulIrrep = Tuple[int, int, int]


def parse_irreps(irreps) -> List[MulIrrep]:
    """``"128x0e+64x1o"`` -> ``[(128, 0, 1), (64, 1, -1)]`` (merged, sorted by l then parity)."""
    irreps = o3.Irreps(irreps).sort().irreps.simplify()
    return [(mul, ir.l, ir.p) for mul, ir in irreps if mul > 0]


def irreps_str(irreps: Sequence[MulIrrep]) -> str:
    return str(o3.Irreps([(m, (l, p)) for m, l, p in irreps]))


def sh_parity(l: int, parity: bool) -> int:
    """Parity of a spherical harmonic of degree l: (-1)^l, or +1 when parity is not tracked."""
    return (-1) ** l if parity else 1
