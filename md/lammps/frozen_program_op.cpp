// facetpot::frozen_program: a frozen model's layers (embedding features to per-atom readouts) run from C++.
//
// facetpot/inference/frozen_program.py compiles a model with frozen weights into a straight-line program of
// tensor operations on numbered registers; this file runs it. Every step is an ATen call (autograd records it, in
// C++), the density convolution is the hand-written Function of density_group_op.cpp, so forces and stress are one
// backward pass as before, without the Python interpreter between ~5,000 small operations per call.
//
//   registers: 0 the layer-0 features (N, u, 1), 1 the neighbour matrix src (N, n), 2 the basis (N, n, d, K),
//              3, 4, 5 (or undefined) the radial basis (N, n', K), harmonics (N, n', d) and senders (N, n') of a
//              neighbour matrix of one edge per slot: the density steps then run edge first (density_group_op.cpp,
//              EdgeKernel)
//   program:   [number of registers, result register, then instructions [opcode, length, arguments...]]
//   params:    the frozen tensors (weights scaled by their norms, M_u matrices, grid matrices), by index
//   scalars:   the floating-point constants (activation norms), by index
//
// The opcodes and their arguments are listed in OPCODES of frozen_program.py, the one place that writes them.
#include "density_group.h"
#include "vector_loops.h"

#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/csrc/autograd/autograd.h>

#include <memory>
#include <vector>

