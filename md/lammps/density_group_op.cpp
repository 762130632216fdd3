// facetpot::density_group: the density convolution of a group of input blocks with frozen weights, forward and
// backward, a C++ transcription of facetpot/nn/conv/density_op.py (_GroupConvolution), so that an exported
// model runs the fast formulation inside LAMMPS (no Python there).
//
// Per chunk of C receiving atoms, with the blocks' features side by side x (N_send, F) and the group's basis
// columns rb (C, n, R):
//   forward   xn = x[src] (C, n, F)   D = xn^T rb (C, F, R)   y_b[., u] = D_b[., u] M_b[u]
//   backward  gD_b[., u] = gy_b[., u] M_b[u]^T   g rb = xn gD (C, n, R)   g xn = rb gD^T (C, n, F) -> g x
// A chunk reads only the first w slots of its rows, w its largest neighbour count (padding trails each row).
// The C++ inference engine (frozen_program_op.cpp) gives every block's M_b in factored form instead: its radial
// weights per path and the CG tensors' non-zeros (Coupling below), the channel step then a loop of short dot products
// instead of a GEMM with a matrix of 90% zeros; its groups run atom by atom, forward and backward (fused_forward,
// fused_backward), without the density or its gradient in memory.
// The weights' matrices M_b get no gradient (frozen weights); a double backward (create_graph=True) differentiates
// the plain formulation, as the Python version does. The forward and backward without autograd are also the
// density steps of the C++ inference engine (frozen_program_op.cpp, through density_group.h).
//
// Registered at load time unless the schema already exists (a Python process that imported facetpot has
// registered the Python version of the same operator).
#include "density_group.h"
#include "vector_loops.h"

#include <torch/torch.h>
#include <torch/library.h>
#include <ATen/Parallel.h>
#include <ATen/core/dispatch/Dispatcher.h>

#include <algorithm>
#include <memory>
#include <vector>

