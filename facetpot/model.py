"""The Facet model: species embedding -> interaction blocks -> per-atom energies.

    E_i = E0[s_i] + sigma[s_i] * (e(h_i^(T)) - e_iso[s_i])

h^(0) is a learned embedding of the species; each interaction block (see ``nn.interaction``)
mixes neighbour features through the spline-weighted convolution and a nonlinearity; e is a linear
readout of the last layer's scalars. Subtracting e_iso (the readout of an atom with no neighbours)
makes an isolated atom's energy exactly its reference E0, and the per-species scale sigma sets
the size of the interaction energy. Both are fitted from data by the trainer.

The model sees the structure only through species and edge vectors r_ij = x_j - x_i (+ cell
shifts), so energies are translation invariant by construction; forces, stress and virials follow
from dE/dr_ij (``facetpot.derivatives``).
"""

import copy
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import torch
from ase.data import chemical_symbols
from torch import nn

from .nn.convolution import BACKENDS
from .nn.edges import EdgeData
from .nn.exact_buffers import ExactBuffers
from .nn.frozen_cache import module_tensors, remembered
from .nn.interaction import InteractionBlock
from .nn.irreps import parse_irreps
from .nn.irreps_linear import IrrepsLinear
from .nn.s2_grid_mixing import GridOptions
from .nn.bessel_radial import BesselRadialBasis
from .nn.gate import SILU_NORM
from .nn.spherical_harmonics import EdgeSphericalHarmonics
from .nn.spline_radial import SplineRadialBasis

#: Facet-S: the defaults of ``build_model()``.
DEFAULT_CONFIG: Dict[str, Any] = {
    "hidden_irreps": "128x0e+64x1o+32x2e",
    "lmax": 2,
    "num_layers": 3,
    "cutoff": 6.0,
    "num_radial": 8,
    "envelope_p": 6,
    "species": list(range(1, 95)),
    "nonlinearity": "s2_mlp",
    "parity": True,
    "grid_channels": 32,
    "grid_hidden": 64,
    "grid_activation": "quadratic",
    "grid_degree": 0,
    "avg_num_neighbors": 40.0,
    "neighbor_norm_exponent": 0.7,
    "atomic_energies": None,
    "scale": 1.0,
    # radial part: "spline" (Facet: weights linear in cubic B-splines) or "bessel_mlp" (NequIP /
    # SevenNet: Bessel functions times a cutoff into a per-layer MLP of ``radial_hidden`` widths)
    "radial": "spline",
    "radial_hidden": [64, 64],
    "cutoff_fn": "polynomial",  # "polynomial" (degree envelope_p) or "xplor" (switched on from cutoff_on)
    "cutoff_on": None,
    "spline_start": 0.0,  # first spline knot r_0 (Å): splines spread over [r_0, cutoff]
    "radial_rank": 0,  # spline: > 0 makes each layer's (K, n_weights) weight matrix a product of rank R (or a list: R per layer)
    "gate_activation": "sigmoid",  # gate nonlinearity: "sigmoid" or "silu" (SevenNet)
    "silu_norm": SILU_NORM,  # second-moment normalisation of SiLU (e3nn's sampled value in SevenNet ports)
    "self_connection_bias": True,  # a bias on the scalar outputs of each layer's self-connection (none in SevenNet)
    # False: the first layer has no Linear_in (the species embedding, a learned table, already is any linear map of it)
    "first_linear_in": True,
    # a bias on the scalar outputs of each layer's Linear_in (SevenNet-MF's fidelity one-hot, fixed at conversion)
    "linear_in_bias": False,
}
RADIAL_KINDS = ("spline", "bessel_mlp")


def layer_ranks(rank: Union[int, Sequence[int]], num_layers: int) -> List[int]:
    """``radial_rank`` R per layer from one R or a list of them (0: full rank)."""
    try:
        ranks = [int(r) for r in rank] if isinstance(rank, (list, tuple)) else [int(rank)] * num_layers
    except (TypeError, ValueError):
        raise ValueError(f"radial_rank must be an integer or a list of one per layer, got {rank!r}") from None
    if len(ranks) != num_layers:
        raise ValueError(f"radial_rank: {len(ranks)} ranks given for {num_layers} layers")
    return ranks