namespace {

using at::Tensor;

enum Op : int64_t {
  LINEAR = 1,      // out, weight, bias (-1: none), n_src, src...: equivariant linear of the sources' channels
  ZEROS = 2,       // out, like, mul, dim: zeros (N, mul, dim)
  MATMUL = 3,      // out, in, param: in @ param
  BASIS_COLS = 4,  // out, basis, first, end: columns first..end-1 of axis 2, flattened with the last axis
  DENSITY = 5,     // chunk, src, rb, n_blocks, blocks..., matrices..., couplings (-1: none)..., outs..., rad, sh, esrc
  SPLIT = 6,       // in, dim, n, sizes..., outs...
  ADD = 7,         // out, a, b
  SILU = 8,        // out, in, scalar: silu(in) * scalar
  SIGMOID = 9,     // out, in, scalar: sigmoid(in) * scalar
  GATED = 10,      // out, x, gates, start, mul: x * gates[:, start:start + mul]
  CAT = 11,        // out, dim, n, regs...
  TRANSPOSE = 12,  // out, in, dim0, dim1
  DENSE = 13,      // out, in, weight, bias: in @ weight^T + bias (torch.nn.Linear)
  QUADRATIC = 14,  // out, in: in / 2 + in^2 / 4
  NARROW = 15,     // out, in, dim, start, length
  FLATTEN = 16,    // out, in: reshape(-1)
};

// Rows (atoms x components) up to which an equivariant linear map runs as loops (small_linear) instead of a GEMM:
// on a few rows a GEMM call's packing of W costs more than its arithmetic (a 5-atom crystal's ~90 maps per call).
constexpr int64_t SMALL_ROWS = 32;

bool small(const std::vector<Tensor> &xs, const Tensor &w)
{
  const int64_t rows = xs[0].size(0) * xs[0].size(2);
  if (rows > SMALL_ROWS || !w.is_contiguous() || (w.scalar_type() != at::kFloat && w.scalar_type() != at::kDouble))
    return false;
  for (const Tensor &x : xs)
    if (x.scalar_type() != w.scalar_type()) return false;
  return true;
}

// y (N, v, m) = [x_1 ... x_S] (N, u, m) along u, times W (u, v), + bias (v) where given (m = 1): one pass over W's
// rows, t[(a c), :] += x[a, i, c] W[i, :] into a (N m, v) buffer in cache, then transposed into y
Tensor small_linear(const std::vector<Tensor> &xs, const Tensor &w, const Tensor &bias)
{
  const int64_t n = xs[0].size(0), m = xs[0].size(2), v = w.size(1), rows = n * m;
  Tensor t = at::empty({rows, v}, w.options());  // a fresh buffer: expand().contiguous() of one row is the bias itself
  if (bias.defined()) t.copy_(bias.view({1, v}).expand({rows, v}));
  else t.zero_();
  AT_DISPATCH_FLOATING_TYPES(w.scalar_type(), "small_linear", [&] {
    scalar_t *tp = t.data_ptr<scalar_t>();
    const scalar_t *wp = w.data_ptr<scalar_t>();
    int64_t i0 = 0;
    for (const Tensor &x : xs) {
      auto xa = x.accessor<scalar_t, 3>();
      const int64_t u = x.size(1);
      for (int64_t i = 0; i < u; i++)
        for (int64_t a = 0; a < n; a++)
          for (int64_t c = 0; c < m; c++) facetpot::axpy(tp + (a * m + c) * v, xa[a][i][c], wp + (i0 + i) * v, v);
      i0 += u;
    }
  });
  return m == 1 ? t.view({n, v, 1}) : t.view({n, m, v}).transpose(1, 2).contiguous();
}

// gx (N, u, m) = gy (N, v, m) W^T: gx[a, i, c] = gy[a, :, c] . W[i, :], dot products with gy's rows made contiguous
Tensor small_linear_gradient(const Tensor &gy, const Tensor &w)
{
  const int64_t n = gy.size(0), v = gy.size(1), m = gy.size(2), u = w.size(0);
  Tensor g = m == 1 ? gy.reshape({n, v}).contiguous() : gy.transpose(1, 2).contiguous();  // (N m, v)
  Tensor gx = at::empty({n, u, m}, gy.options());
  AT_DISPATCH_FLOATING_TYPES(w.scalar_type(), "small_linear_gradient", [&] {
    const scalar_t *gp = g.data_ptr<scalar_t>(), *wp = w.data_ptr<scalar_t>();
    scalar_t *op = gx.data_ptr<scalar_t>();
    for (int64_t i = 0; i < u; i++)
      for (int64_t r = 0; r < n * m; r++) op[(r / m * u + i) * m + r % m] = facetpot::dot(gp + r * v, wp + i * v, v);
  });
  return gx;
}

// differentiable: ATen calls only (autograd records them: the replay for Hessians)
Tensor linear(const std::vector<Tensor> &srcs, const Tensor &w, const Tensor &bias, bool differentiable)
{
  if (!differentiable && small(srcs, w)) return small_linear(srcs, w, bias);
  Tensor x = srcs.size() == 1 ? srcs[0] : at::cat(srcs, 1);
  const int64_t n = x.size(0), u = x.size(1), m = x.size(2);
  Tensor y;
  if (m == 1) {
    y = bias.defined() ? at::addmm(bias, x.view({n, u}), w) : at::mm(x.view({n, u}), w);
    return y.unsqueeze(-1);
  }
  y = at::mm(x.transpose(1, 2).reshape({n * m, u}), w).view({n, m, -1}).transpose(1, 2);
  return bias.defined() ? y + bias.unsqueeze(-1) : y;
}

// One run of a program: its registers, and what the reverse pass needs (the density steps' chunk tables, one
// entry per density instruction, and every instruction's start).
struct Machine {
  at::TensorList params;
  at::IntArrayRef program;
  at::ArrayRef<double> scalars;
  std::vector<Tensor> r;
  bool differentiable = false;
  std::vector<std::vector<int64_t>> chunks;
  std::vector<size_t> starts;

  Tensor param(int64_t k) const { return k < 0 ? Tensor() : params[k]; }

  // the registers after running the program forward. differentiable: the density steps through their autograd
  // Function (a replay for double backward); otherwise without autograd, keeping their chunk tables
  void run(const Tensor &features, const Tensor &src, const Tensor &basis, at::TensorList slots, bool differentiable)
  {
    TORCH_CHECK(program.size() >= 2 && program[0] >= 6 && program[1] < program[0],
                "facetpot::frozen_program: bad program header");
    r.assign(program[0], Tensor());
    r[0] = features, r[1] = src, r[2] = basis;
    if (slots.size() == 3) r[3] = slots[0], r[4] = slots[1], r[5] = slots[2];
    this->differentiable = differentiable;
    size_t pc = 2;
    while (pc < program.size()) {
      const int64_t len = program[pc + 1];
      TORCH_CHECK(pc + 2 + len <= program.size(), "facetpot::frozen_program: truncated instruction");
      starts.push_back(pc);
      if (program[pc] == DENSITY) density(program.data() + pc + 2);
      else if (program[pc] == SPLIT) split(program.data() + pc + 2);
      else step(program[pc], program.data() + pc + 2);
      pc += 2 + len;
    }
  }