namespace {

using torch::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// A scratch tensor of this shape, reused from call to call on the CPU (one per slot and dtype, per thread, grown as
// needed): a fresh multi-MB workspace per call costs page faults and a cold cache (the density of 10 atoms, 2.7 MB,
// took 4x its in-cache time to write). Slots: 0 gathered features, 1 density, 2 density gradient, 3 basis gradient,
// 4 + b block b's channel gradient. Never returned: outputs are fresh tensors.
Tensor scratch(size_t slot, at::IntArrayRef shape, const at::TensorOptions &options)
{
  const bool pooled = options.device().is_cpu() && (options.dtype() == at::kFloat || options.dtype() == at::kDouble);
  if (!pooled) return at::empty(shape, options);
  thread_local std::vector<Tensor> pool;
  const size_t index = 2 * slot + (options.dtype() == at::kDouble ? 1 : 0);
  if (pool.size() <= index) pool.resize(index + 1);
  int64_t numel = 1;
  for (int64_t d : shape) numel *= d;
  Tensor &t = pool[index];
  if (!t.defined() || t.numel() < numel) t = at::empty({std::max<int64_t>(numel, 1)}, options);
  return t.narrow(0, 0, numel).view(shape);
}

// A block's channel step in factored form (the frozen program's, facetpot/inference/frozen_program.py
// channel_factors): W_b (u, P, R) the radial weights of its P paths, and its coupling, a float64 table whose first
// row is (rows, P, cols, 0) and every further row (r, p, c, v) one non-zero of the CG tensors, r = m1 d' + a a row
// of the block's density (R columns each), p its path, c a message column:
//   M_b[u, r R + k, c] = sum_{(r, p, c, v)} v W_b[u, p, k]
// The step runs as y[., u, c] = sum v T_(r, p), T_(r, p) = D_b[., u, r] . W_b[u, p] (a dot product of R per pair
// the CG tensors touch): ~10x fewer multiply-adds than the GEMM with M_b, whose entries are 90% zeros, and W_b is
// ~30x smaller than M_b (which a small cell read from memory twice per call).
struct Coupling {
  int64_t rows = 0, paths = 0, cols = 0;
  std::vector<int64_t> row, path;   // the pairs (r, p) whose dot products are needed
  std::vector<int64_t> pair, col;   // entries: y[col] += value T[pair]
  std::vector<double> value;
  std::vector<int64_t> row_start, row_pairs, row_paths;  // row r's pairs row_pairs[row_start[r] ..), their paths
};

Coupling read_coupling(const Tensor &table)
{
  TORCH_CHECK(table.dim() == 2 && table.size(1) == 4 && table.size(0) >= 1 && table.scalar_type() == at::kDouble,
              "facetpot::density_group: a coupling table is (1 + n, 4) float64");
  Tensor t = table.contiguous();
  const double *v = t.data_ptr<double>();
  Coupling cp;
  cp.rows = (int64_t) v[0], cp.paths = (int64_t) v[1], cp.cols = (int64_t) v[2];
  std::vector<int64_t> index(cp.rows * cp.paths, -1);
  for (int64_t e = 1; e < t.size(0); e++) {
    const int64_t r = (int64_t) v[4 * e], p = (int64_t) v[4 * e + 1], c = (int64_t) v[4 * e + 2];
    TORCH_CHECK(0 <= r && r < cp.rows && 0 <= p && p < cp.paths && 0 <= c && c < cp.cols,
                "facetpot::density_group: a coupling entry out of range");
    int64_t &q = index[r * cp.paths + p];
    if (q < 0) q = (int64_t) cp.row.size(), cp.row.push_back(r), cp.path.push_back(p);
    cp.pair.push_back(q), cp.col.push_back(c), cp.value.push_back(v[4 * e + 3]);
  }
  cp.row_start.assign(cp.rows + 1, 0);
  for (int64_t r : cp.row) cp.row_start[r + 1]++;
  for (int64_t r = 0; r < cp.rows; r++) cp.row_start[r + 1] += cp.row_start[r];
  std::vector<int64_t> fill(cp.row_start.begin(), cp.row_start.end() - 1);
  cp.row_pairs.resize(cp.row.size());
  for (size_t q = 0; q < cp.row.size(); q++) cp.row_pairs[fill[cp.row[q]]++] = (int64_t) q;
  for (int64_t q : cp.row_pairs) cp.row_paths.push_back(cp.path[q]);
  return cp;
}

// the couplings of a group's blocks (an undefined table: the block's matrix is M_b itself)
std::vector<Coupling> read_couplings(at::TensorList tables, size_t n)
{
  std::vector<Coupling> out(n);
  for (size_t b = 0; b < n && b < tables.size(); b++)
    if (tables[b].defined()) out[b] = read_coupling(tables[b]);
  return out;
}

bool factored(const std::vector<Coupling> &cps, int64_t b) { return cps[b].rows > 0; }

// o (rows x r), one channel's density gradient, from its messages' gradient g (cols): gT_(r, p) = sum v g[c],
// o[r] = sum_p gT_(r, p) w[p] (w: the channel's W_b (P, r); gt: a buffer of one value per pair)
template <typename scalar_t>
void channel_density_gradient(const scalar_t *g, const scalar_t *w, const Coupling &cp, const scalar_t *value,
                              scalar_t *gt, scalar_t *o, int64_t r)
{
  const int64_t n_pairs = (int64_t) cp.row.size(), n_entries = (int64_t) cp.value.size();
  std::fill(gt, gt + n_pairs, scalar_t(0));
  for (int64_t e = 0; e < n_entries; e++) gt[cp.pair[e]] += value[e] * g[cp.col[e]];
  for (int64_t row = 0; row < cp.rows; row++)  // each row's pairs summed in registers, the row stored once
    facetpot::combine_scaled(o + row * r, w, r, gt, cp.row_pairs.data() + cp.row_start[row],
                             cp.row_paths.data() + cp.row_start[row], cp.row_start[row + 1] - cp.row_start[row]);
}

// The forward of a group whose blocks are all factored, without the density in memory: for every receiving atom a,
// block b and TILE_CHANNELS channels u, the block's rows D_b[a, u] (m1 x R) = sum_j x_j[u, m1] rb[a, j] are combined
// in a buffer of a few kB (combine_rows, TILE_ROWS rows at once), and the factored channel step reads them there.
// The density (F x R per atom: 276 kB for the shipped model) is neither written nor read back, and the backward does
// not need it (its gradient comes from the messages' gradient). y_b (N, u, cols) per block.
constexpr int64_t TILE_CHANNELS = 6, TILE_ROWS = 6;  // fused_forward's tiles: channels per pass, rows per register tile
// receiving atoms per thread below which fused_forward and fused_backward leave threads idle: waking a thread and
// summing its copy of g x cost more than a few atoms' work (150 small crystals one by one, 2 threads, median per call:
// 9.6 ms with 1 atom per thread, 8.0-8.3 with 4, 9.7 with 8, 12 with 16; 2026-12-08)
constexpr int64_t ATOMS_PER_THREAD = 4;

// out (rows, r) = the density rows sum_j x[s_j, c] rows_a[j] of `rows` consecutive feature columns c from x (row
// stride f), TILE_ROWS at a time (coef: a buffer of TILE_ROWS x w)
template <typename scalar_t>
void density_rows(scalar_t *out, scalar_t *coef, const scalar_t *x, int64_t f, const int64_t *s, int64_t w,
                  const scalar_t *rows_a, int64_t rj, int64_t r, int64_t rows)
{
  for (int64_t t0 = 0; t0 < rows; t0 += TILE_ROWS) {
    const int64_t nr = std::min(TILE_ROWS, rows - t0);
    for (int64_t j = 0; j < w; j++)
      for (int64_t q = 0; q < nr; q++) coef[j * nr + q] = x[s[j] * f + t0 + q];
    facetpot::combine_rows(nr, out + t0 * r, r, coef, rows_a, rj, w, r);
  }
}

std::vector<Tensor> fused_forward(const Tensor &x_ext, const Tensor &src, const Tensor &rb_in, at::TensorList blocks,
                                  at::TensorList ms, const std::vector<Coupling> &cps)
{
  const Tensor rb = rb_in.stride(2) == 1 ? rb_in : rb_in.contiguous();
  const int64_t n_recv = src.size(0), n_slot = src.size(1), f = x_ext.size(1), r = rb.size(2), nb = blocks.size();
  const int64_t pad = x_ext.size(0) - 1;
  std::vector<Tensor> out;
  std::vector<int64_t> first(nb);  // each block's first column in x_ext
  int64_t col = 0, max_m1 = 0;
  for (int64_t b = 0; b < nb; b++) {
    TORCH_CHECK(ms[b].is_contiguous() && ms[b].size(0) == blocks[b].size(1) && ms[b].size(1) == cps[b].paths &&
                    cps[b].rows * ms[b].size(2) == blocks[b].size(2) * r,
                "facetpot::density_group: factored weights of another shape");
    out.push_back(at::empty({n_recv, blocks[b].size(1), cps[b].cols}, x_ext.options()));
    first[b] = col, col += blocks[b].size(1) * blocks[b].size(2);
    max_m1 = std::max(max_m1, blocks[b].size(2));
  }
  const Tensor src_c = src.contiguous();
  AT_DISPATCH_FLOATING_TYPES(x_ext.scalar_type(), "fused_forward", [&] {
    const scalar_t *xp = x_ext.data_ptr<scalar_t>(), *rp = rb.data_ptr<scalar_t>();
    const int64_t *sp = src_c.data_ptr<int64_t>();
    const int64_t ra = rb.stride(0), rj = rb.stride(1);
    std::vector<std::vector<int64_t>> xoff(nb), woff(nb);
    std::vector<std::vector<scalar_t>> value(nb);
    for (int64_t b = 0; b < nb; b++) {
      const int64_t k = ms[b].size(2);
      for (size_t q = 0; q < cps[b].row.size(); q++)
        xoff[b].push_back(cps[b].row[q] * k), woff[b].push_back(cps[b].path[q] * k);
      value[b].assign(cps[b].value.begin(), cps[b].value.end());
    }
    at::parallel_for(0, n_recv, ATOMS_PER_THREAD, [&](int64_t a0, int64_t a1) {
      std::vector<scalar_t> dseg(TILE_CHANNELS * max_m1 * r), coef(TILE_ROWS * n_slot), t;
      for (int64_t a = a0; a < a1; a++) {
        const int64_t *s = sp + a * n_slot;
        int64_t w = 0;
        while (w < n_slot && s[w] != pad) w++;
        for (int64_t b = 0; b < nb; b++) {
          const Coupling &cp = cps[b];
          const int64_t u = blocks[b].size(1), m1 = blocks[b].size(2), k = ms[b].size(2), cols = cp.cols;
          const scalar_t *wp = ms[b].data_ptr<scalar_t>();
          scalar_t *yp = out[b].data_ptr<scalar_t>() + a * u * cols;
          t.resize(cp.row.size());
          for (int64_t ch0 = 0; ch0 < u; ch0 += TILE_CHANNELS) {
            const int64_t n_ch = std::min(TILE_CHANNELS, u - ch0), rows = n_ch * m1;
            // the density rows of channels ch0 .. ch0 + n_ch - 1 (consecutive columns of x_ext)
            density_rows(dseg.data(), coef.data(), xp + first[b] + ch0 * m1, f, s, w, rp + a * ra, rj, r, rows);
            for (int64_t c = 0; c < n_ch; c++) {
              const int64_t ch = ch0 + c;
              facetpot::dots(dseg.data() + c * m1 * r, wp + ch * cp.paths * k, xoff[b].data(), woff[b].data(),
                             (int64_t) t.size(), k, t.data());
              scalar_t *o = yp + ch * cols;
              std::fill(o, o + cols, scalar_t(0));
              for (size_t e = 0; e < value[b].size(); e++) o[cp.col[e]] += value[b][e] * t[cp.pair[e]];
            }
          }
        }
      }
    });
  });
  return out;
}

// The forward of a factored group edge first, where every neighbour slot holds one edge (no periodic images summed):
// the slot's radial basis b_j (rank K, mixed) and harmonics Y_j (the group's d' columns) apart, not their product.
// Per receiving atom a and block b (u channels, m1 components, P paths):
//   R[j, p, :] = sum_k b_j[k] W_b[:, p, k]                   (combine_rows: w slots x K x P u)
//   A[j, m, c] = sum_{(m d' + a', p, c, v)} v Y_j[a']         (the coupling's entries)
//   Z[j, m, p, :] = R[j, p, :] * x[s_j, :, m]                  (channels side by side)
//   y[a, :, c] = sum_{j, m} A[j, m, c] Z[j, m, p(c), :]       (combine_rows per path: cols x w m1 x u)
// K P u + cols m1 u multiply-adds per edge and block against m1 d' K u for the density (Si 512, the shipped model's
// middle layers: 2.9x fewer), the same sum. A path's columns are consecutive (ConvolutionPaths.block_coupling).
// The backward (EdgeKernel::backward) recomputes R, A and Z and returns the gradients of x, of the slots' b and Y.
template <typename scalar_t>
struct EdgeKernel {
  const scalar_t *rad, *sh;  // (N_recv, n_slot, K), (N_recv, n_slot, d'), contiguous
  const int64_t *src;
  int64_t n_slot, k, d, pad;
  std::vector<const scalar_t *> xt, wt;  // per block: x (N_send, m1, u) and W (K, P, u), contiguous
  std::vector<scalar_t *> y;             // forward, per block: (N_recv, u, cols)
  std::vector<const scalar_t *> gy;      // backward, per block: the messages' gradient (N_recv, u, cols)
  scalar_t *g_rad = nullptr, *g_sh = nullptr;  // backward: zeroed (N_recv, n_slot, K) and (N_recv, n_slot, d')
  std::vector<int64_t> u, m1, paths, x_first;  // x_first: each block's first row in a thread's g x (sum N_send m1 u)
  std::vector<std::vector<int64_t>> path_first, path_cols;
  std::vector<std::vector<scalar_t>> value;
  std::vector<std::vector<int64_t>> a_cell, a_harmonic;  // per entry: its cell m cols + c of A_j, its column of Y_j
  const std::vector<Coupling> *cps;

