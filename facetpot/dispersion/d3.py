"""DFT-D3 dispersion (Grimme et al., J. Chem. Phys. 132, 154104 (2010)), two-body, on a periodic pair list.

    E      = -sum_{pairs ij (periodic images included)} [ s6 C6_ij f6(r) + s8 C8_ij f8(r) ]
    BJ:      f_n(r) = 1 / (r^n + (a1 R0_ij + a2)^n),             R0_ij = sqrt(C8_ij / C6_ij)
    zero:    f_n(r) = 1 / (r^n (1 + 6 (s_r,n Rvdw_ij / r)^a_n)),  s_r,6 = rs6, s_r,8 = 1, a_6 = 14, a_8 = 16
    C6_ij  = sum_ab W_a(CN_i) W_b(CN_j) C6ref(Z_i a, Z_j b),      C8_ij = 3 C6_ij Q_i Q_j
    CN_i   = sum_j 1 / (1 + exp(-16 (Rcov_i + Rcov_j) / r + 16))  (pairs within ``cn_cutoff``)

The reference C6 table, the Gaussian reference weights W, the radii, Q (``r4r2``) and the damping parameters
per functional are tad-dftd3's (the s-dftd3 data base, loaded offline from the wheel). tad-dftd3 itself sums
over dense atom pairs of molecules; here the same terms run over a vesin half pair list with periodic images,
so crystals, slabs and molecules all work and the cost grows linearly with the atoms. Forces and stress come
from the pair vectors by autograd (``facetpot.derivatives``). Defaults follow s-dftd3: pairs to 60 Bohr
(31.75 Å), coordination numbers to 40 Bohr (21.17 Å), hard cutoffs. The three-body (ATM) term is not
included: as in VASP's IVDW = 11/12, SevenNet's D3 and torch-dftd's default.
"""

from __future__ import annotations

import copy
from typing import Dict, Optional, Tuple

import torch
from ase.units import Bohr, Hartree

from ..structure.graph import AtomicGraph
from ..derivatives import properties_from_edges
from .pair_lists import DEFAULT_SKIN, VerletPairLists

#: s-dftd3's real-space cutoffs, Å
DEFAULT_CUTOFF = 60.0 * Bohr
DEFAULT_CN_CUTOFF = 40.0 * Bohr
#: the dampings offered (s-dftd3's names): Becke-Johnson (rational) and zero (Chai-Head-Gordon)
DAMPINGS = ("bj", "zero")
#: elements with D3 reference data: Z = 1-103
MAX_Z = 103
#: steepness of the coordination-number counting function
KCN = 16.0


def _tad():
    try:
        import tad_dftd3  # lazy: optional dependency (facetpot[d3])
        from tad_dftd3 import model as d3_model  # lazy: optional dependency
        from tad_dftd3.param import get_functional_params  # lazy: optional dependency
        from tad_mctc.data import radii  # lazy: optional dependency
    except ImportError as err:
        raise ImportError(
            "D3 dispersion needs tad-dftd3: pip install 'facetpot[d3]' (or pip install tad-dftd3)"
        ) from err
    return tad_dftd3, d3_model, get_functional_params, radii


