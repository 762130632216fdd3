"""The per-edge products of spherical harmonics and radial basis functions, the density backend's basis table.

    T[e, a, k] = Y_a(r_e) b_k(r_e)                       (E, (l_max+1)^2, K)

backward:  dY[e, a] = sum_k g[e, a, k] b_k(r_e),   db[e, k] = sum_a Y_a(r_e) g[e, a, k]

as two batched matrix-vector products (one pass over g each; autograd's graph of the broadcast product
multiplies and then sums, two passes each). The backward is made of differentiable ops (double backward).
"""

import torch


def sh_radial_product(sh: torch.Tensor, radial: torch.Tensor) -> torch.Tensor:
    """sh (E, A), radial (E, K) -> (E, A, K)."""
    if torch.jit.is_scripting():
        return sh.unsqueeze(2) * radial.unsqueeze(1)
    return _eager_product(sh, radial)


@torch.jit.unused
def _eager_product(sh: torch.Tensor, radial: torch.Tensor) -> torch.Tensor:
    if torch.compiler.is_compiling():
        return sh.unsqueeze(2) * radial.unsqueeze(1)
    return _Product.apply(sh, radial)


class _Product(torch.autograd.Function):
    @staticmethod
    def forward(ctx, sh, radial):
        ctx.save_for_backward(sh, radial)
        return sh.unsqueeze(2) * radial.unsqueeze(1)

    @staticmethod
    def backward(ctx, g):
        sh, radial = ctx.saved_tensors
        g_sh = torch.bmm(g, radial.unsqueeze(2)).squeeze(2) if ctx.needs_input_grad[0] else None
        g_radial = torch.bmm(sh.unsqueeze(1), g).squeeze(1) if ctx.needs_input_grad[1] else None
        return g_sh, g_radial