  struct Work {
    scalar_t *r, *am, *z, *yt, *cf, *g, *gr, *ga;  // R, A, Z, y^T (or gy^T), coefficients; backward: G, g R, g A
  };

  int64_t slots(int64_t a) const
  {
    const int64_t *s = src + a * n_slot;
    int64_t w = 0;
    while (w < n_slot && s[w] != pad) w++;
    return w;
  }

  // R, A and Z of atom a's w slots for block b, in buf (with room for the backward's G, g R and g A)
  Work tables(int64_t a, int64_t b, int64_t w, std::vector<scalar_t> &buf) const
  {
    const Coupling &cp = (*cps)[b];
    const int64_t nu = u[b], nm = m1[b], np = paths[b], pu = np * nu, cols = cp.cols, *s = src + a * n_slot;
    const int64_t sizes = w * pu + w * nm * cols + w * nm * pu;
    buf.resize(2 * sizes + cols * nu + std::max<int64_t>(std::max(k, cols), w * nm) * TILE_ROWS);
    Work t;
    t.r = buf.data(), t.am = t.r + w * pu, t.z = t.am + w * nm * cols, t.yt = t.z + w * nm * pu;
    t.cf = t.yt + cols * nu, t.g = t.cf + std::max<int64_t>(std::max(k, cols), w * nm) * TILE_ROWS;
    t.gr = t.g + w * nm * pu, t.ga = t.gr + w * pu;
    for (int64_t j0 = 0; j0 < w; j0 += TILE_ROWS) {
      const int64_t nr = std::min(TILE_ROWS, w - j0);
      for (int64_t kk = 0; kk < k; kk++)
        for (int64_t q = 0; q < nr; q++) t.cf[kk * nr + q] = rad[(a * n_slot + j0 + q) * k + kk];
      facetpot::combine_rows(nr, t.r + j0 * pu, pu, t.cf, wt[b], pu, k, pu);
    }
    std::fill(t.am, t.am + w * nm * cols, scalar_t(0));
    const int64_t n_entries = (int64_t) value[b].size(), *cell = a_cell[b].data(), *harmonic = a_harmonic[b].data();
    for (int64_t j = 0; j < w; j++) {
      const scalar_t *yj = sh + (a * n_slot + j) * d, *v = value[b].data();
      scalar_t *aj = t.am + j * nm * cols;
      for (int64_t e = 0; e < n_entries; e++) aj[cell[e]] += v[e] * yj[harmonic[e]];
    }
    for (int64_t j = 0; j < w; j++)
      for (int64_t m = 0; m < nm; m++) {
        const scalar_t *xr = xt[b] + (s[j] * nm + m) * nu;
        for (int64_t p = 0; p < np; p++) {
          scalar_t *zz = t.z + (j * nm + m) * pu + p * nu;
          const scalar_t *rr = t.r + j * pu + p * nu;
          for (int64_t i = 0; i < nu; i++) zz[i] = rr[i] * xr[i];
        }
      }
    return t;
  }

  // y[a, :, c] = sum_{j, m} A[j, m, c] Z[j, m, p(c), :]
  void forward(int64_t a, int64_t b, int64_t w, std::vector<scalar_t> &buf) const
  {
    const Work t = tables(a, b, w, buf);
    const int64_t nu = u[b], nm = m1[b], pu = paths[b] * nu, cols = (*cps)[b].cols;
    for (int64_t p = 0; p < paths[b]; p++)
      for (int64_t c0 = path_first[b][p]; c0 < path_first[b][p] + path_cols[b][p]; c0 += TILE_ROWS) {
        const int64_t nr = std::min(TILE_ROWS, path_first[b][p] + path_cols[b][p] - c0);
        for (int64_t jm = 0; jm < w * nm; jm++)
          for (int64_t q = 0; q < nr; q++) t.cf[jm * nr + q] = t.am[jm * cols + c0 + q];
        facetpot::combine_rows(nr, t.yt + c0 * nu, nu, t.cf, t.z + p * nu, pu, w * nm, nu);
      }
    scalar_t *o = y[b] + a * nu * cols;
    for (int64_t c = 0; c < cols; c++)
      for (int64_t i = 0; i < nu; i++) o[i * cols + c] = t.yt[c * nu + i];
  }

  // G[j, m, p, :] = sum_{c in p} A[j, m, c] gy[a, :, c] and g A[j, m, c] = Z[j, m, p(c), :] . gy[a, :, c]
  void path_gradients(int64_t a, int64_t b, int64_t w, const Work &t) const
  {
    const int64_t nu = u[b], nm = m1[b], pu = paths[b] * nu, cols = (*cps)[b].cols;
    const scalar_t *gya = gy[b] + a * nu * cols;
    for (int64_t c = 0; c < cols; c++)
      for (int64_t i = 0; i < nu; i++) t.yt[c * nu + i] = gya[i * cols + c];
    std::fill(t.ga, t.ga + w * nm * cols, scalar_t(0));
    thread_local std::vector<scalar_t *> outs;  // no allocation per atom and block
    outs.resize(std::max<size_t>(outs.size(), w * nm));
    for (int64_t p = 0; p < paths[b]; p++) {
      const int64_t c0 = path_first[b][p], nc = path_cols[b][p];
      for (int64_t jm0 = 0; jm0 < w * nm; jm0 += TILE_ROWS) {
        const int64_t nr = std::min(TILE_ROWS, w * nm - jm0);
        for (int64_t c = 0; c < nc; c++)
          for (int64_t q = 0; q < nr; q++) t.cf[c * nr + q] = t.am[(jm0 + q) * cols + c0 + c];
        facetpot::combine_rows(nr, t.g + jm0 * pu + p * nu, pu, t.cf, t.yt + c0 * nu, nu, nc, nu);
      }
      for (int64_t jm = 0; jm < w * nm; jm++) outs[jm] = t.ga + jm * cols + c0;
      facetpot::dot_block(t.z + p * nu, pu, w * nm, t.yt + c0 * nu, nu, nc, nu, outs.data());
    }
  }