class D3Dispersion(torch.nn.Module):
    """``D3Dispersion(functional="pbe", damping="bj", cutoff=31.75, cn_cutoff=21.17)``: per-atom D3 energies (eV).

    ``forward(numbers, edge_index, edge_vec)`` takes atomic numbers and a pair list whose vectors are in Å
    (each pair once: ``dispersion_graph``), like a FacetModel takes species and edges, so
    ``facetpot.derivatives.compute_properties(d3, graph)`` gives energy, forces, stress and per-atom virials.
    ``functional``: any name s-dftd3 knows ("pbe", "pbesol", "r2scan", "pbe0", ...); ``damping``: "bj" or
    "zero"; cutoffs in Å; ``skin`` (Å): the pair lists of :func:`add_dispersion` (calculator, relaxations, MD)
    reach ``cutoff + skin`` and are kept while no atom moved more than skin / 2 and the cell is unchanged
    (``dispersion.pair_lists``; 0: a new list every call).
    """

    def __init__(
        self,
        functional: str = "pbe",
        damping: str = "bj",
        cutoff: float = DEFAULT_CUTOFF,
        cn_cutoff: float = DEFAULT_CN_CUTOFF,
        skin: float = DEFAULT_SKIN,
    ):
        super().__init__()
        tad, _, get_params, radii = _tad()
        if damping not in DAMPINGS:
            raise ValueError(f"unknown D3 damping {damping!r}; choose one of {', '.join(DAMPINGS)}")
        try:
            params = get_params(functional, damping, dtype=torch.float64, device="cpu")
        except (KeyError, ValueError) as err:
            raise ValueError(
                f"no D3({damping}) parameters for the functional {functional!r} in tad-dftd3's data base ({err})"
            ) from None
        if not (cutoff > 0 and cn_cutoff > 0):
            raise ValueError(f"D3 cutoffs must be positive (cutoff {cutoff} Å, cn_cutoff {cn_cutoff} Å)")
        self.functional, self.damping_name = functional, damping
        self.params = {k: float(v) for k, v in params.items() if k in ("s6", "s8", "a1", "a2", "rs6", "rs8")}
        self.pair_cutoff, self.cn_cutoff = float(cutoff), float(cn_cutoff)
        self.pair_lists = VerletPairLists(skin)  # what add_dispersion reuses between calls
        ref = tad.reference.Reference(dtype=torch.float64, device="cpu")
        self.register_buffer("ref_cn", ref.cn)  # (104, 7), -1 where an element has fewer references
        self.register_buffer("ref_c6", ref.c6)  # (104, 104, 7, 7), Hartree Bohr^6
        self.register_buffer("rcov", radii.COV_D3(dtype=torch.float64))  # (104,), Bohr, 4/3 scaled
        self.register_buffer("r4r2", tad.data.R4R2(dtype=torch.float64))  # (104,)
        self.register_buffer("rvdw", radii.VDW_PAIRWISE(dtype=torch.float64))  # (104, 104), Bohr

    def extra_repr(self) -> str:
        return (
            f"functional={self.functional!r}, damping={self.damping_name!r}, cutoff={self.pair_cutoff:.2f} Å, "
            f"cn_cutoff={self.cn_cutoff:.2f} Å"
        )

    @property
    def cutoff(self) -> float:
        """Radius of the pair list it needs, Å."""
        return max(self.pair_cutoff, self.cn_cutoff)

    @property
    def dtype(self) -> torch.dtype:
        return self.ref_c6.dtype

    @property
    def device(self) -> torch.device:
        return self.ref_c6.device

    def species_index(self, numbers: torch.Tensor) -> torch.Tensor:
        """The atomic numbers themselves, checked against the reference data (Z = 1-103)."""
        if numbers.numel() and (int(numbers.min()) < 1 or int(numbers.max()) > MAX_Z):
            bad = sorted({int(z) for z in numbers.tolist() if not 1 <= z <= MAX_Z})
            raise ValueError(f"D3 has reference data for Z = 1-{MAX_Z} only; got Z = {bad}")
        return numbers

    def coordination_numbers(self, numbers, i, j, r2) -> torch.Tensor:
        """CN_i (N,) from the pairs (each once) at squared distances r2 (Bohr^2); only pairs within cn_cutoff."""
        near = torch.nonzero(r2 <= (self.cn_cutoff / Bohr) ** 2).squeeze(1)
        i, j = i[near], j[near]
        rc = self.rcov[numbers[i]] + self.rcov[numbers[j]]
        count = torch.sigmoid(KCN * (rc.to(r2.dtype) * torch.rsqrt(r2[near]) - 1.0))
        cn = torch.zeros(numbers.shape[0], dtype=r2.dtype, device=r2.device)
        return cn.index_add(0, i, count).index_add(0, j, count)

    def pair_c6(self, numbers, cn, i, j) -> torch.Tensor:
        """C6_ij for every pair: w_i^T C6ref(Z_i, Z_j) w_j, contracted per element so no (pairs, 7, 7) tensor."""
        _, d3_model, _, _ = _tad()
        ref = _Reference(self.ref_cn)
        w = d3_model.weight_references(numbers, cn, ref)  # (N, 7)
        elements, element_of_atom = torch.unique(numbers, return_inverse=True)
        blocks = self.ref_c6[numbers][:, elements].to(w.dtype)  # (N, S, 7, 7)
        g = torch.einsum("nsab,na->nsb", blocks, w)  # (N, S, 7)
        n = numbers.shape[0]
        if n * n <= i.shape[0]:  # small cells, many periodic images: all N x N values in one GEMM, one gather per pair
            onehot = torch.nn.functional.one_hot(element_of_atom, elements.shape[0]).to(w.dtype)  # (N, S)
            dense = g.reshape(n, -1) @ (onehot.unsqueeze(-1) * w.unsqueeze(1)).reshape(n, -1).T  # (N, N)
            return dense.reshape(-1)[i * n + j]
        return (g[i, element_of_atom[j]] * w[j]).sum(-1)

    def pair_tables(self, numbers) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        """Per atom its element's index s among the elements present (S of them), and the damping's per element pair
        constants as (S * S,) tables indexed by s_i S + s_j: qq = 3 Q_i Q_j; BJ: R0^6, R0^8 with R0 = a1 sqrt(qq) + a2;
        zero: (rs6 Rvdw)^2, (rs8 Rvdw)^2 (Bohr)."""
        p = self.params
        elements, species = torch.unique(numbers, return_inverse=True)
        q = self.r4r2[elements]
        tables = {"qq": (3.0 * q.unsqueeze(1) * q.unsqueeze(0)).reshape(-1)}
        if self.damping_name == "bj":
            r0_2 = (p["a1"] * torch.sqrt(tables["qq"]) + p["a2"]) ** 2
            tables.update(r0_6=r0_2**3, r0_8=r0_2**4)
        else:
            rvdw2 = self.rvdw[elements][:, elements].reshape(-1) ** 2
            tables.update(x0=p["rs6"] ** 2 * rvdw2, y0=p.get("rs8", 1.0) ** 2 * rvdw2)
        return species, tables

    def damping(self, numbers, i, j, r2) -> Tuple[torch.Tensor, torch.Tensor]:
        """h = s6 f6 + s8 qq f8 per pair (the pair energy is -C6 h) and dh/dr2, at squared distances r2 (Bohr^2);
        written with in-place steps (a fresh tensor per step of a 1.7M-pair list costs its page faults)."""
        p = self.params
        s6, s8 = p.get("s6", 1.0), p["s8"]
        species, tables = self.pair_tables(numbers)
        n_elements = int(round(tables["qq"].numel() ** 0.5))
        kind = species[i] * n_elements + species[j]  # the element pair of every pair
        qq = tables["qq"].to(r2.dtype)[kind]
        r4 = r2 * r2
        r6 = r4 * r2
        if self.damping_name == "bj":
            f6 = (r6 + tables["r0_6"].to(r2.dtype)[kind]).reciprocal_()
            f8 = torch.addcmul(tables["r0_8"].to(r2.dtype)[kind], r6, r2).reciprocal_()
            qf8 = f8 * qq
            h = (qf8 * s8).add_(f6, alpha=s6)
            dh = f6.square_().mul_(r4).mul_(-3.0 * s6)  # -3 s6 r4 f6^2 - 4 s8 qq r6 f8^2
            dh.addcmul_(qf8.mul_(f8), r6, value=-4.0 * s8)
            return h, dh
        x = (tables["x0"].to(r2.dtype)[kind] / r2) ** 7  # (rs6 Rvdw / r)^14
        y = (tables["y0"].to(r2.dtype)[kind] / r2) ** 8  # (rs8 Rvdw / r)^16
        f6 = 1.0 / (r6 * (1.0 + 6.0 * x))
        f8 = 1.0 / (r6 * r2 * (1.0 + 6.0 * y))
        h = s6 * f6 + s8 * qq * f8
        dh = (s6 * f6 * (-3.0 + 42.0 * x / (1.0 + 6.0 * x)) + s8 * qq * f8 * (-4.0 + 48.0 * y / (1.0 + 6.0 * y))) / r2
        return h, dh

    def forward(self, numbers: torch.Tensor, edge_index: torch.Tensor, edge_vec: torch.Tensor) -> torch.Tensor:
        r2 = _SquaredLength.apply(edge_vec) / Bohr**2
        i, j = edge_index[0], edge_index[1]
        cn = self.coordination_numbers(numbers, i, j, r2)
        c6 = self.pair_c6(numbers, cn, i, j)
        with torch.no_grad():
            h, dh = self.damping(numbers, i, j, r2)
            keep = r2 <= (self.pair_cutoff / Bohr) ** 2
            if not bool(keep.all()):  # the list reaches further (CN cutoff, Verlet skin): no energy beyond the cutoff
                h.mul_(keep)
                dh.mul_(keep)
        e = _PairEnergy.apply(r2, c6, h.mul_(Hartree), dh.mul_(Hartree))  # eV per pair
        energies = torch.zeros(numbers.shape[0], dtype=e.dtype, device=e.device)
        return energies.index_add(0, i, 0.5 * e).index_add(0, j, 0.5 * e)