  // a density step; its matrices in factored form (a coupling table) where given. differentiable: through
  // density_group's autograd Function, with the factored forms expanded to M_b (a replay for Hessians only)
  void density(const int64_t *a)
  {
    const int64_t nb = a[3];
    std::vector<Tensor> blocks, ms, couplings;
    for (int64_t k = 0; k < nb; k++) {
      blocks.push_back(r[a[4 + k]]), ms.push_back(params[a[4 + nb + k]]), couplings.push_back(param(a[4 + 2 * nb + k]));
      if (differentiable && couplings[k].defined()) ms[k] = facetpot::factored_matrix(ms[k], couplings[k]);
    }
    std::vector<Tensor> ys;
    if (differentiable) {
      ys = facetpot::density_group_messages(r[a[1]], r[a[2]], a[0], blocks, ms);
    } else if (edge_first(a)) {  // its backward (the reverse pass) needs no chunk table
      chunks.emplace_back();
      ys = facetpot::density_group_edge_forward(r[a[6 + 4 * nb]], r[a[4 + 4 * nb]], r[a[5 + 4 * nb]], blocks, ms,
                                                couplings);
    } else {
      chunks.emplace_back();
      ys = facetpot::density_group_forward(r[a[1]], r[a[2]], a[0], blocks, ms, couplings, chunks.back());
    }
    for (int64_t k = 0; k < nb; k++) r[a[4 + 3 * nb + k]] = ys[k];
  }

  // whether density instruction a runs edge first: the slots' tables given, every block in factored form
  bool edge_first(const int64_t *a) const
  {
    const int64_t nb = a[3];
    bool yes = a[4 + 4 * nb] >= 0 && r[a[4 + 4 * nb]].defined() && r[a[5 + 4 * nb]].defined() &&
               r[a[6 + 4 * nb]].defined();
    for (int64_t k = 0; k < nb; k++) yes = yes && a[4 + 2 * nb + k] >= 0;
    return yes;
  }

  void split(const int64_t *a)
  {
    const int64_t n = a[2];
    std::vector<Tensor> parts = at::split_with_sizes(r[a[0]], at::IntArrayRef(a + 3, n), a[1]);
    for (int64_t k = 0; k < n; k++) r[a[3 + n + k]] = parts[k];
  }