def _check_config(config: Dict[str, Any]) -> Dict[str, Any]:
    unknown = sorted(set(config) - set(DEFAULT_CONFIG))
    if unknown:
        raise ValueError(f"unknown model option(s) {unknown}; known options: {sorted(DEFAULT_CONFIG)}")
    cfg = copy.deepcopy(DEFAULT_CONFIG)
    cfg.update(copy.deepcopy(config))
    cfg["species"] = sorted(int(z) for z in cfg["species"])
    if not cfg["species"] or len(set(cfg["species"])) != len(cfg["species"]):
        raise ValueError("species must be a non-empty list of distinct atomic numbers")
    if any(z < 1 or z > 118 for z in cfg["species"]):
        raise ValueError(f"species must be atomic numbers 1..118, got {cfg['species']}")
    if float(cfg["cutoff"]) <= 0:
        raise ValueError(f"cutoff must be positive, got {cfg['cutoff']}")
    if int(cfg["num_layers"]) < 1:
        raise ValueError("num_layers must be at least 1")
    ranks = layer_ranks(cfg["radial_rank"], int(cfg["num_layers"]))
    cfg["radial_rank"] = ranks[0] if len(set(ranks)) == 1 else ranks
    for key in ("atomic_energies", "scale"):
        v = cfg[key]
        if isinstance(v, dict):
            cfg[key] = {int(z): float(e) for z, e in v.items()}
            missing = sorted(set(cfg["species"]) - set(cfg[key]))
            if missing:
                raise ValueError(f"{key} lacks species {missing}")
    return cfg


def _hidden_irreps(cfg: Dict[str, Any]):
    """The hidden features' irreps (all labelled even where ``parity`` is off: SO(3) only), checked."""
    hidden = parse_irreps(cfg["hidden_irreps"])
    if not bool(cfg["parity"]):
        hidden = parse_irreps("+".join(f"{m}x{l}e" for m, l, _ in hidden))
    if hidden[0][1] != 0:
        raise ValueError("hidden_irreps needs scalars (0e)")
    if max(l for _, l, _ in hidden) > int(cfg["lmax"]):
        raise ValueError(f"hidden_irreps has l above lmax={int(cfg['lmax'])}")
    return hidden


def _radial_basis(cfg: Dict[str, Any]):
    """(radial basis, hidden sizes of the per-layer radial MLPs or None): splines, or Bessel functions + MLPs."""
    if cfg["radial"] not in RADIAL_KINDS:
        raise ValueError(f"radial must be one of {RADIAL_KINDS}, got {cfg['radial']!r}")
    cutoff, k, p = float(cfg["cutoff"]), int(cfg["num_radial"]), int(cfg["envelope_p"])
    if cfg["radial"] == "spline":
        return SplineRadialBasis(cutoff, k, p, cfg["cutoff_fn"], cfg["cutoff_on"], float(cfg["spline_start"])), None
    return BesselRadialBasis(cutoff, k, p, cfg["cutoff_fn"], cfg["cutoff_on"]), [int(h) for h in cfg["radial_hidden"]]