class _PairEnergy(torch.autograd.Function):
    """e = -C6 h(r2), with h and dh/dr2 computed beside it: one fused backward instead of autograd through the
    damping's dozen elementwise steps on every pair (most of the cost on the long pair lists of D3)."""

    @staticmethod
    def forward(ctx, r2, c6, h, dh):
        ctx.save_for_backward(c6, h, dh)
        return -c6 * h

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        c6, h, dh = ctx.saved_tensors
        return -grad * c6 * dh, -grad * h, None, None


class _SquaredLength(torch.autograd.Function):
    """|r|^2 per row of r (E, 3), and its gradient 2 g r: on D3's long pair lists much faster than autograd
    through (r * r).sum(-1) (benchmarks/RESULTS.md, "Measurements behind design choices")."""

    @staticmethod
    def forward(ctx, r):
        ctx.save_for_backward(r)
        return torch.einsum("ej,ej->e", r, r)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        (r,) = ctx.saved_tensors
        return r * (2.0 * grad).unsqueeze(1)


class _Reference:
    """The one field of tad-dftd3's Reference that its ``weight_references`` reads."""

    def __init__(self, cn: torch.Tensor):
        self.cn = cn


def dispersion_edges(atoms_list, cutoff: float, dtype: torch.dtype = torch.float64) -> Tuple[AtomicGraph, torch.Tensor]:
    """Structures (ase Atoms, already validated) -> one AtomicGraph of their pairs within ``cutoff`` Å, each once,
    and the pair vectors (E, 3) Å, built now (:class:`VerletPairLists` keeps them between calls)."""
    return VerletPairLists(skin=0.0).edges(atoms_list, cutoff, dtype)


