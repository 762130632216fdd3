"""SevenNet checkpoints -> facetpot models, exactly (``facet convert sevennet NAME_OR_CHECKPOINT -o OUT.pt``).

SevenNet (Park et al., J. Chem. Theory Comput. 20, 4857 (2024); MIT licence, built on NequIP and
e3nn) is a NequIP-style network that facetpot expresses with ``radial="bessel_mlp"``,
``nonlinearity="gate"``, ``gate_activation="silu"`` and ``parity=False``. Stage by stage (SevenNet ->
facetpot, all factors exact):

    one-hot (89 types, alphabetical) @ W / sqrt(89)     -> embedding rows, in atomic-number order
    Bessel (trained frequencies) x XPLOR / polynomial   -> BesselRadialBasis
    radial MLP [K, 64, 64] (no bias), last layer W2     -> RadialMLP, conv.radial_weight (columns
                                                           of paths whose stored w3j has the other
                                                           sign flipped: an older e3nn convention)
    sum over neighbours / denominator                   -> avg_num_neighbors = denominator, exponent 1
    Linear_1, Linear_2, self-connection (no bias)       -> linear_in, linear_out, self_connection
                                                           (the scalars|gates block split in two)
    gate: SiLU on scalars and gates                     -> Gate("silu"), e3nn's SiLU constant
    readout 128 -> 64 -> 1, no activation               -> one 128 -> 1 matrix W1 W2 / sqrt(64)
    E_i = shift[s] + scale[s] e_i                        -> sigma = scale, E0 = shift + scale e_iso

Multi-fidelity checkpoints (SevenNet-MF-0: ``modal_list`` R2SCAN, PBE) append a one-hot of the fidelity to the
scalar inputs of Linear_1, Linear_2 and the readout's first layer, and shift energies per fidelity. With the
fidelity m chosen at conversion (``modal=``), each of those is an ordinary linear map plus a bias: for f scalar
inputs, W' = W sqrt(f / (f + M)) (e3nn normalises by the fan-in f + M) and b = W_modal[m] / sqrt(f + M)
(Linear_1 -> ``linear_in_bias``, Linear_2 -> the self-connection's bias, readout -> a constant in E0).

Needs the ``sevenn`` package only here (``pip install facetpot[sevennet]``): to find the checkpoints
it ships by name and for e3nn's SiLU constant; the converted model never needs it. Checkpoints are
pickles: convert only files you trust (the ones inside the sevenn wheel are).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Dict, List, Tuple

import torch
from e3nn import o3
from e3nn.math import normalize2mom

from ..model import FacetModel

#: configurations this converter reproduces exactly; anything else is refused with the key's name
SUPPORTED = {
    "interaction_type": "nequip",
    "self_connection_type": "linear",
    "is_parity": False,
    "readout_as_fcn": False,
    "use_bias_in_linear": False,
    "act_radial": "silu",
    "_normalize_sph": True,
}
#: sevenn's defaults for keys that later checkpoints (SevenNet-MF-0) leave out of their config
SEVENN_DEFAULTS = {"interaction_type": "nequip", "_normalize_sph": True}
#: multi-fidelity settings the port reproduces (the fidelity one-hot on these layers only)
MODAL_SUPPORTED = {"use_modal_node_embedding": False, "use_modal_wise_scale": False}


class ConversionError(ValueError):
    """The checkpoint cannot be converted exactly: the message says which setting and why."""


def checkpoint_path(name_or_path) -> Path:
    """A checkpoint file, or a name sevenn resolves to one of the checkpoints in its wheel (``7net-0``)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    try:
        from sevenn.util import pretrained_name_to_path  # lazy: optional dependency (facetpot[sevennet])
    except ImportError:
        raise ConversionError(
            f"{name_or_path} is not a file, and names of SevenNet models need the sevenn package: "
            "pip install 'facetpot[sevennet]'"
        ) from None
    try:
        return Path(pretrained_name_to_path(str(name_or_path)))
    except Exception as exc:  # sevenn raises several types for unknown names
        raise ConversionError(
            f"{name_or_path} is neither a checkpoint file nor a SevenNet model name "
            f"sevenn knows (e.g. 7net-0, 7net-l3i5): {exc}"
        ) from None


