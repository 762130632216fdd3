"""cuEquivariance backend: the convolution as NVIDIA's segmented polynomial, gather and scatter fused.

Per input block b, one segmented tensor product with subscripts ``uv,iu,jv,kuv+ijk``:

    out[e -> i][k, u] += w_e[p, u] * sum_{i j} C^(p)_{i j k} x_{j(e)}[i, u] Y_j(r_e)      (v = 1)

one path per Facet path p = (b, l2 -> l3), with facetpot's own coupling tensors C (so no convention of
cuEquivariance's irreps is involved), its weights in facetpot's column order (``mul`` columns per path,
paths in order) and its output segments (2 l3 + 1, mul) in path order. The per-edge weights are
w = b(r) W (E, num_weights); the senders' features are gathered and the messages summed into the
receivers by the library (``input_indices`` / ``output_indices``). Features go in and come out in
cuEquivariance's ir_mul layout, a transpose per block and per path (per atom, not per edge).

``method``: "uniform_1d" (CUDA kernels of ``cuequivariance-ops-torch-cu12``; every block is one call,
so all its segments share one extent) or "naive" (the library's torch einsums, any device: the CPU
path and the tests). Default: uniform_1d on a machine with CUDA, naive otherwise. Needs
``pip install facetpot[cueq]``; eager and ``torch.compile`` (TorchScript exports use density or edgewise).
"""

import copy
from typing import List

import torch
from torch import nn

from .backend import ConvolutionBackend
from ..conv_paths import ConvolutionPaths
from ..edges import EdgeData


def _libraries():
    try:
        import cuequivariance as cue  # lazy: optional dependency (facetpot[cueq])
        import cuequivariance_torch as cuet  # lazy: optional dependency (facetpot[cueq])
    except ImportError as exc:
        raise ImportError(
            "the cueq convolution backend needs cuEquivariance: pip install cuequivariance-torch "
            f"(and cuequivariance-ops-torch-cu12 for its CUDA kernels): {exc}"
        ) from exc
    return cue, cuet


def block_polynomial(paths: ConvolutionPaths, b: int):
    """The cuEquivariance polynomial of input block b: inputs [w (E, paths x mul), x (N, (2l1+1) mul), Y]."""
    cue, _ = _libraries()
    mul, l1 = paths.irreps_in[b][0], paths.irreps_in[b][1]
    d = cue.SegmentedTensorProduct.from_subscripts("uv,iu,jv,kuv+ijk")
    x_seg = d.add_segment(1, (2 * l1 + 1, mul))
    y_segs = [d.add_segment(2, (2 * l2 + 1, 1)) for l2 in range(paths.sh_lmax + 1)]
    for k in paths.blocks[b].paths:
        p = paths.paths[k]
        d.add_path(None, x_seg, y_segs[p.l2], None, c=paths.cg[k].numpy(), dims={"u": mul, "v": 1})
    return cue.SegmentedPolynomial.eval_last_operand(d).flatten_coefficient_modes().squeeze_modes()


class CueqBackend(ConvolutionBackend):
    name = "cueq"
    scriptable = False

    def __init__(self, paths: ConvolutionPaths, method: str = ""):
        super().__init__(paths)
        _, cuet = _libraries()
        self.method = method or ("uniform_1d" if torch.cuda.is_available() else "naive")
        self.blocks: List[int] = [layout.block for layout in paths.blocks if layout.num_paths > 0]
        polys = [cuet.SegmentedPolynomial(block_polynomial(paths, b), method=self.method) for b in self.blocks]
        # kept out of the module tree: their coefficient buffers are constants of the config, not model
        # state (a model file must not depend on the backend), and a float32 round trip must not round them
        self._polys = {"cpu": polys}

    def _polys_on(self, device: torch.device) -> List[nn.Module]:
        key = str(device)
        if key not in self._polys:
            self._polys[key] = [copy.deepcopy(p).to(device) for p in self._polys["cpu"]]
        return self._polys[key]

    def forward(self, blocks: List[torch.Tensor], weights: torch.Tensor, edges: EdgeData) -> List[torch.Tensor]:
        w = torch.matmul(edges.radial, weights)  # (E, num_weights)
        n_recv = edges.num_receivers
        shape = w.new_empty(n_recv, 0)
        out: List[torch.Tensor] = []
        for poly, b in zip(self._polys_on(w.device), self.blocks):
            x, wofs, dims = blocks[b], self.block_weight_offset[b], self.block_path_dims[b]
            mul = x.shape[1]
            if edges.senders.numel() == 0:  # the library reads an empty index as "no index"
                out.extend(w.new_zeros(n_recv, mul, d) for d in dims)
                continue
            x_irmul = x.transpose(1, 2).reshape(x.shape[0], -1)
            y = poly(
                [w.narrow(1, wofs, len(dims) * mul), x_irmul, edges.sh],
                input_indices={1: edges.senders},
                output_shapes={0: shape},
                output_indices={0: edges.receivers},
            )[0]
            for seg in torch.split(y, [d * mul for d in dims], dim=1):
                out.append(seg.reshape(n_recv, -1, mul).transpose(1, 2))
        return out
