"""A multi-fidelity trim's other fidelity (SevenNet-MF).

SevenNet-MF appends a constant fidelity one-hot to its Linear_1 (Linear_in), Linear_2 (self-connection) and
readout inputs; the exact ports (``convert_sevennet(name, modal=...)``) turn it into biases and per-element
energies, so two fidelities' ports differ only there (and, once the first Linear_in is folded into the species
embedding, in that embedding and the first self-connection that reads it). The radial weights, all that a spline
trim changes, are shared: the trim of fidelity B is the trim of fidelity A with every number in which the ports
of A and B differ taken from B.
"""

from __future__ import annotations

import torch

from ..model import FacetModel
from .spline_fit import fold_first_linear


def other_fidelity(trim: FacetModel, port: FacetModel, other_port: FacetModel) -> FacetModel:
    """``trim`` (fitted on ``port``) with ``other_port``'s biases, embedding and per-element energies."""
    a, b = port.double(), other_port.double()
    if not trim.config["first_linear_in"]:
        a, b = fold_first_linear(a), fold_first_linear(b)
    differ = {k for k in a.config if a.config[k] != b.config.get(k)}
    if differ - {"atomic_energies"}:
        raise ValueError(f"the ports differ in their configs beyond atomic energies: {sorted(differ)}")
    sa, sb = a.state_dict(), b.state_dict()
    if sa.keys() != sb.keys():
        raise ValueError("the ports have different parameters: not two fidelities of one model")
    state = trim.state_dict()
    for k in sa:
        if torch.equal(sa[k], sb[k]):
            continue
        if k not in state or state[k].shape != sb[k].shape:
            raise ValueError(f"{k} differs between the fidelities but the trim has no such parameter")
        state[k] = sb[k].to(state[k].dtype)
    out = FacetModel(**dict(trim.config, atomic_energies=b.config["atomic_energies"])).to(trim.dtype)
    out.load_state_dict(state, strict=True)
    out.metadata = dict(trim.metadata, source=other_port.metadata.get("source"))
    return out.eval()