  void step(int64_t op, const int64_t *a)
  {
    switch (op) {
      case LINEAR: {
        std::vector<Tensor> srcs;
        for (int64_t k = 0; k < a[3]; k++) srcs.push_back(r[a[4 + k]]);
        r[a[0]] = linear(srcs, params[a[1]], param(a[2]), differentiable);
        break;
      }
      case ZEROS: r[a[0]] = at::zeros({r[a[1]].size(0), a[2], a[3]}, r[a[1]].options()); break;
      case MATMUL: r[a[0]] = r[a[1]].defined() ? at::matmul(r[a[1]], params[a[2]]) : Tensor(); break;
      case BASIS_COLS: {
        const Tensor &b = r[a[1]];
        Tensor cols = (a[2] == 0 && a[3] == b.size(2)) ? b : b.narrow(2, a[2], a[3] - a[2]);
        r[a[0]] = cols.reshape({b.size(0), b.size(1), -1});
        break;
      }
      case ADD: r[a[0]] = r[a[1]] + r[a[2]]; break;
      case SILU: r[a[0]] = at::silu(r[a[1]]) * scalars[a[2]]; break;
      case SIGMOID: r[a[0]] = at::sigmoid(r[a[1]]) * scalars[a[2]]; break;
      case GATED: r[a[0]] = r[a[1]] * r[a[2]].narrow(1, a[3], a[4]); break;
      case CAT: {
        std::vector<Tensor> xs;
        for (int64_t k = 0; k < a[2]; k++) xs.push_back(r[a[3 + k]]);
        r[a[0]] = at::cat(xs, a[1]);
        break;
      }
      case TRANSPOSE: r[a[0]] = r[a[1]].transpose(a[2], a[3]); break;
      case DENSE: r[a[0]] = at::linear(r[a[1]], params[a[2]], param(a[3])); break;
      case QUADRATIC: r[a[0]] = at::addcmul(r[a[1]] * 0.5, r[a[1]], r[a[1]], 0.25); break;
      case NARROW: r[a[0]] = r[a[1]].defined() ? r[a[1]].narrow(a[2], a[3], a[4]) : Tensor(); break;
      case FLATTEN: r[a[0]] = r[a[1]].reshape({-1}); break;
      default: TORCH_CHECK(false, "facetpot::frozen_program: unknown opcode ", op);
    }
  }
};

// registers (by the instructions' output arguments) that depend on the basis: the only ones the reverse pass visits
std::vector<bool> basis_dependence(at::IntArrayRef program, const std::vector<size_t> &starts)
{
  std::vector<bool> dep(program[0], false);
  dep[2] = dep[3] = dep[4] = true;  // the basis and the slots' tables
  for (size_t pc : starts) {
    const int64_t op = program[pc];
    const int64_t *a = program.data() + pc + 2;
    switch (op) {
      case LINEAR: { bool d = false; for (int64_t k = 0; k < a[3]; k++) d = d || dep[a[4 + k]]; dep[a[0]] = d; break; }
      case ZEROS: break;
      case MATMUL: case TRANSPOSE: case DENSE: case NARROW: case FLATTEN: case SILU: case SIGMOID: case QUADRATIC:
      case BASIS_COLS: dep[a[0]] = dep[a[1]]; break;
      case DENSITY: {
        bool d = dep[a[2]];
        for (int64_t k = 0; k < a[3]; k++) d = d || dep[a[4 + k]];
        for (int64_t k = 0; k < a[3]; k++) dep[a[4 + 3 * a[3] + k]] = d;
        break;
      }
      case SPLIT: for (int64_t k = 0; k < a[2]; k++) dep[a[3 + a[2] + k]] = dep[a[0]]; break;
      case ADD: case GATED: dep[a[0]] = dep[a[1]] || dep[a[2]]; break;
      case CAT: { bool d = false; for (int64_t k = 0; k < a[2]; k++) d = d || dep[a[3 + k]]; dep[a[0]] = d; break; }
    }
  }
  return dep;
}

// The reverse pass of a run: g[k] = d(sum grad_out * result) / d register k, for the registers that depend on the
// basis, instruction by instruction from the last; g[2] is the basis' gradient.
struct Reverse {
  const Machine &m;
  std::vector<bool> dep;
  std::vector<Tensor> g;
  std::vector<bool> owned;  // g[k] is a tensor only g[k] holds: further terms are added in place

  Reverse(const Machine &machine, const Tensor &grad_out)
      : m(machine), dep(basis_dependence(machine.program, machine.starts)), g(machine.r.size()),
        owned(machine.r.size(), false)
  {
    g[m.program[1]] = grad_out;
  }

  // g[k] += t; fresh: t is a new tensor nothing else holds (g[k] may then take further terms in place)
  void acc(int64_t k, const Tensor &t, bool fresh = false)
  {
    if (!dep[k]) return;
    if (!g[k].defined()) {
      g[k] = t, owned[k] = fresh;
    } else if (owned[k]) {
      g[k].add_(t);
    } else {
      g[k] = g[k] + t, owned[k] = true;
    }
  }

  // g[k].narrow(dim, start, length) += t
  void acc_narrow(int64_t k, int64_t dim, int64_t start, int64_t length, const Tensor &t)
  {
    if (!dep[k]) return;
    if (!g[k].defined()) {
      g[k] = at::zeros_like(m.r[k]), owned[k] = true;
    } else if (!owned[k]) {
      g[k] = g[k].clone(), owned[k] = true;
    }
    g[k].narrow(dim, start, length).add_(t);
  }

