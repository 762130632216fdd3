"""The Triton backend's kernels under TRITON_INTERPRET=1, on CPU tensors, against the torch formulas
(forward, backward, double backward; float32 and float64; awkward graphs), and whole models on the
triton backend against the reference backend (energies, forces, stress, training gradients)."""

from __future__ import annotations

import os

os.environ["TRITON_INTERPRET"] = "1"  # before triton is imported: the kernels then run on the CPU

import pytest  # noqa: E402
import torch  # noqa: E402

pytest.importorskip("triton")

from facetpot.testing import SEVENNET_LIKE, model_outputs, small_model, awkward_structures  # noqa: E402
from facetpot.structure.graph import atoms_to_graph  # noqa: E402
from facetpot.nn.conv_paths import ConvolutionPaths  # noqa: E402
from facetpot.nn.conv.triton_kernels import (  # noqa: E402
    csr_tables,
    fused_conv_block,
    fused_conv_block_backward,
)
from facetpot.nn.s2_grid import grid_matrices  # noqa: E402
from facetpot.nn.s2_grid_triton_kernels import (  # noqa: E402
    fused_grid_mlp,
    fused_grid_mlp_backward,
)
from facetpot.derivatives import compute_properties  # noqa: E402
from facetpot.testing import conv_block_oracle, grid_mlp_oracle  # noqa: E402

SH_LMAX = 2


def awkward_graph(n_atoms=7, seed=0):
    """Edges (receivers, senders): atom 5 isolated (neither sends nor receives), atom 6 only sends,
    a repeated edge, and atom 0 receiving 230 edges (hundreds of neighbours, periodic images)."""
    g = torch.Generator().manual_seed(seed)
    rcv = [0] * 230 + torch.randint(1, 5, (40,), generator=g).tolist() + [2, 2]
    snd = torch.randint(0, 5, (230,), generator=g).tolist() + torch.randint(0, 5, (40,), generator=g).tolist() + [6, 6]
    return torch.tensor(rcv), torch.tensor(snd), n_atoms


def block_inputs(l1, mul, dtype, seed=0, n_radial=5):
    """Inputs of one input block (mul x l1) with every path to l3 <= 2 (the block's coupling table)."""
    torch.manual_seed(seed)
    paths = ConvolutionPaths([(mul, l1, 1)], SH_LMAX, False, [(l, 1) for l in range(3)])
    cc, colpath = paths.block_coupling(0)
    l_lo, l_hi = paths.blocks[0].l2_lo, paths.blocks[0].l2_hi
    rcv, snd, n = awkward_graph(seed=seed)
    e = rcv.shape[0]
    x = torch.randn(n, mul, 2 * l1 + 1, dtype=dtype)
    sh = torch.randn(e, (SH_LMAX + 1) ** 2, dtype=dtype)
    radial = torch.randn(e, n_radial, dtype=dtype)
    wx = torch.randn(n_radial, mul, cc.shape[1], dtype=dtype)
    tables = csr_tables(rcv, snd, n, n)
    sh_cols = (l_lo * l_lo, l_hi * l_hi - l_lo * l_lo)
    return (x, sh, radial, wx, cc.to(dtype)), (snd, rcv), tables, sh_cols


def run_both(l1, mul, dtype, seed=0):
    (x, sh, radial, wx, cc), (snd, rcv), tables, (lo, d2) = block_inputs(l1, mul, dtype, seed)
    ins = [t.clone().requires_grad_() for t in (x, sh, radial, wx)]
    refs = [t.clone().requires_grad_() for t in (x, sh, radial, wx)]
    out = fused_conv_block(*ins, cc, snd, rcv, *tables, lo, d2)
    ref = conv_block_oracle(*refs, cc, snd, rcv, x.shape[0], lo, d2)
    return out, ref, ins, refs