def dispersion_graph(atoms_list, cutoff: float, dtype: torch.dtype = torch.float64) -> AtomicGraph:
    """:func:`dispersion_edges`'s graph (for ``compute_properties(d3, graph)``)."""
    return dispersion_edges(atoms_list, cutoff, dtype)[0]


def make_dispersion(spec, device="cpu", dtype: torch.dtype = torch.float64) -> Optional[D3Dispersion]:
    """None, "d3" (= "d3-bj"), "d3-bj", "d3-zero" (PBE parameters), or a D3Dispersion -> the module on ``device``
    in ``dtype`` (a copy: a D3Dispersion passed in keeps its own), or None."""
    if spec is None or spec is False:
        return None
    names = {"d3": "bj", "d3-bj": "bj", "d3bj": "bj", "d3-zero": "zero", "d3zero": "zero"}
    if isinstance(spec, D3Dispersion):
        d3 = copy.deepcopy(spec)
    elif isinstance(spec, str) and spec.lower() in names:
        d3 = D3Dispersion("pbe", names[spec.lower()])
    else:
        raise ValueError(
            f"unknown dispersion {spec!r}: use 'd3' (PBE, BJ damping), 'd3-zero' (PBE, zero damping) "
            "or facetpot.dispersion.D3Dispersion(functional, damping, cutoff, cn_cutoff)"
        )
    return d3.to(device=device, dtype=dtype)


def add_dispersion(out: Dict[str, torch.Tensor], d3: D3Dispersion, atoms_list) -> Dict[str, torch.Tensor]:
    """A model's ``compute_properties`` output for ``atoms_list`` (in that order) plus their D3 terms: the same
    keys (forces, stress, virials as ``out`` has them), summed; D3's energies alone under "dispersion_energy"."""
    graph, vectors = d3.pair_lists.edges(atoms_list, d3.cutoff, dtype=d3.dtype)
    extra = properties_from_edges(
        d3,
        graph.to(d3.device),
        vectors.to(d3.device),
        forces="forces" in out,
        stress="stress" in out,
        virials="virials" in out,
    )
    total = {k: (v + extra[k] if k in extra else v) for k, v in out.items()}  # a committee's std: unchanged
    if "member_energy" in out:  # a committee's members (M, B)
        total["member_energy"] = out["member_energy"] + extra["energy"]
    total["dispersion_energy"] = extra["energy"]
    return total