def read_checkpoint(path: Path) -> Tuple[Dict[str, Any], Dict[str, torch.Tensor]]:
    """(config, state_dict) of a SevenNet checkpoint, checked against what the port supports."""
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(ckpt, dict) or "config" not in ckpt or "model_state_dict" not in ckpt:
        raise ConversionError(f"{path} is not a SevenNet checkpoint (no config / model_state_dict)")
    cfg, sd = ckpt["config"], ckpt["model_state_dict"]
    version = tuple(int(x) for x in str(cfg.get("version", "0")).split(".")[:2])
    if version >= (0, 11):
        raise ConversionError(
            f"{path} was written by sevenn {cfg['version']}; this converter reads the weight "
            "layout of sevenn < 0.11 (SevenNet-0 11Jul2024, SevenNet-l3i5)"
        )
    for key, want in SUPPORTED.items():
        if cfg.get(key, SEVENN_DEFAULTS.get(key)) != want:
            raise ConversionError(f"{path}: {key} = {cfg.get(key)!r}; the port supports {want!r} only")
    if cfg.get("use_modality"):
        for key, want in MODAL_SUPPORTED.items():
            if bool(cfg.get(key, False)) != want:
                raise ConversionError(f"{path}: {key} = {cfg.get(key)!r}; the port supports {want!r} only")
    if cfg["radial_basis"].get("radial_basis_name") != "bessel":
        raise ConversionError(f"{path}: radial basis {cfg['radial_basis']}; the port supports bessel only")
    if cfg["cutoff_function"].get("cutoff_function_name") not in ("XPLOR", "poly_cut"):
        raise ConversionError(f"{path}: cutoff function {cfg['cutoff_function']}; the port supports XPLOR and poly_cut")
    if cfg["act_gate"].get("e") != "silu" or cfg["act_scalar"].get("e") != "silu":
        raise ConversionError(f"{path}: activations {cfg['act_scalar']} / {cfg['act_gate']}; the port supports silu")
    return cfg, sd


def _irreps(text: str) -> List[Tuple[int, int]]:
    return [(mul, ir.l) for mul, ir in o3.Irreps(text)]


def _linear_blocks(flat: torch.Tensor, irreps_in, irreps_out) -> Dict[Tuple[int, int], torch.Tensor]:
    """An e3nn Linear's flat weight -> {(block in, block out): (mul_in, mul_out)} (blocks of equal l)."""
    out, offset = {}, 0
    for i, (mul_in, l_in) in enumerate(irreps_in):
        for o, (mul_out, l_out) in enumerate(irreps_out):
            if l_in == l_out:
                out[(i, o)] = flat[offset : offset + mul_in * mul_out].view(mul_in, mul_out)
                offset += mul_in * mul_out
    if offset != flat.numel():
        raise ConversionError(f"linear weight of {flat.numel()} numbers does not match {irreps_in} -> {irreps_out}")
    return out


def facet_config(cfg: Dict[str, Any], sd: Dict[str, torch.Tensor]) -> Dict[str, Any]:
    """The facetpot model config of a SevenNet checkpoint."""
    cutoff_fn = cfg["cutoff_function"]
    denominators = {float(sd[f"{t}_convolution.denominator"]) for t in range(int(cfg["num_convolution_layer"]))}
    if len(denominators) != 1:
        raise ConversionError(f"layers with different neighbour normalisations {sorted(denominators)}")
    return {
        "hidden_irreps": cfg["irreps_manual"][1],
        "lmax": int(cfg["lmax"]),
        "num_layers": int(cfg["num_convolution_layer"]),
        "cutoff": float(cfg["cutoff"]),
        "num_radial": int(cfg["radial_basis"]["bessel_basis_num"]),
        "envelope_p": int(cutoff_fn.get("poly_cut_p_value", 6)),
        "species": sorted(int(z) for z in cfg["_type_map"]),
        "nonlinearity": "gate",
        "parity": False,
        "avg_num_neighbors": denominators.pop(),
        "neighbor_norm_exponent": 1.0,
        "radial": "bessel_mlp",
        "radial_hidden": [int(h) for h in cfg["weight_nn_hidden_neurons"]],
        "cutoff_fn": "xplor" if cutoff_fn["cutoff_function_name"] == "XPLOR" else "polynomial",
        "cutoff_on": float(cutoff_fn["cutoff_on"]) if cutoff_fn["cutoff_function_name"] == "XPLOR" else None,
        "gate_activation": "silu",
        # e3nn estimates it by sampling; SevenNet uses this number, so the port must too
        "silu_norm": float(normalize2mom(torch.nn.functional.silu).cst),
        # a multi-fidelity model's one-hot of the fidelity: biases on Linear_1 and Linear_2 (the self-connection's)
        "self_connection_bias": bool(cfg.get("use_modality") and cfg.get("use_modal_self_inter_outro")),
        "linear_in_bias": bool(cfg.get("use_modality") and cfg.get("use_modal_self_inter_intro")),
    }