  // the gradients of the basis (zeros where none flows) and of the slots' tables (undefined where none flows)
  std::vector<Tensor> run()
  {
    size_t density_index = m.chunks.size();
    for (auto it = m.starts.rbegin(); it != m.starts.rend(); ++it) {
      const int64_t op = m.program[*it];
      const int64_t *a = m.program.data() + *it + 2;
      if (op == DENSITY) density(a, m.chunks[--density_index]);
      else if (op == SPLIT) split(a);
      else if (op != ZEROS && g[a[0]].defined()) step(op, a, g[a[0]]);
    }
    return {g[2].defined() ? g[2] : at::zeros_like(m.r[2]), g[3], g[4]};
  }

  void density(const int64_t *a, const std::vector<int64_t> &chunks)
  {
    const int64_t nb = a[3];
    const int64_t *outs = a + 4 + 3 * nb;
    bool any = false;
    for (int64_t k = 0; k < nb; k++) any = any || g[outs[k]].defined();
    if (!any) return;
    std::vector<Tensor> blocks, ms, couplings, grads;
    bool need_x = false;
    for (int64_t k = 0; k < nb; k++) {
      blocks.push_back(m.r[a[4 + k]]);
      ms.push_back(m.params[a[4 + nb + k]]);
      couplings.push_back(m.param(a[4 + 2 * nb + k]));
      need_x = need_x || dep[a[4 + k]];
      grads.push_back(g[outs[k]].defined() ? g[outs[k]] : at::zeros_like(m.r[outs[k]]));
    }
    if (m.edge_first(a)) {  // [g rad, g sh, g blocks...]
      std::vector<Tensor> got = facetpot::density_group_edge_backward(m.r[a[6 + 4 * nb]], m.r[a[4 + 4 * nb]],
                                                                      m.r[a[5 + 4 * nb]], blocks, ms, couplings, grads);
      acc(a[4 + 4 * nb], got[0], true), acc(a[5 + 4 * nb], got[1], true);
      for (int64_t k = 0; k < nb; k++) acc(a[4 + k], got[2 + k]);
      return;
    }
    std::vector<Tensor> got =
        facetpot::density_group_backward(m.r[a[1]], m.r[a[2]], a[0], chunks, blocks, ms, couplings, grads, dep[a[2]],
                                         need_x);
    if (got[0].defined()) acc(a[2], got[0], true);
    for (int64_t k = 0; k < nb; k++)
      if (got[1 + k].defined()) acc(a[4 + k], got[1 + k]);
  }

  void split(const int64_t *a)
  {
    const int64_t n = a[2];
    bool any = false;
    std::vector<Tensor> parts;
    for (int64_t k = 0; k < n; k++) {
      const int64_t o = a[3 + n + k];
      any = any || g[o].defined();
      parts.push_back(g[o].defined() ? g[o] : at::zeros_like(m.r[o]));
    }
    if (any) acc(a[0], at::cat(parts, a[1]), true);
  }