  // atom a's gradients for block b: g x (this thread's copy gx), g b_j (g_rad), g Y_j (g_sh)
  void backward(int64_t a, int64_t b, int64_t w, std::vector<scalar_t> &buf, scalar_t *gx) const
  {
    const Work t = tables(a, b, w, buf);
    path_gradients(a, b, w, t);
    const int64_t nu = u[b], nm = m1[b], np = paths[b], pu = np * nu, cols = (*cps)[b].cols, *s = src + a * n_slot;
    std::fill(t.gr, t.gr + w * pu, scalar_t(0));
    for (int64_t j = 0; j < w; j++)
      for (int64_t m = 0; m < nm; m++) {
        const scalar_t *xr = xt[b] + (s[j] * nm + m) * nu;
        scalar_t *gxr = gx + x_first[b] + (s[j] * nm + m) * nu;
        for (int64_t p = 0; p < np; p++) {
          const scalar_t *gg = t.g + (j * nm + m) * pu + p * nu, *rr = t.r + j * pu + p * nu;
          scalar_t *grr = t.gr + j * pu + p * nu;
          for (int64_t i = 0; i < nu; i++) gxr[i] += gg[i] * rr[i], grr[i] += gg[i] * xr[i];
        }
      }
    thread_local std::vector<scalar_t *> outs;
    outs.resize(std::max<size_t>(outs.size(), w));
    for (int64_t j = 0; j < w; j++) outs[j] = g_rad + (a * n_slot + j) * k;
    facetpot::dot_block(t.gr, pu, w, wt[b], pu, k, pu, outs.data());
    const int64_t n_entries = (int64_t) value[b].size(), *cell = a_cell[b].data(), *harmonic = a_harmonic[b].data();
    for (int64_t j = 0; j < w; j++) {
      scalar_t *gj = g_sh + (a * n_slot + j) * d;
      const scalar_t *gaj = t.ga + j * nm * cols, *v = value[b].data();
      for (int64_t e = 0; e < n_entries; e++) gj[harmonic[e]] += v[e] * gaj[cell[e]];
    }
  }
};

// the columns of each path of a coupling (consecutive): first column and count per path
void path_columns(const Coupling &cp, std::vector<int64_t> &first, std::vector<int64_t> &count)
{
  first.assign(cp.paths, cp.cols), count.assign(cp.paths, 0);
  std::vector<int64_t> last(cp.paths, -1);
  for (size_t e = 0; e < cp.col.size(); e++) {
    const int64_t p = cp.path[cp.pair[e]];
    first[p] = std::min(first[p], cp.col[e]), last[p] = std::max(last[p], cp.col[e]);
  }
  int64_t total = 0;
  for (int64_t p = 0; p < cp.paths; p++) count[p] = last[p] + 1 - std::min(first[p], last[p] + 1), total += count[p];
  TORCH_CHECK(total == cp.cols, "facetpot::density_group: a path's message columns are not consecutive");
}

// the kernel's tables for one call (keep: the transposed features and weights it points into)
template <typename scalar_t>
EdgeKernel<scalar_t> edge_kernel(const Tensor &src, const Tensor &rad, const Tensor &sh, at::TensorList blocks,
                                 at::TensorList ms, const std::vector<Coupling> &cps, std::vector<Tensor> &keep)
{
  EdgeKernel<scalar_t> p{rad.data_ptr<scalar_t>(), sh.data_ptr<scalar_t>(), src.data_ptr<int64_t>(), src.size(1),
                         rad.size(2), sh.size(2), blocks[0].size(0)};
  p.cps = &cps;
  int64_t x_row = 0;
  for (size_t b = 0; b < blocks.size(); b++) {
    TORCH_CHECK(cps[b].rows == blocks[b].size(2) * sh.size(2) && ms[b].size(2) == rad.size(2),
                "facetpot::density_group: edge-first tables of another shape");
    keep.push_back(blocks[b].transpose(1, 2).contiguous());  // (N_send, m1, u)
    keep.push_back(ms[b].permute({2, 1, 0}).contiguous());   // (K, P, u)
    p.xt.push_back(keep[keep.size() - 2].data_ptr<scalar_t>()), p.wt.push_back(keep.back().data_ptr<scalar_t>());
    p.u.push_back(blocks[b].size(1)), p.m1.push_back(blocks[b].size(2)), p.paths.push_back(cps[b].paths);
    p.x_first.push_back(x_row), x_row += blocks[b].numel();
    p.path_first.emplace_back(), p.path_cols.emplace_back();
    path_columns(cps[b], p.path_first[b], p.path_cols[b]);
    p.value.emplace_back(cps[b].value.begin(), cps[b].value.end());
    p.a_cell.emplace_back(), p.a_harmonic.emplace_back();
    for (size_t e = 0; e < cps[b].col.size(); e++) {
      const int64_t row = cps[b].row[cps[b].pair[e]];
      p.a_cell[b].push_back(row / sh.size(2) * cps[b].cols + cps[b].col[e]), p.a_harmonic[b].push_back(row % sh.size(2));
    }
  }
  return p;
}

std::vector<Tensor> edge_forward(const Tensor &src_in, const Tensor &rad_in, const Tensor &sh_in, at::TensorList blocks,
                                 at::TensorList ms, const std::vector<Coupling> &cps)
{
  const Tensor src = src_in.contiguous(), rad = rad_in.contiguous(), sh = sh_in.contiguous();
  const int64_t n_recv = src.size(0), nb = blocks.size();
  std::vector<Tensor> out, keep;
  for (int64_t b = 0; b < nb; b++) out.push_back(at::empty({n_recv, blocks[b].size(1), cps[b].cols}, blocks[b].options()));
  AT_DISPATCH_FLOATING_TYPES(blocks[0].scalar_type(), "edge_forward", [&] {
    EdgeKernel<scalar_t> p = edge_kernel<scalar_t>(src, rad, sh, blocks, ms, cps, keep);
    for (int64_t b = 0; b < nb; b++) p.y.push_back(out[b].data_ptr<scalar_t>());
    at::parallel_for(0, n_recv, ATOMS_PER_THREAD, [&](int64_t a0, int64_t a1) {
      thread_local std::vector<scalar_t> buf;
      for (int64_t a = a0; a < a1; a++)
        for (int64_t b = 0, w = p.slots(a); b < nb; b++) p.forward(a, b, w, buf);
    });
  });
  return out;
}

// [g rad, g sh, g block_0, ...] of an edge-first group from its messages' gradients (one copy of g x per thread)
std::vector<Tensor> edge_backward(const Tensor &src_in, const Tensor &rad_in, const Tensor &sh_in,
                                  at::TensorList blocks, at::TensorList ms, const std::vector<Coupling> &cps,
                                  const std::vector<Tensor> &grads)
{
  const Tensor src = src_in.contiguous(), rad = rad_in.contiguous(), sh = sh_in.contiguous();
  const int64_t n_recv = src.size(0), nb = blocks.size();
  const int64_t threads = std::min<int64_t>(at::get_num_threads(), std::max<int64_t>(n_recv / ATOMS_PER_THREAD, 1));
  int64_t x_rows = 0;
  for (const Tensor &x : blocks) x_rows += x.numel();
  Tensor g_rad = at::zeros_like(rad), g_sh = at::zeros_like(sh), g_xs = at::zeros({threads, x_rows}, rad.options());
  std::vector<Tensor> gys, keep;
  for (int64_t b = 0; b < nb; b++) gys.push_back(grads[b].contiguous());
  AT_DISPATCH_FLOATING_TYPES(blocks[0].scalar_type(), "edge_backward", [&] {
    EdgeKernel<scalar_t> p = edge_kernel<scalar_t>(src, rad, sh, blocks, ms, cps, keep);
    for (int64_t b = 0; b < nb; b++) p.gy.push_back(gys[b].data_ptr<scalar_t>());
    p.g_rad = g_rad.data_ptr<scalar_t>(), p.g_sh = g_sh.data_ptr<scalar_t>();
    const int64_t grain = std::max<int64_t>(ATOMS_PER_THREAD, (n_recv + threads - 1) / threads);
    at::parallel_for(0, n_recv, grain, [&](int64_t a0, int64_t a1) {
      thread_local std::vector<scalar_t> buf;
      scalar_t *mine = g_xs.data_ptr<scalar_t>() + std::min<int64_t>(at::get_thread_num(), threads - 1) * x_rows;
      for (int64_t a = a0; a < a1; a++)
        for (int64_t b = 0, w = p.slots(a); b < nb; b++) p.backward(a, b, w, buf, mine);
    });
  });
  const Tensor g_x = threads == 1 ? g_xs[0] : g_xs.sum(0);
  std::vector<Tensor> out = {g_rad, g_sh};
  int64_t row = 0;
  for (const Tensor &x : blocks) {
    out.push_back(g_x.narrow(0, row, x.numel()).view({x.size(0), x.size(2), x.size(1)}).transpose(1, 2));
    row += x.numel();
  }
  return out;
}

// The backward of a group whose blocks are all factored, atom by atom without the chunk's density gradient in memory
// or a GEMM call: per receiving atom a, its density gradient gd (F x R, a few hundred kB: stays in cache) from the
// messages' gradients, then
//   g rb[a, j] = sum_i x[s_j, i] gd[i]       (combine_rows over the F rows, TILE_ROWS slots at a time)
//   g x[s_j, i] += rb[a, j] . gd[i]          (dot_block, added to the senders' rows: one copy of g x per thread)
template <typename scalar_t>
struct FusedBackward {
  const scalar_t *x, *rb;  // x_ext (N_send + 1, f); rb (N_recv, n_slot, r), unit stride in r
  const int64_t *src;
  int64_t f, r, n_slot, ra, rj, pad;
  std::vector<const scalar_t *> gy, w;  // per block: the messages' gradient (N_recv, u, cols) and W_b (u, P, K)
  std::vector<int64_t> first, u, m1, k;
  std::vector<std::vector<scalar_t>> value;
  const std::vector<Coupling> *cps;