TOL = {torch.float64: dict(rtol=1e-10, atol=1e-10), torch.float32: dict(rtol=1e-4, atol=1e-4)}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("l1,mul", [(0, 40), (1, 16), (2, 3)])
def test_kernels_forward_and_backward_match_torch(l1, mul, dtype):
    out, ref, ins, refs = run_both(l1, mul, dtype)
    tol = TOL[dtype]
    assert out.shape == ref.shape
    assert float(ref.detach().abs().max()) > 1.0  # a sum over 230 edges: not trivially small
    torch.testing.assert_close(out, ref, **tol)
    assert float(out[5].detach().abs().max()) == 0.0 and float(out[6].detach().abs().max()) == 0.0  # no edges in: zero
    g = torch.randn_like(out)
    got = torch.autograd.grad(out, ins, g)
    want = torch.autograd.grad(ref, refs, g)
    for a, b, name in zip(got, want, ("x", "sh", "radial", "weights")):
        assert float(b.abs().max()) > 0, name
        torch.testing.assert_close(a, b, **tol, msg=name)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_double_backward_matches_torch(dtype):
    """d/d(everything) of <v, d out/d sh> (what training on forces differentiates)."""
    out, ref, ins, refs = run_both(1, 8, dtype, seed=3)
    g = torch.randn_like(out)
    v = torch.randn_like(ins[1])
    results = []
    for o, args in ((out, ins), (ref, refs)):
        (gsh,) = torch.autograd.grad(o, args[1], g, create_graph=True)
        results.append(torch.autograd.grad((gsh * v).sum(), [args[0], args[2], args[3]]))
    for a, b in zip(*results):
        assert float(b.abs().max()) > 0
        torch.testing.assert_close(a, b, **TOL[dtype])


def test_gradcheck_and_gradgradcheck():
    torch.manual_seed(1)
    paths = ConvolutionPaths([(2, 1, 1)], SH_LMAX, False, [(l, 1) for l in range(3)])
    cc, _ = paths.block_coupling(0)
    l_lo, l_hi = paths.blocks[0].l2_lo, paths.blocks[0].l2_hi
    rcv, snd = torch.tensor([0, 0, 1, 2, 2, 2]), torch.tensor([1, 2, 0, 0, 1, 1])
    tables = csr_tables(rcv, snd, 4, 4)
    x = torch.randn(4, 2, 3, dtype=torch.float64, requires_grad=True)
    sh = torch.randn(6, 9, dtype=torch.float64, requires_grad=True)
    radial = torch.randn(6, 3, dtype=torch.float64, requires_grad=True)
    wx = torch.randn(3, 2, cc.shape[1], dtype=torch.float64, requires_grad=True)

    def f(x, sh, radial, wx):
        return fused_conv_block(x, sh, radial, wx, cc, snd, rcv, *tables, l_lo**2, l_hi**2 - l_lo**2)

    assert torch.autograd.gradcheck(f, (x, sh, radial, wx), fast_mode=True)
    assert torch.autograd.gradgradcheck(f, (x, sh, radial, wx), fast_mode=True)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("act", [0, 1], ids=["quadratic", "silu"])
def test_grid_kernel_matches_torch(act, dtype):
    """To grid, MLP, back: forward and the features' gradient (kernels), weights' gradients (torch)."""
    torch.manual_seed(2)
    to_grid, from_grid = (m.to(dtype) for m in grid_matrices(2, 6, True))  # d = 9, 28 points: a partial tile
    n, u, h = 5, 6, 12
    args = [
        torch.randn(n, u, 9, dtype=dtype),
        to_grid,
        torch.randn(h, u, dtype=dtype),
        torch.randn(h, dtype=dtype),
        torch.randn(u, h, dtype=dtype),
        torch.randn(u, dtype=dtype),
        from_grid,
    ]
    out = fused_grid_mlp(*args, act)
    ref = grid_mlp_oracle(*args, act)
    assert float(ref.abs().max()) > 0.1
    torch.testing.assert_close(out, ref, **TOL[dtype])
    g = torch.randn_like(ref)
    for trainable in ((0,), (0, 2, 3, 4, 5)):  # features only (kernel), then with the weights (torch)
        ins = [a.clone().requires_grad_(k in trainable) for k, a in enumerate(args)]
        refs = [a.clone().requires_grad_(k in trainable) for k, a in enumerate(args)]
        got = torch.autograd.grad(fused_grid_mlp(*ins, act), [ins[k] for k in trainable], g)
        want = torch.autograd.grad(grid_mlp_oracle(*refs, act), [refs[k] for k in trainable], g)
        for a, b in zip(got, want):
            torch.testing.assert_close(a, b, **TOL[dtype])


def test_grid_kernel_gradcheck():
    torch.manual_seed(3)
    to_grid, from_grid = grid_matrices(1, 3, True)
    lifted = torch.randn(2, 3, 4, dtype=torch.float64, requires_grad=True)
    w1, b1 = torch.randn(5, 3, dtype=torch.float64), torch.randn(5, dtype=torch.float64)
    w2, b2 = torch.randn(3, 5, dtype=torch.float64), torch.randn(3, dtype=torch.float64)
    for act in (0, 1):
        assert torch.autograd.gradcheck(
            lambda x: fused_grid_mlp(x, to_grid, w1, b1, w2, b2, from_grid, act), (lifted,), fast_mode=True
        )