def modal_index(cfg: Dict[str, Any], modal, path: Path) -> Tuple[int, int, str]:
    """(number of fidelities M, index of ``modal``, its SevenNet spelling); (0, -1, "") for a one-fidelity model.
    Names match without regard to case ("r2scan" is SevenNet's "R2SCAN")."""
    if not cfg.get("use_modality"):
        if modal is not None:
            raise ConversionError(f"{path.name} has one fidelity: modal={modal!r} does not apply")
        return 0, -1, ""
    names = dict(cfg["_modal_map"])
    if modal is None:
        raise ConversionError(
            f"{path.name} is a multi-fidelity model: choose its fidelity with modal= "
            f"(facet convert sevennet --modal), one of {', '.join(names)}"
        )
    match = [n for n in names if n.lower() == str(modal).lower()]
    if not match:
        raise ConversionError(f"{path.name}: unknown fidelity {modal!r}; it has {', '.join(names)}")
    return int(cfg["_number_of_modalities"]), int(names[match[0]]), match[0]


def _flipped_columns(sd, key: str, paths) -> torch.Tensor:
    """+-1 per radial-weight column: -1 for paths whose stored w3j is minus today's wigner_3j."""
    signs = []
    for p in paths:
        stored = sd.get(f"{key}.convolution._compiled_main_left_right._w3j_{p.l1}_{p.l2}_{p.l3}")
        sign = 1.0
        if stored is not None:
            now = o3.wigner_3j(p.l1, p.l2, p.l3, dtype=torch.float64)
            if torch.allclose(stored.double(), -now, atol=1e-6):
                sign = -1.0
            elif not torch.allclose(stored.double(), now, atol=1e-6):
                raise ConversionError(f"{key}: stored Clebsch-Gordan tensor of path {p} matches neither sign")
        signs += [sign] * p.mul
    return torch.tensor(signs, dtype=torch.float64)


def convert_sevennet(name_or_path, modal=None) -> FacetModel:
    """The facetpot model (float64) computing what the SevenNet checkpoint computes; ``modal`` names the fidelity
    of a multi-fidelity checkpoint (SevenNet-MF-0: "PBE" or "R2SCAN")."""
    path = checkpoint_path(name_or_path)
    cfg, sd = read_checkpoint(path)
    n_modal, m, modal_name = modal_index(cfg, modal, path)
    sd = {k: v.detach().to(torch.float64) if v.is_floating_point() else v for k, v in sd.items()}
    model = FacetModel(**facet_config(cfg, sd)).double()
    type_map = {int(z): int(i) for z, i in cfg["_type_map"].items()}
    species = model.species
    irreps = [_irreps(text) for text in cfg["irreps_manual"]]
    with torch.no_grad():
        w_emb = sd["onehot_to_feature_x.linear.weight"].view(len(type_map), -1)
        model.embedding.weight.copy_(torch.stack([w_emb[type_map[z]] for z in species]) / math.sqrt(len(type_map)))
        model.radial.frequencies.copy_(sd["edge_embedding.basis_function.coeffs"])
        modal_layers = {
            "intro": n_modal if cfg.get("use_modal_self_inter_intro") else 0,
            "outro": n_modal if cfg.get("use_modal_self_inter_outro") else 0,
        }
        for t, layer in enumerate(model.layers):
            _copy_layer(layer, sd, t, irreps[t], irreps[t + 1], modal_layers, m)
        f = irreps[-1][0][0]
        w1 = sd["reduce_input_to_hidden.linear.weight"]
        w2 = sd["reduce_hidden_to_energy.linear.weight"].view(-1, 1)
        hidden = w2.shape[0]
        # the readout's fidelity rows: a constant c per atom added to e_i before the scale
        k = n_modal if cfg.get("use_modal_output_block") else 0
        c = float(w1[f * hidden :].view(k, hidden)[m] @ w2[:, 0]) / math.sqrt((f + k) * hidden) if k else 0.0
        w1 = w1[: f * hidden].view(f, hidden)
        model.readout.weights[0].copy_(w1 @ w2 / math.sqrt(hidden) * math.sqrt(f / (f + k)))
        # E_i = shift + scale (e_i + c)  ==  E0 + sigma (e_i - e_iso)  with sigma = scale, E0 = shift + scale (e_iso + c)
        e_iso = model.isolated_atom_energies(torch.arange(len(species)))
    shift, scale = sd["rescale_atomic_energy.shift"], sd["rescale_atomic_energy.scale"]
    shift = shift[m] if shift.ndim == 2 else shift  # per fidelity (use_modal_wise_shift)
    model.set_scale({z: float(scale[type_map[z]]) for z in species})
    model.set_atomic_energies(
        {z: float(shift[type_map[z]] + scale[type_map[z]] * (e_iso[k] + c)) for k, z in enumerate(species)}
    )
    fidelity = f", fidelity {modal_name}" if modal_name else ""
    model.metadata = {
        "source": f"SevenNet checkpoint {path.name} (sevenn config version {cfg.get('version')}){fidelity}",
        "licence": "MIT (SevenNet, Copyright (c) 2024 Yutack Park)",
        "citation": "Park et al., J. Chem. Theory Comput. 20, 4857 (2024), doi:10.1021/acs.jctc.4c00190",
    }
    return model.eval()