  void density_gradient(int64_t a, scalar_t *gt, scalar_t *gd) const
  {
    for (size_t b = 0; b < u.size(); b++) {
      const Coupling &cp = (*cps)[b];
      for (int64_t ch = 0; ch < u[b]; ch++)
        channel_density_gradient(gy[b] + (a * u[b] + ch) * cp.cols, w[b] + ch * cp.paths * k[b], cp, value[b].data(),
                                 gt, gd + (first[b] + ch * m1[b]) * r, k[b]);
    }
  }

  // atom a's part: g rb[a] (all n_slot rows, padding zero) into g_rb where defined, g x into g_x where defined
  void atom(int64_t a, std::vector<scalar_t> &gt, std::vector<scalar_t> &gd, std::vector<scalar_t> &coef,
            std::vector<scalar_t *> &outs, scalar_t *g_rb, scalar_t *g_x) const
  {
    const int64_t *s = src + a * n_slot;
    int64_t wd = 0;
    while (wd < n_slot && s[wd] != pad) wd++;
    density_gradient(a, gt.data(), gd.data());
    if (g_rb) {
      scalar_t *o = g_rb + a * n_slot * r;
      for (int64_t j0 = 0; j0 < wd; j0 += TILE_ROWS) {
        const int64_t nr = std::min(TILE_ROWS, wd - j0);
        for (int64_t q = 0; q < nr; q++)
          for (int64_t i = 0; i < f; i++) coef[i * nr + q] = x[s[j0 + q] * f + i];
        facetpot::combine_rows(nr, o + j0 * r, r, coef.data(), gd.data(), r, f, r);
      }
      std::fill(o + wd * r, o + n_slot * r, scalar_t(0));
    }
    if (g_x) {
      for (int64_t j = 0; j < wd; j++) outs[j] = g_x + s[j] * f;
      facetpot::dot_block(rb + a * ra, rj, wd, gd.data(), r, f, r, outs.data());
    }
  }
};

std::pair<Tensor, Tensor> fused_backward(const Tensor &x_ext, const Tensor &src_in, const Tensor &rb_in,
                                         const std::vector<Tensor> &blocks, const std::vector<Tensor> &ms,
                                         const std::vector<Coupling> &cps, const variable_list &grads, bool need_rb,
                                         bool need_x)
{
  const Tensor rb = rb_in.stride(2) == 1 ? rb_in : rb_in.contiguous(), src = src_in.contiguous();
  const int64_t n_recv = src.size(0), n_slot = src.size(1), f = x_ext.size(1), r = rb.size(2);
  const int64_t workers = std::min<int64_t>(at::get_num_threads(), std::max<int64_t>(n_recv / ATOMS_PER_THREAD, 1));
  const int64_t threads = need_x ? workers : 1;  // copies of g x
  Tensor g_rb = need_rb ? at::empty({n_recv, n_slot, r}, rb.options()) : Tensor();
  Tensor g_xs = need_x ? at::zeros({threads, x_ext.size(0), f}, x_ext.options()) : Tensor();
  std::vector<Tensor> gys;
  for (size_t b = 0; b < blocks.size(); b++) gys.push_back(grads[b].contiguous());
  AT_DISPATCH_FLOATING_TYPES(x_ext.scalar_type(), "fused_backward", [&] {
    FusedBackward<scalar_t> p{x_ext.data_ptr<scalar_t>(), rb.data_ptr<scalar_t>(), src.data_ptr<int64_t>(), f, r,
                              n_slot, rb.stride(0), rb.stride(1), x_ext.size(0) - 1};
    p.cps = &cps;
    int64_t row = 0;
    for (size_t b = 0; b < blocks.size(); b++) {
      p.gy.push_back(gys[b].data_ptr<scalar_t>()), p.w.push_back(ms[b].data_ptr<scalar_t>());
      p.first.push_back(row), p.u.push_back(blocks[b].size(1)), p.m1.push_back(blocks[b].size(2));
      p.k.push_back(ms[b].size(2)), p.value.emplace_back(cps[b].value.begin(), cps[b].value.end());
      row += blocks[b].size(1) * blocks[b].size(2);
    }
    scalar_t *rb_out = need_rb ? g_rb.data_ptr<scalar_t>() : nullptr;
    scalar_t *x_out = need_x ? g_xs.data_ptr<scalar_t>() : nullptr;
    const int64_t grain = std::max<int64_t>(ATOMS_PER_THREAD, (n_recv + workers - 1) / workers);
    at::parallel_for(0, n_recv, grain, [&](int64_t a0, int64_t a1) {
      size_t pairs = 0;
      for (const Coupling &cp : cps) pairs = std::max(pairs, cp.row.size());
      thread_local std::vector<scalar_t> gt, gd, coef;  // kept from call to call: no large allocation per call
      thread_local std::vector<scalar_t *> outs;
      gt.resize(std::max(gt.size(), pairs)), gd.resize(std::max<size_t>(gd.size(), f * r));
      coef.resize(std::max<size_t>(coef.size(), f * TILE_ROWS)), outs.resize(std::max<size_t>(outs.size(), n_slot));
      scalar_t *mine = x_out ? x_out + std::min<int64_t>(at::get_thread_num(), threads - 1) * x_ext.size(0) * f : x_out;
      for (int64_t a = a0; a < a1; a++) p.atom(a, gt, gd, coef, outs, rb_out, mine);
    });
  });
  return {g_rb, need_x ? (threads == 1 ? g_xs[0] : g_xs.sum(0)) : Tensor()};
}

// (N_send + 1, F): the blocks' features side by side and a zero row for padding slots
Tensor extended(at::TensorList blocks)
{
  const int64_t n = blocks[0].size(0);
  int64_t f = 0;
  for (const Tensor &x : blocks) f += x.size(1) * x.size(2);
  Tensor x_ext = at::empty({n + 1, f}, blocks[0].options());
  x_ext.narrow(0, n, 1).zero_();
  int64_t col = 0;
  for (const Tensor &x : blocks) {
    const int64_t w = x.size(1) * x.size(2);
    x_ext.narrow(0, 0, n).narrow(1, col, w).copy_(x.reshape({n, w}));
    col += w;
  }
  return x_ext;
}

// first atom, end atom and slot width of every chunk of `chunk` receiving atoms
std::vector<int64_t> chunk_table(const Tensor &src, int64_t pad, int64_t chunk)
{
  const int64_t n = src.size(0), n_slot = src.size(1);
  chunk = std::max<int64_t>(1, chunk);
  std::vector<int64_t> out;
  const int64_t n_chunks = (n + chunk - 1) / chunk;
  if (n_chunks <= 1 || n_slot == 0) {
    for (int64_t a = 0; a < n; a += chunk) out.insert(out.end(), {a, std::min(a + chunk, n), n_slot});
    return out;
  }
  Tensor counts = src.ne(pad).sum(1);
  const int64_t tail = n_chunks * chunk - n;
  if (tail) counts = at::cat({counts, counts.new_zeros({tail})});
  Tensor widths = counts.view({n_chunks, chunk}).amax(1).to(torch::kCPU).contiguous();
  const int64_t *w = widths.data_ptr<int64_t>();
  for (int64_t k = 0; k < n_chunks; k++) out.insert(out.end(), {k * chunk, std::min((k + 1) * chunk, n), w[k]});
  return out;
}

// gD (C, F, R) of the chunk of C atoms from atom a: gD_b[., u] = gy_b[., u] M_b[u]^T, the blocks' rows side by side
Tensor chunk_density_gradient(const variable_list &grads, const std::vector<Tensor> &blocks,
                              const std::vector<Tensor> &ms, std::vector<Tensor> &t_bufs, Tensor g_dens, int64_t a,
                              int64_t c)
{
  const int64_t nb = (int64_t) blocks.size();
  int64_t row = 0;
  for (int64_t b = 0; b < nb; b++) {
    const int64_t u = blocks[b].size(1), rows = u * blocks[b].size(2), m1r = ms[b].size(1);
    Tensor gu = grads[b].narrow(0, a, c).transpose(0, 1);  // (u, C, cols)
    if (gu.stride(-1) != 1) gu = gu.contiguous();
    Tensor t = t_bufs[b].narrow(0, 0, u * c * m1r).view({u, c, m1r});
    at::bmm_out(t, gu, ms[b].transpose(1, 2));
    if (nb == 1 && rows == u)  // one block of scalars: (u, C, R) serves as (C, u, R) as is
      g_dens = t.transpose(0, 1);
    else  // (u, C, m1 R) -> (C, u m1, R)
      g_dens.narrow(1, row, rows).view({c, u, -1}).copy_(t.transpose(0, 1));
    row += rows;
  }
  return g_dens;
}

// one gradient per forward argument: src, rb, chunk, blocks... (the extended (N + 1, F) sender features' gradient
// cut back into the blocks' shapes), ms...
variable_list argument_gradients(AutogradContext *ctx, const Tensor &g_rb, const Tensor &g_x,
                                 const std::vector<Tensor> &blocks)
{
  const int64_t nb = (int64_t) blocks.size();
  variable_list out = {Tensor(), g_rb, Tensor()};
  int64_t col = 0;
  for (int64_t b = 0; b < nb; b++) {
    const int64_t w = blocks[b].size(1) * blocks[b].size(2);
    out.push_back(g_x.defined() && ctx->needs_input_grad(2 + b)
                      ? g_x.narrow(0, 0, g_x.size(0) - 1).narrow(1, col, w).view(blocks[b].sizes())
                      : Tensor());
    col += w;
  }
  for (int64_t b = 0; b < nb; b++) out.push_back(Tensor());
  return out;
}

// create_graph=True: the gradients by autograd through the plain formulation (differentiable ops, all atoms at
// once), keeping its graph, so second derivatives (Hessians) are exact too, just not faster
variable_list plain_gradients(AutogradContext *ctx, const variable_list &grads)
{
  variable_list saved = ctx->get_saved_variables();
  const int64_t nb = ctx->saved_data["n_blocks"].toInt();
  const Tensor &src = saved[0], &rb = saved[1];
  std::vector<Tensor> blocks(saved.begin() + 2, saved.begin() + 2 + nb), ms(saved.begin() + 2 + nb, saved.end());
  std::vector<Tensor> inputs;
  std::vector<int64_t> which;  // 1: rb, 2 + b: block b
  if (ctx->needs_input_grad(1)) inputs.push_back(rb), which.push_back(1);
  for (int64_t b = 0; b < nb; b++)
    if (ctx->needs_input_grad(2 + b)) inputs.push_back(blocks[b]), which.push_back(2 + b);
  variable_list out(3 + 2 * nb);
  if (inputs.empty()) return out;
  variable_list ys, gs;
  {
    torch::AutoGradMode enable(true);
    std::vector<Tensor> flat;
    for (const Tensor &x : blocks) flat.push_back(x.reshape({x.size(0), x.size(1) * x.size(2)}));
    Tensor x = flat.size() == 1 ? flat[0] : at::cat(flat, 1);
    x = at::cat({x, x.new_zeros({1, x.size(1)})});
    const int64_t c = src.size(0), n = src.size(1);
    Tensor dens = at::bmm(x.index_select(0, src.reshape({-1})).view({c, n, x.size(1)}).transpose(1, 2), rb);
    int64_t row = 0;
    for (int64_t b = 0; b < nb; b++) {
      const int64_t u = blocks[b].size(1), rows = u * blocks[b].size(2);
      if (grads[b].defined()) {
        ys.push_back(
            at::bmm(dens.narrow(1, row, rows).reshape({c, u, -1}).transpose(0, 1), ms[b]).transpose(0, 1));
        gs.push_back(grads[b]);
      }
      row += rows;
    }
  }
  variable_list got = torch::autograd::grad(ys, inputs, gs, /*retain_graph=*/true, /*create_graph=*/true,
                                            /*allow_unused=*/true);
  for (size_t k = 0; k < which.size(); k++) out[which[k] == 1 ? 1 : which[k] + 1] = got[k];
  return out;
}

// the forward of a group: messages of every block, and the chunk table (first atom, end atom, width per chunk)
std::vector<Tensor> group_forward(const Tensor &src, const Tensor &rb, int64_t chunk, at::TensorList blocks,
                                  at::TensorList ms, at::TensorList couplings, std::vector<int64_t> &chunks)
{
  TORCH_CHECK(!blocks.empty() && blocks.size() == ms.size(), "facetpot::density_group: one matrix per block");
  for (const Tensor &m : ms)
    TORCH_CHECK(!m.requires_grad(), "facetpot::density_group has no weight gradients (frozen weights only)");
  const int64_t nb = (int64_t) blocks.size();
  const std::vector<Coupling> cps = read_couplings(couplings, blocks.size());
  Tensor x_ext = extended(blocks);
  const int64_t n_recv = src.size(0), n_slot = src.size(1), f = x_ext.size(1), r = rb.size(2);
  if (factored(cps, 0)) {  // the engine's programs: every block of a group factored, on the CPU; atom by atom
    for (int64_t b = 0; b < nb; b++)  // forward and backward (fused_backward): no chunk table
      TORCH_CHECK(factored(cps, b), "facetpot::density_group: a group mixes factored and plain matrices");
    TORCH_CHECK(x_ext.device().is_cpu() && src.scalar_type() == at::kLong,
                "facetpot::density_group: factored matrices run on the CPU only");
    chunks.clear();
    return fused_forward(x_ext, src, rb, blocks, ms, cps);
  }
  chunks = chunk_table(src, x_ext.size(0) - 1, chunk);
  const int64_t width = std::min(std::max<int64_t>(1, chunk), n_recv);
  // workspaces reused by every chunk (a fresh multi-MB tensor per chunk costs page faults)
  Tensor xn_buf = scratch(0, {width * n_slot, f}, x_ext.options());
  Tensor dens_buf = scratch(1, {width, f, r}, x_ext.options());
  std::vector<std::vector<Tensor>> pieces(nb);
  for (size_t k = 0; k < chunks.size(); k += 3) {
    const int64_t a = chunks[k], c = chunks[k + 1] - a, w = chunks[k + 2];
    Tensor idx = src.narrow(0, a, c).narrow(1, 0, w).reshape({-1});
    Tensor xn = xn_buf.narrow(0, 0, c * w);
    at::index_select_out(xn, x_ext, 0, idx);
    Tensor dens = dens_buf.narrow(0, 0, c);
    at::bmm_out(dens, xn.view({c, w, f}).transpose(1, 2), rb.narrow(0, a, c).narrow(1, 0, w));  // (C, F, R)
    int64_t row = 0;
    for (int64_t b = 0; b < nb; b++) {
      const int64_t u = blocks[b].size(1), rows = u * blocks[b].size(2);
      Tensor d = dens.narrow(1, row, rows).reshape({c, u, -1}).transpose(0, 1);  // (u, C, m1 R)
      pieces[b].push_back(at::bmm(d, ms[b]));                                     // (u, C, cols)
      row += rows;
    }
  }
  std::vector<Tensor> out;
  for (int64_t b = 0; b < nb; b++) {
    out.push_back((pieces[b].size() == 1 ? pieces[b][0] : at::cat(pieces[b], 1)).transpose(0, 1));
  }
  return out;
}

// the backward of a group: (g rb or undefined, g x_ext (N_send + 1, F) or undefined) from the messages' gradients
std::pair<Tensor, Tensor> group_backward(const Tensor &src, const Tensor &rb, int64_t chunk,
                                         const std::vector<int64_t> &chunks, const std::vector<Tensor> &blocks,
                                         const std::vector<Tensor> &ms, at::TensorList couplings,
                                         const variable_list &grads, bool need_rb, bool need_x)
{
  const int64_t nb = (int64_t) blocks.size();
  const std::vector<Coupling> cps = read_couplings(couplings, blocks.size());
  Tensor x_ext = extended(blocks);
  if (factored(cps, 0) && x_ext.device().is_cpu())  // the engine's programs (group_forward: all blocks factored)
    return fused_backward(x_ext, src, rb, blocks, ms, cps, grads, need_rb, need_x);
  const int64_t n_recv = src.size(0), n_slot = src.size(1), r = rb.size(2), f = x_ext.size(1);
  bool trimmed = false;
  for (size_t k = 0; k < chunks.size(); k += 3) trimmed = trimmed || chunks[k + 2] < n_slot;
  Tensor g_rb, g_x;
  if (need_rb)  // slots a chunk does not read are padding: zero gradient
    g_rb = trimmed ? at::zeros({n_recv, n_slot, r}, rb.options()) : at::empty({n_recv, n_slot, r}, rb.options());
  if (need_x) g_x = at::zeros_like(x_ext);
  const int64_t width = std::min(std::max<int64_t>(1, chunk), n_recv);
  Tensor g_dens_buf = scratch(2, {width, f, r}, rb.options());
  Tensor xn_buf = scratch(0, {width * n_slot, f}, rb.options());
  Tensor g_rb_buf = trimmed && need_rb ? scratch(3, {width * n_slot * r}, rb.options()) : Tensor();
  std::vector<Tensor> t_bufs;  // plain matrices M_b here (factored groups returned above)
  for (int64_t b = 0; b < nb; b++)
    t_bufs.push_back(scratch(4 + b, {blocks[b].size(1) * width * ms[b].size(1)}, rb.options()));
  for (size_t k = 0; k < chunks.size(); k += 3) {
    const int64_t a = chunks[k], c = chunks[k + 1] - a, w = chunks[k + 2];
    Tensor g_dens = chunk_density_gradient(grads, blocks, ms, t_bufs, g_dens_buf.narrow(0, 0, c), a, c);
    Tensor s = src.narrow(0, a, c).narrow(1, 0, w).reshape({-1});
    if (need_rb) {
      Tensor xn = xn_buf.narrow(0, 0, c * w);
      at::index_select_out(xn, x_ext, 0, s);
      if (w == n_slot) {
        Tensor out = g_rb.narrow(0, a, c);
        at::bmm_out(out, xn.view({c, w, f}), g_dens);
      } else {
        Tensor tmp = g_rb_buf.narrow(0, 0, c * w * r).view({c, w, r});
        at::bmm_out(tmp, xn.view({c, w, f}), g_dens);
        g_rb.narrow(0, a, c).narrow(1, 0, w).copy_(tmp);
      }
    }
    if (need_x) {
      Tensor g_xn = xn_buf.narrow(0, 0, c * w).view({c, w, f});
      at::bmm_out(g_xn, rb.narrow(0, a, c).narrow(1, 0, w), g_dens.transpose(1, 2));  // (C, n, F)
      g_x.index_add_(0, s, g_xn.view({c * w, f}));
    }
  }
  return {g_rb, g_x};
}

struct DensityGroup : public torch::autograd::Function<DensityGroup> {
  static variable_list forward(AutogradContext *ctx, const Tensor &src, const Tensor &rb, int64_t chunk,
                               at::TensorList blocks, at::TensorList ms)
  {
    std::vector<int64_t> chunks;
    std::vector<Tensor> out = group_forward(src, rb, chunk, blocks, ms, {}, chunks);
    std::vector<Tensor> saved = {src, rb};
    for (const Tensor &x : blocks) saved.push_back(x);
    for (const Tensor &m : ms) saved.push_back(m);
    ctx->save_for_backward(saved);
    ctx->saved_data["chunk"] = chunk;
    ctx->saved_data["n_blocks"] = (int64_t) blocks.size();
    ctx->saved_data["chunks"] = chunks;
    return out;
  }