@pytest.mark.parametrize(
    "cfg",
    [{}, {"radial_rank": 3}, {"nonlinearity": "gate", "parity": False}, dict(SEVENNET_LIKE, num_layers=2)],
    ids=["spline", "low-rank", "gate-no-parity", "radial-mlp"],
)
def test_whole_model_on_triton_matches_reference(cfg):
    model = small_model(**cfg)
    names = ("triclinic",) if "radial_hidden" in cfg else ("triclinic", "si_primitive", "molecule")
    for name in names:
        atoms = awkward_structures()[name]
        ref = model_outputs(model.set_backend("edgewise"), atoms)
        assert not any(layer.mixing is not None and layer.mixing.fused for layer in model.layers)
        new = model_outputs(model.set_backend("triton"), atoms)
        assert model.backend == "triton"
        assert all(layer.mixing is None or layer.mixing.fused for layer in model.layers)
        assert {"energy", "forces"} <= set(ref)
        for key in ref:
            torch.testing.assert_close(new[key], ref[key], rtol=1e-9, atol=1e-10, msg=f"{name} {key}")


def test_training_gradients_on_triton_match_reference():
    """Parameter gradients of a force loss (double backward through the fused op)."""
    atoms = awkward_structures()["triclinic"]
    grads = {}
    for backend in ("edgewise", "triton"):
        model = small_model(seed=5).set_backend(backend)
        out = compute_properties(model, atoms_to_graph(atoms, model.cutoff), create_graph=True)
        ((out["forces"] ** 2).sum() + out["energy"].sum()).backward()
        grads[backend] = [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in model.parameters()]
    assert sum(float(g.abs().sum()) for g in grads["edgewise"]) > 0
    for a, b in zip(grads["edgewise"], grads["triton"]):
        torch.testing.assert_close(b, a, rtol=1e-9, atol=1e-10)


def test_cpu_tensors_without_interpreter_get_a_clear_error(monkeypatch):
    model = small_model().set_backend("triton")
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(RuntimeError, match="CUDA tensors"):
        model_outputs(model, awkward_structures()["triclinic"])


def test_custom_ops_pass_opcheck():
    """Schema, fake (meta) implementation and autograd registration, as torch.compile and torch.export use them."""
    torch.manual_seed(4)
    paths = ConvolutionPaths([(3, 1, 1)], SH_LMAX, False, [(l, 1) for l in range(3)])
    cc, _ = paths.block_coupling(0)
    l_lo, l_hi = paths.blocks[0].l2_lo, paths.blocks[0].l2_hi
    rcv, snd = torch.tensor([0, 0, 1, 2, 2]), torch.tensor([1, 2, 0, 0, 1])
    args = (
        torch.randn(3, 3, 3, dtype=torch.float64, requires_grad=True),
        torch.randn(5, 9, dtype=torch.float64, requires_grad=True),
        torch.randn(5, 4, dtype=torch.float64, requires_grad=True),
        torch.randn(4, 3, cc.shape[1], dtype=torch.float64),
        cc,
        snd,
        rcv,
        *csr_tables(rcv, snd, 3, 3),
        l_lo**2,
        l_hi**2 - l_lo**2,
    )
    torch.library.opcheck(fused_conv_block, args)
    g = torch.randn(3, 3, cc.shape[1], dtype=torch.float64)
    torch.library.opcheck(fused_conv_block_backward, (g, *(a.detach() for a in args[:11]), *args[11:]))
    to_grid, from_grid = grid_matrices(1, 3, True)
    torch.library.opcheck(
        fused_grid_mlp,
        (
            torch.randn(2, 3, 4, dtype=torch.float64, requires_grad=True),
            to_grid,
            torch.randn(5, 3, dtype=torch.float64),
            torch.randn(5, dtype=torch.float64),
            torch.randn(3, 5, dtype=torch.float64),
            torch.randn(3, dtype=torch.float64),
            from_grid,
            1,
        ),
    )
    grid_args = (
        torch.randn(2, 3, 4, dtype=torch.float64),
        torch.randn(2, 3, 4, dtype=torch.float64),
        to_grid,
        torch.randn(5, 3, dtype=torch.float64),
        torch.randn(5, dtype=torch.float64),
        torch.randn(3, 5, dtype=torch.float64),
        from_grid,
        0,
    )
    torch.library.opcheck(fused_grid_mlp_backward, grid_args)