def _modal_split(blocks, n_in: int, fan: int, n_modal: int, m: int):
    """A linear layer fed [inputs..., M x 0e one-hot]: (weights without the one-hot rows, rescaled to facetpot's
    1/sqrt(fan) on scalar outputs, and {output block: bias}) for fidelity m."""
    if not n_modal:
        return blocks, {}
    weights, biases = {}, {}
    for (i, o), w in blocks.items():
        if i == n_in:
            biases[o] = w[m] / math.sqrt(fan + n_modal)
        else:
            weights[(i, o)] = w * math.sqrt(fan / (fan + n_modal)) if i == 0 else w
    return weights, biases


def _copy_layer(layer, sd, t: int, irreps_x, irreps_next, modal_layers: Dict[str, int], m: int) -> None:
    """Block t's weights; SevenNet's gate input is one 0e block [scalars | gates] that facetpot keeps as two.
    ``modal_layers``: the fidelity one-hot's width on Linear_1 ("intro") and Linear_2 ("outro"), 0 for none;
    ``m``: the fidelity's index."""
    n_in = modal_layers["intro"]
    blocks = _linear_blocks(sd[f"{t}_self_interaction_1.linear.weight"], irreps_x + [(n_in, 0)] * bool(n_in), irreps_x)
    weights, biases = _modal_split(blocks, len(irreps_x), irreps_x[0][0], n_in, m)
    for b, w in enumerate(weights.values()):
        layer.linear_in.weights[b].copy_(w)
    for o, bias in biases.items():
        layer.linear_in.biases[o].copy_(bias)
    n_scalars = irreps_next[0][0]
    gated = [(mul, l) for mul, l in irreps_next if l > 0]
    gate_in = [(n_scalars + sum(m for m, _ in gated), 0)] + gated
    # facetpot's blocks [scalars, gates, gated...] as (SevenNet block, first column, last column)
    split = (
        [(0, 0, n_scalars)] + ([(0, n_scalars, None)] if gated else []) + [(k + 1, 0, None) for k in range(len(gated))]
    )
    sc = _linear_blocks(sd[f"{t}_self_connection_intro.linear.weight"], irreps_x, gate_in)
    for k, (o, lo, hi) in enumerate(split):
        src = [w for (i, oo), w in sc.items() if oo == o]
        if src:  # block 0's l > 0 outputs have no input of their l: zero in both codes
            layer.self_connection.weights[k].copy_(src[0][:, lo:hi])
        layer.self_connection.biases[k].zero_()
    paths = layer.conv.paths.paths
    l_mid = sorted({p.l3 for p in paths})
    irreps_mid = [(sum(p.mul for p in paths if p.l3 == l), l) for l in l_mid]
    n_out = modal_layers["outro"]
    out = _linear_blocks(sd[f"{t}_self_interaction_2.linear.weight"], irreps_mid + [(n_out, 0)] * bool(n_out), gate_in)
    out, out_biases = _modal_split(out, len(irreps_mid), irreps_mid[0][0], n_out, m)
    for k, (o, lo, hi) in enumerate(split):
        layer.linear_out.weights[k].copy_(out[(l_mid.index(gate_in[o][1]), o)][:, lo:hi])
        if o in out_biases:  # summed with the self-connection before the gate: its bias carries Linear_2's
            layer.self_connection.biases[k].copy_(out_biases[o][lo:hi])
    key = f"{t}_convolution"
    mlp = layer.conv.radial_mlp
    for k in range(len(mlp.weights)):
        mlp.weights[k].copy_(sd[f"{key}.weight_nn.layer{k}.weight"])
    last = sd[f"{key}.weight_nn.layer{len(mlp.weights)}.weight"]
    layer.conv.radial_weight.copy_(last * _flipped_columns(sd, key, paths))