  static variable_list backward(AutogradContext *ctx, variable_list grads)
  {
    if (torch::GradMode::is_enabled()) return plain_gradients(ctx, grads);  // create_graph: double backward
    variable_list saved = ctx->get_saved_variables();
    const int64_t nb = ctx->saved_data["n_blocks"].toInt();
    std::vector<Tensor> blocks(saved.begin() + 2, saved.begin() + 2 + nb);
    std::vector<Tensor> ms(saved.begin() + 2 + nb, saved.end());
    // needs_input_grad counts tensor inputs only: src 0, rb 1, blocks 2 .. 2 + nb - 1
    bool need_x = false;
    for (int64_t b = 0; b < nb; b++) need_x = need_x || ctx->needs_input_grad(2 + b);
    auto g = group_backward(saved[0], saved[1], ctx->saved_data["chunk"].toInt(),
                            ctx->saved_data["chunks"].toIntVector(), blocks, ms, {}, grads, ctx->needs_input_grad(1),
                            need_x);
    return argument_gradients(ctx, g.first, g.second, blocks);
  }
};

std::vector<Tensor> density_group(const Tensor &src, const Tensor &rb, int64_t chunk, at::TensorList blocks,
                                  at::TensorList ms)
{
  return DensityGroup::apply(src, rb, chunk, blocks, ms);
}

}    // namespace