def _interaction_blocks(cfg: Dict[str, Any], hidden, radial_hidden) -> List[InteractionBlock]:
    """The layers: scalars in, ``hidden`` between layers, scalars out of the last."""
    mul0, n = hidden[0][0], int(cfg["num_layers"])
    grid = GridOptions(
        int(cfg["grid_channels"]), int(cfg["grid_hidden"]), cfg["grid_activation"], int(cfg["grid_degree"])
    )
    ranks = layer_ranks(cfg["radial_rank"], n)
    layers: List[InteractionBlock] = []
    irreps = [(mul0, 0, 1)]
    for t in range(n):
        out = [(mul0, 0, 1)] if t == n - 1 else hidden
        layers.append(
            InteractionBlock(
                irreps,
                out,
                int(cfg["lmax"]),
                bool(cfg["parity"]),
                int(cfg["num_radial"]),
                float(cfg["avg_num_neighbors"]),
                float(cfg["neighbor_norm_exponent"]),
                nonlinearity=cfg["nonlinearity"],
                grid=grid,
                radial_hidden=radial_hidden,
                gate_activation=cfg["gate_activation"],
                silu_norm=float(cfg["silu_norm"]),
                radial_rank=int(ranks[t]),
                self_connection_bias=bool(cfg["self_connection_bias"]),
                linear_in=bool(cfg["first_linear_in"]) or t > 0,
                linear_in_bias=bool(cfg["linear_in_bias"]),
            )
        )
        irreps = out
    return layers