  void step(int64_t op, const int64_t *a, const Tensor &gy)
  {
    const std::vector<Tensor> &r = m.r;
    switch (op) {
      case LINEAR: linear_step(a, gy); break;
      case MATMUL: matmul_step(a, gy); break;
      case BASIS_COLS: {
        const Tensor &b = r[a[1]];
        Tensor gv = gy.view({b.size(0), b.size(1), a[3] - a[2], b.size(3)});
        if (a[2] == 0 && a[3] == b.size(2)) acc(a[1], gv);
        else acc_narrow(a[1], 2, a[2], a[3] - a[2], gv);
        break;
      }
      case ADD: acc(a[1], gy), acc(a[2], gy); break;
      case SILU: {  // d silu / dx = sigma (1 + x (1 - sigma))
        Tensor sig = at::sigmoid(r[a[1]]);
        acc(a[1], gy * (sig * (1 + r[a[1]] * (1 - sig))) * m.scalars[a[2]], true);
        break;
      }
      case SIGMOID: acc(a[1], gy * r[a[0]] * (1 - r[a[0]] / m.scalars[a[2]]), true); break;  // y = s sigma: y (1 - y / s)
      case GATED:
        acc(a[1], gy * r[a[2]].narrow(1, a[3], a[4]), true);
        acc_narrow(a[2], 1, a[3], a[4], (gy * r[a[1]]).sum(2, true));
        break;
      case CAT: {
        int64_t off = 0;
        for (int64_t k = 0; k < a[2]; k++) {
          const int64_t size = r[a[3 + k]].size(a[1]);
          acc(a[3 + k], gy.narrow(a[1], off, size));
          off += size;
        }
        break;
      }
      case TRANSPOSE: acc(a[1], gy.transpose(a[2], a[3])); break;
      case DENSE: acc(a[1], at::matmul(gy, m.params[a[2]]), true); break;
      case QUADRATIC: acc(a[1], at::addcmul(gy * 0.5, gy, r[a[1]], 0.5), true); break;
      case NARROW: acc_narrow(a[1], a[2], a[3], a[4], gy); break;
      case FLATTEN: acc(a[1], gy.view(r[a[1]].sizes())); break;
      default: TORCH_CHECK(false, "facetpot::frozen_program: no reverse step for opcode ", op);
    }
  }

  // in @ P: g_in += gy P^T, in place where g_in is owned (the basis gets one such term per layer, its rank mixing:
  // no temporary of the basis' size for the second and later)
  void matmul_step(const int64_t *a, const Tensor &gy)
  {
    const int64_t k = a[1];
    if (!dep[k]) return;
    const Tensor &p = m.params[a[2]];
    if (g[k].defined() && owned[k] && g[k].is_contiguous()) {
      g[k].view({-1, p.size(0)}).addmm_(gy.reshape({-1, p.size(1)}), p.t());
      return;
    }
    acc(k, at::matmul(gy, p.t()), true);
  }

  void linear_step(const int64_t *a, const Tensor &gy)
  {
    const Tensor &w = m.params[a[1]];
    const int64_t n = gy.size(0), v = gy.size(1), mm = gy.size(2);
    Tensor gx = small({gy}, w) ? small_linear_gradient(gy, w)
                : mm == 1      ? at::mm(gy.view({n, v}), w.t()).unsqueeze(-1)
                          : at::mm(gy.transpose(1, 2).reshape({n * mm, v}), w.t()).view({n, mm, -1}).transpose(1, 2);
    int64_t off = 0;
    for (int64_t k = 0; k < a[3]; k++) {
      const int64_t s = a[4 + k], u = m.r[s].size(1);
      acc(s, a[3] == 1 ? gx : gx.narrow(1, off, u), a[3] == 1);
      off += u;
    }
  }
};

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// forward without autograd, keeping the registers; backward by the reverse pass (or, when asked for a graph of
// the gradient, by autograd through a differentiable replay)
struct FrozenProgram : public torch::autograd::Function<FrozenProgram> {
  static Tensor forward(AutogradContext *ctx, const Tensor &features, const Tensor &src, const Tensor &basis,
                        at::TensorList params, at::IntArrayRef program, at::ArrayRef<double> scalars,
                        at::TensorList slots)
  {
    Machine m{params, program, scalars};
    m.run(features, src, basis, slots, false);
    std::vector<int64_t> flat_chunks, chunk_sizes, starts(m.starts.begin(), m.starts.end());
    for (const auto &c : m.chunks) {
      chunk_sizes.push_back((int64_t) c.size());
      flat_chunks.insert(flat_chunks.end(), c.begin(), c.end());
    }
    // saved detached: the result register IS the output, whose grad_fn becomes this node; holding it (or a view
    // of it) here would be a reference cycle, and every call's registers would leak (MB per call)
    std::vector<Tensor> regs;
    regs.reserve(m.r.size());
    for (const Tensor &t : m.r) regs.push_back(t.defined() ? t.detach() : Tensor());
    regs[2] = Tensor();  // the basis (an input) is saved below, as a variable
    ctx->saved_data["registers"] = regs;
    ctx->saved_data["params"] = params.vec();
    ctx->saved_data["program"] = program.vec();
    ctx->saved_data["scalars"] = scalars.vec();
    ctx->saved_data["chunks"] = flat_chunks;
    ctx->saved_data["chunk_sizes"] = chunk_sizes;
    ctx->saved_data["starts"] = starts;
    ctx->saved_data["num_slots"] = (int64_t) slots.size();
    ctx->save_for_backward({features, src, basis});
    return m.r[program[1]];
  }