namespace facetpot {
std::vector<torch::Tensor> density_group_messages(const torch::Tensor &src, const torch::Tensor &rb, int64_t chunk,
                                                  at::TensorList blocks, at::TensorList ms)
{
  return density_group(src, rb, chunk, blocks, ms);
}

std::vector<at::Tensor> density_group_forward(const at::Tensor &src, const at::Tensor &rb, int64_t chunk,
                                              at::TensorList blocks, at::TensorList ms, at::TensorList couplings,
                                              std::vector<int64_t> &chunks)
{
  return group_forward(src, rb, chunk, blocks, ms, couplings, chunks);
}

std::vector<at::Tensor> density_group_edge_forward(const at::Tensor &src, const at::Tensor &rad, const at::Tensor &sh,
                                                   at::TensorList blocks, at::TensorList ms, at::TensorList couplings)
{
  const std::vector<Coupling> cps = read_couplings(couplings, blocks.size());
  for (size_t b = 0; b < blocks.size(); b++)
    TORCH_CHECK(factored(cps, b), "facetpot::density_group: edge first needs every block in factored form");
  TORCH_CHECK(src.device().is_cpu() && src.scalar_type() == at::kLong, "facetpot::density_group: CPU only");
  return edge_forward(src, rad, sh, blocks, ms, cps);
}

std::vector<at::Tensor> density_group_edge_backward(const at::Tensor &src, const at::Tensor &rad, const at::Tensor &sh,
                                                    at::TensorList blocks, at::TensorList ms, at::TensorList couplings,
                                                    const std::vector<at::Tensor> &grads)
{
  return edge_backward(src, rad, sh, blocks, ms, read_couplings(couplings, blocks.size()), grads);
}

at::Tensor factored_matrix(const at::Tensor &w, const at::Tensor &coupling)
{
  const Coupling cp = read_coupling(coupling);
  const int64_t u = w.size(0), r = w.size(2), n = (int64_t) cp.pair.size();
  std::vector<int64_t> path(n), cell(n);
  for (int64_t e = 0; e < n; e++) path[e] = cp.path[cp.pair[e]], cell[e] = cp.row[cp.pair[e]] * cp.cols + cp.col[e];
  at::Tensor value = at::tensor(cp.value, coupling.options()).to(w.scalar_type());
  at::Tensor terms = w.index_select(1, at::tensor(path)) * value.view({1, n, 1});  // (u, n, R)
  at::Tensor m = at::zeros({u, cp.rows * cp.cols, r}, w.options()).index_add_(1, at::tensor(cell), terms);
  return m.view({u, cp.rows, cp.cols, r}).permute({0, 1, 3, 2}).reshape({u, cp.rows * r, cp.cols});
}

std::vector<at::Tensor> density_group_backward(const at::Tensor &src, const at::Tensor &rb, int64_t chunk,
                                               const std::vector<int64_t> &chunks, const std::vector<at::Tensor> &blocks,
                                               const std::vector<at::Tensor> &ms, at::TensorList couplings,
                                               const std::vector<at::Tensor> &grads, bool need_rb, bool need_x)
{
  auto g = group_backward(src, rb, chunk, chunks, blocks, ms, couplings, grads, need_rb, need_x);
  std::vector<at::Tensor> out = {g.first};
  int64_t col = 0;
  for (const at::Tensor &x : blocks) {
    const int64_t w = x.size(1) * x.size(2);
    out.push_back(g.second.defined() ? g.second.narrow(0, 0, g.second.size(0) - 1).narrow(1, col, w).view(x.sizes())
                                     : at::Tensor());
    col += w;
  }
  return out;
}
}    // namespace facetpot

namespace {

const char *SCHEMA = "density_group(Tensor src, Tensor rb, int chunk, Tensor[] blocks, Tensor[] ms) -> Tensor[]";

struct Registration {
  std::unique_ptr<torch::Library> library;
  Registration()
  {
    if (c10::Dispatcher::singleton().findSchema({"facetpot::density_group", ""}).has_value()) return;
    library = std::make_unique<torch::Library>(torch::Library::FRAGMENT, "facetpot", std::nullopt, __FILE__, __LINE__);
    library->def(SCHEMA);
    library->impl("density_group", torch::dispatch(c10::DispatchKey::CompositeImplicitAutograd, &density_group));
  }
};

const Registration registration;

}    // namespace