class FacetModel(ExactBuffers):
    """Per-atom energies from species and edge vectors. Build it with :func:`build_model`."""

    __jit_unused_properties__ = [
        "backend",
        "backend_scriptable",
    ]  # Python-side information, not part of the exported computation

    def __init__(self, **config: Any):
        super().__init__()
        cfg = _check_config(config)
        self.config = cfg
        #: provenance saved beside the weights in model files (``source``, ``spline_fit``, ...; set by ports and
        #: loaders, read back by ``inference.model_source``); never read by the computation
        self.metadata: Dict[str, Any] = {}
        self.cutoff = float(cfg["cutoff"])
        self.species = list(cfg["species"])
        hidden = _hidden_irreps(cfg)
        mul0 = hidden[0][0]

        z_to_index = torch.full((119,), -1, dtype=torch.long)
        for k, z in enumerate(self.species):
            z_to_index[z] = k
        self.register_buffer("z_to_index", z_to_index, persistent=False)

        self.embedding = nn.Embedding(len(self.species), mul0)
        self.radial, radial_hidden = _radial_basis(cfg)
        self.sh = EdgeSphericalHarmonics(int(cfg["lmax"]), bool(cfg["parity"]))
        self.layers = nn.ModuleList(_interaction_blocks(cfg, hidden, radial_hidden))
        self.readout = IrrepsLinear([(mul0, 0, 1)], [(1, 0, 1)])

        e0 = cfg["atomic_energies"]
        sc = cfg["scale"]
        # float64 masters (ExactBuffers): reference energies of -1000 eV keep their meV in float32 files
        self.register_constant(
            "atomic_energies",
            torch.tensor([e0[z] if isinstance(e0, dict) else 0.0 for z in self.species], dtype=torch.float64),
        )
        self.register_constant(
            "scale",
            torch.tensor([sc[z] if isinstance(sc, dict) else float(sc) for z in self.species], dtype=torch.float64),
        )

    # ------------------------------------------------------------------ helpers
    @property
    def dtype(self) -> torch.dtype:
        return self.embedding.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.embedding.weight.device

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    def species_index(self, numbers: torch.Tensor) -> torch.Tensor:
        """Atomic numbers -> model species indices; raises ValueError naming unknown elements."""
        numbers = torch.as_tensor(numbers, dtype=torch.long, device=self.z_to_index.device)
        bad = (numbers < 1) | (numbers > 118)
        idx = self.z_to_index[numbers.clamp(0, 118)]
        bad = bad | (idx < 0)
        if bool(bad.any()):
            zs = sorted(set(int(z) for z in numbers[bad].tolist()))
            names = [chemical_symbols[z] if 0 < z < len(chemical_symbols) else f"Z={z}" for z in zs]
            known = "".join(f" {chemical_symbols[z]}" for z in self.species)
            raise ValueError(f"element(s) {', '.join(names)} not covered by this model; it knows:{known}")
        return idx

    def set_atomic_energies(self, energies: Dict[int, float]) -> None:
        """Per-species reference energies E0 (eV): the energy of an isolated atom."""
        self._set_per_species("atomic_energies", energies)

    def set_scale(self, scale: Dict[int, float]) -> None:
        """Per-species scale of the interaction energy."""
        self._set_per_species("scale", scale)

    def _set_per_species(self, name: str, values: Dict[int, float]) -> None:
        master = self._masters[name].clone()
        for z, v in values.items():
            if int(z) not in self.species:
                raise ValueError(f"{name}: element Z={z} is not among the model's species")
            master[self.species.index(int(z))] = float(v)
        self.config[name] = {z: float(master[k]) for k, z in enumerate(self.species)}
        self.register_constant(name, master)
        cur = self.embedding.weight
        setattr(self, name, master.to(device=cur.device, dtype=cur.dtype))

    def set_backend(self, name: str, **options: Any) -> "FacetModel":
        """Compute every convolution with backend ``name``: "density" (default; atom-centred GEMMs),
        "edgewise" (the reference), "triton" (fused GPU kernels for the convolutions and the grid
        layers), or any other in ``facetpot.nn.convolution.BACKENDS``; same numbers. ``options`` go to the
        backend, e.g. ``chunk_atoms`` for "density": above this many
        atoms, recompute per-chunk intermediates in the backward pass instead of storing them
        (bounded memory for 100k-atom cells; 0 = never; default 4096 on CPU, 32768 on GPU)."""
        if name not in BACKENDS:
            raise ValueError(f"unknown convolution backend {name!r}; known: {', '.join(sorted(BACKENDS))}")
        for layer in self.layers:
            layer.conv.set_backend(name, **options)
            if layer.mixing is not None:  # the triton backend fuses the grid layer too
                layer.mixing.fused = name == "triton"
        return self

    def keep_frozen_tables(self) -> None:
        """For a scripted export of frozen weights (``DeployedFacet``): every convolution keeps in the module what
        its backend derives from the weights alone (eager calls remember it in ``nn/frozen_cache`` instead,
        which TorchScript cannot run). Call it again after any change of weights, dtype or backend."""
        for layer in self.layers:
            layer.conv.keep_frozen_tables()

    @property
    def backend(self) -> str:
        """Name of the convolution backend in use (see :meth:`set_backend`)."""
        return self.layers[0].conv.backend.name

    @property
    def backend_scriptable(self) -> bool:
        """Whether TorchScript can script the backend in use (not the Triton or cuEquivariance ones)."""
        return self.layers[0].conv.backend.scriptable

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # ------------------------------------------------------------------ forward
    # The pieces below are also the steps of a LAMMPS domain (``facetpot.export``): edge data once,
    # then layer by layer, with ghost-atom features exchanged between layers.
    def edges(self, edge_index: torch.Tensor, edge_vec: torch.Tensor, num_receivers: int, num_senders: int) -> EdgeData:
        """The edges' data shared by all layers: spline basis b(r) (E, K), spherical harmonics
        Y(r) (E, (lmax+1)^2) and the backend's per-graph tables (all layers run one backend)."""
        r = torch.sqrt((edge_vec * edge_vec).sum(-1) + 1e-30)
        edges = EdgeData(
            edge_index[0], edge_index[1], num_receivers, num_senders, edge_vec, self.radial(r), self.sh(edge_vec), []
        )
        edges.tables = self.layers[0].conv.backend.prepare(edges)
        return edges

    def embed(self, species: torch.Tensor) -> List[torch.Tensor]:
        """Layer-0 features: a learned vector of scalars per species, as blocks [(N, u, 1)]."""
        return [self.embedding(species).unsqueeze(-1)]

    def interaction(self, t: int, blocks: List[torch.Tensor], edges: EdgeData) -> List[torch.Tensor]:
        """Layer t: features of the sending atoms in, features of the receiving atoms out."""
        # TorchScript indexes a ModuleList only with a constant: the exported per-layer entry point (LAMMPS
        # domains, one call per layer) passes t at run time, so the layer is found by iterating
        out = blocks
        for k, layer in enumerate(self.layers):
            if k == t:
                out = layer(blocks, edges)
        return out

    def readout_energy(self, blocks: List[torch.Tensor]) -> torch.Tensor:
        """e(h): the linear readout of the last layer's scalars, (N,)."""
        return self.readout(blocks)[0].reshape(-1)

    def readouts(self, species: torch.Tensor, edges: EdgeData) -> torch.Tensor:
        """e(h^(T)) of every atom: embedding, all layers, readout (by the layer runner where one is set and
        can: :meth:`use_layer_runner`)."""
        blocks = self.embed(species)
        if not torch.jit.is_scripting():
            e = self._run_layers(blocks[0], edges)
            if e is not None:
                return e
        for t in range(self.num_layers):
            blocks = self.interaction(t, blocks, edges)
        return self.readout_energy(blocks)

    def use_layer_runner(self, runner: Optional[Callable[..., Optional[torch.Tensor]]]) -> None:
        """From now on :meth:`readouts` first asks ``runner(model, features (N, u, 1), edges)`` for e(h^(T)) and runs
        the Python layers where it returns None (``facetpot.inference.frozen_program.run_layers``: the C++ engine
        for frozen weights); None removes it. Kept outside the modules' state: TorchScript never sees it."""
        self.__dict__["_layer_runner"] = runner

    @torch.jit.unused
    def _run_layers(self, features: torch.Tensor, edges: EdgeData) -> Optional[torch.Tensor]:
        runner = self.__dict__.get("_layer_runner")
        return None if runner is None else runner(self, features, edges)

    def isolated_atom_energies(self, species: torch.Tensor) -> torch.Tensor:
        """e_iso: the readout of atoms of the given species with no neighbours."""
        n = species.shape[0]
        no_edges = torch.zeros(2, 0, dtype=torch.long, device=species.device)
        no_vectors = torch.zeros(0, 3, dtype=self.atomic_energies.dtype, device=species.device)
        return self.readouts(species, self.edges(no_edges, no_vectors, n, n))

    def forward(self, species: torch.Tensor, edge_index: torch.Tensor, edge_vec: torch.Tensor) -> torch.Tensor:
        """Per-atom energies (N,) in eV.

        species: (N,) model species indices; edge_index: (2, E), row 0 the receiving atom i,
        row 1 its neighbour j; edge_vec: (E, 3) = x_j - x_i + shift, in Å.
        """
        n = species.shape[0]
        e = self.readouts(species, self.edges(edge_index, edge_vec, n, n))
        # reference: the same network for one atom of each species present, without neighbours
        present, which = torch.unique(species, return_inverse=True)
        if torch.jit.is_scripting():
            e_iso = self.isolated_atom_energies(present)
        else:
            e_iso = self._frozen_isolated_atom_energies(present)
        return self.atom_energies(species, e, e_iso[which])

    @torch.jit.unused
    def _frozen_isolated_atom_energies(self, present: torch.Tensor) -> torch.Tensor:
        """:meth:`isolated_atom_energies`, remembered for every species of the model at once while no parameter
        requires a gradient (the calculator, MD, relaxations: a whole network pass per call saved, whatever the
        composition; an isolated atom's readout depends on its species only); any change of a parameter (its
        storage, dtype, device or in-place version) recomputes it."""
        sources = module_tensors(self)
        if torch.compiler.is_compiling() or any(t.requires_grad for t in sources):
            return self.isolated_atom_energies(present)
        e0 = self.atomic_energies
        every = lambda: self.isolated_atom_energies(torch.arange(e0.shape[0], device=e0.device))  # noqa: E731
        return remembered(self, "isolated_atom_energies", sources, every)[present]

    def atom_energies(self, species: torch.Tensor, e: torch.Tensor, e_iso: torch.Tensor) -> torch.Tensor:
        """E_i = E0[s_i] + sigma[s_i] (e_i - e_iso,i): readouts e and isolated-atom readouts e_iso, per atom."""
        return self.atomic_energies[species] + self.scale[species] * (e - e_iso)


def build_model(**config: Any) -> FacetModel:
    """A randomly initialised Facet model; no arguments give Facet-S (see ``DEFAULT_CONFIG``)."""
    return FacetModel(**config)