  static variable_list backward(AutogradContext *ctx, variable_list grads)
  {
    variable_list saved = ctx->get_saved_variables();
    std::vector<Tensor> params = ctx->saved_data["params"].toTensorVector();
    std::vector<int64_t> program = ctx->saved_data["program"].toIntVector();
    std::vector<double> scalars = ctx->saved_data["scalars"].toDoubleVector();
    // one per argument, the tensor lists flattened: ..., params..., program, scalars, slots...
    const size_t first_slot = 5 + params.size(), num_slots = (size_t) ctx->saved_data["num_slots"].toInt();
    variable_list out(first_slot + num_slots);
    bool needed = ctx->needs_input_grad(2);  // (tensor inputs only: features, src, basis, params..., slots...)
    for (size_t k = 0; k < std::min<size_t>(num_slots, 2); k++)  // (the senders have none)
      needed = needed || ctx->needs_input_grad(3 + params.size() + k);
    if (!needed) return out;
    Machine m{params, program, scalars};
    if (at::GradMode::is_enabled()) {  // create_graph: autograd through the program, keeping its graph
      m.run(saved[0], saved[1], saved[2], {}, true);
      variable_list outputs = {m.r[program[1]]}, inputs = {saved[2]}, seeds = {grads[0]};
      out[2] = torch::autograd::grad(outputs, inputs, seeds, true, true, true)[0];
      return out;
    }
    m.r = ctx->saved_data["registers"].toTensorVector();
    m.r[2] = saved[2];
    std::vector<int64_t> flat = ctx->saved_data["chunks"].toIntVector();
    size_t pos = 0;
    for (int64_t n : ctx->saved_data["chunk_sizes"].toIntVector()) {
      m.chunks.emplace_back(flat.begin() + pos, flat.begin() + pos + n);
      pos += n;
    }
    for (int64_t k : ctx->saved_data["starts"].toIntVector()) m.starts.push_back((size_t) k);
    std::vector<Tensor> got = Reverse(m, grads[0].contiguous()).run();
    out[2] = got[0];
    for (size_t k = 0; k < std::min<size_t>(num_slots, 2); k++) out[first_slot + k] = got[1 + k];
    return out;
  }
};

Tensor frozen_program(const Tensor &features, const Tensor &src, const Tensor &basis, at::TensorList params,
                      at::IntArrayRef program, at::ArrayRef<double> scalars, at::TensorList slots)
{
  return FrozenProgram::apply(features, src, basis, params, program, scalars, slots);
}

// slots: [] or [radial basis (N, n, K), harmonics (N, n, d), senders (N, n)] of a neighbour matrix of one edge per
// slot (the edge-first density steps' gradients flow to the first two; the other steps' to the basis)
const char *SCHEMA = "frozen_program(Tensor features, Tensor src, Tensor basis, Tensor[] params, int[] program, "
                     "float[] scalars, Tensor[] slots) -> Tensor";

struct Registration {
  std::unique_ptr<torch::Library> library;
  Registration()
  {
    if (c10::Dispatcher::singleton().findSchema({"facetpot::frozen_program", ""}).has_value()) return;
    library = std::make_unique<torch::Library>(torch::Library::FRAGMENT, "facetpot", std::nullopt, __FILE__, __LINE__);
    library->def(SCHEMA);
    // composite: autograd records the ATen calls inside (and density_group's own Function)
    library->impl("frozen_program", torch::dispatch(c10::DispatchKey::CompositeImplicitAutograd, &frozen_program));
  }
};

const Registration registration;

}    // namespace
