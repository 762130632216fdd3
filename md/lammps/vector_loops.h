// Short loops over contiguous rows in 32-byte vectors (GCC / Clang vector extension: AVX registers where the build
// targets them, two SSE registers otherwise), for the engine's kernels whose rows are too short for a GEMM call:
// the density rows, the factored channel step and its gradient, and the backward's products of a group
// (density_group_op.cpp fused_forward, fused_backward), and the linear maps of a few atoms (frozen_program_op.cpp).
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>
#if defined(__AVX__)
#include <immintrin.h>
#endif

namespace facetpot {

template <typename scalar_t> struct Vec;
template <> struct Vec<float> { typedef float type __attribute__((vector_size(32))); };
template <> struct Vec<double> { typedef double type __attribute__((vector_size(32))); };

template <typename scalar_t>
inline typename Vec<scalar_t>::type load(const scalar_t *p)
{
  typename Vec<scalar_t>::type v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// x . w over n
template <typename scalar_t>
inline scalar_t dot(const scalar_t *x, const scalar_t *w, int64_t n)
{
  constexpr int64_t lanes = 32 / sizeof(scalar_t);
  typename Vec<scalar_t>::type part = {};
  int64_t i = 0;
  for (; i + lanes <= n; i += lanes) part += load(x + i) * load(w + i);
  scalar_t acc = 0;
  for (; i < n; i++) acc += x[i] * w[i];
  for (int64_t j = 0; j < lanes; j++) acc += part[j];
  return acc;
}

// out[q] = x[xoff[q]:] . w[woff[q]:] over n, q < count: many short dot products, their partial sums reduced eight
// at a time (AVX, float: one vector of eight results from eight vectors, instead of a horizontal sum each)
template <typename scalar_t>
inline void dots(const scalar_t *x, const scalar_t *w, const int64_t *xoff, const int64_t *woff, int64_t count,
                 int64_t n, scalar_t *out)
{
  for (int64_t q = 0; q < count; q++) out[q] = dot(x + xoff[q], w + woff[q], n);
}

// outs[j][i] += a_j . b_i over n, j < nj, i < ni, a_j = a + j sa and b_i = b + i sb: the products of the rows of two
// matrices (a GEMM A B^T whose output rows lie anywhere: the engine's backward adds them to the senders' rows)
template <typename scalar_t>
inline void dot_block(const scalar_t *a, int64_t sa, int64_t nj, const scalar_t *b, int64_t sb, int64_t ni, int64_t n,
                      scalar_t *const *outs)
{
  for (int64_t j = 0; j < nj; j++)
    for (int64_t i = 0; i < ni; i++) outs[j][i] += dot(a + j * sa, b + i * sb, n);
}

#if defined(__AVX2__) && defined(__FMA__)
// the lanes below `lanes` (0 .. 8) set: the mask of a vector's first `lanes` floats (maskload / maskstore)
inline __m256i tail_mask(int64_t lanes)
{
  return _mm256_cmpgt_epi32(_mm256_set1_epi32((int) lanes), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// [sum a_0, ..., sum a_7]
inline __m256 sums8(const __m256 *a)
{
  const __m256 s01 = _mm256_hadd_ps(a[0], a[1]), s23 = _mm256_hadd_ps(a[2], a[3]);
  const __m256 s45 = _mm256_hadd_ps(a[4], a[5]), s67 = _mm256_hadd_ps(a[6], a[7]);
  const __m256 s0123 = _mm256_hadd_ps(s01, s23), s4567 = _mm256_hadd_ps(s45, s67);
  return _mm256_add_ps(_mm256_permute2f128_ps(s0123, s4567, 0x20), _mm256_permute2f128_ps(s0123, s4567, 0x31));
}

// the dot products of dots<float> for n = 8 NV + t (t < 8 lanes loaded under `mask` where TAIL): no loop over n,
// eight products at once (independent chains), one reduction for eight results (sums8); the last count % 8 with
// zero vectors in the unused places
template <int NV, bool TAIL>
inline void dots8(const float *x, const float *w, const int64_t *xoff, const int64_t *woff, int64_t count,
                  __m256i mask, float *out)
{
  for (int64_t q = 0; q < count; q += 8) {
    const int64_t m = count - q < 8 ? count - q : 8;
    __m256 acc[8];
    for (int j = 0; j < 8; j++) {
      if (j >= m) {
        acc[j] = _mm256_setzero_ps();
        continue;
      }
      const float *xq = x + xoff[q + j], *wq = w + woff[q + j];
      __m256 a = _mm256_mul_ps(_mm256_loadu_ps(xq), _mm256_loadu_ps(wq));
      for (int v = 1; v < NV; v++) a = _mm256_fmadd_ps(_mm256_loadu_ps(xq + 8 * v), _mm256_loadu_ps(wq + 8 * v), a);
      if (TAIL) a = _mm256_fmadd_ps(_mm256_maskload_ps(xq + 8 * NV, mask), _mm256_maskload_ps(wq + 8 * NV, mask), a);
      acc[j] = a;
    }
    if (m == 8) {
      _mm256_storeu_ps(out + q, sums8(acc));
    } else {
      float part[8];
      _mm256_storeu_ps(part, sums8(acc));
      for (int64_t j = 0; j < m; j++) out[q + j] = part[j];
    }
  }
}

template <>
inline void dots<float>(const float *x, const float *w, const int64_t *xoff, const int64_t *woff, int64_t count,
                        int64_t n, float *out)
{
  const __m256i mask = tail_mask(n % 8);
  switch (n) {  // the engine's radial widths (K = 16, 20; a rank of 8 .. 32)
    case 8: return dots8<1, false>(x, w, xoff, woff, count, mask, out);
    case 12: return dots8<1, true>(x, w, xoff, woff, count, mask, out);
    case 16: return dots8<2, false>(x, w, xoff, woff, count, mask, out);
    case 20: return dots8<2, true>(x, w, xoff, woff, count, mask, out);
    case 24: return dots8<3, false>(x, w, xoff, woff, count, mask, out);
    case 32: return dots8<4, false>(x, w, xoff, woff, count, mask, out);
    default: break;
  }
  for (int64_t q = 0; q < count; q++) out[q] = dot(x + xoff[q], w + woff[q], n);
}

// dot_block's tiles: JT rows of a and 8 / JT rows of b (2 x 4 or 1 x 8), eight chains over n, reduced at once
template <int JT>
inline void dot_tile(const float *a, int64_t sa, const float *b, int64_t sb, int64_t n, __m256i mask, float *const *outs,
                     int64_t i)
{
  constexpr int IT = 8 / JT;
  const int64_t body = n - n % 8;
  __m256 acc[8];
  for (int q = 0; q < 8; q++) acc[q] = _mm256_setzero_ps();
  for (int64_t k = 0; k < body; k += 8) {
    __m256 x[JT];
    for (int t = 0; t < JT; t++) {
      x[t] = _mm256_loadu_ps(a + t * sa + k);
      asm("" : "+x"(x[t]));  // in a register, not folded into every multiply-add (combine_tile's empty asm)
    }
    for (int q = 0; q < IT; q++) {
      __m256 y = _mm256_loadu_ps(b + q * sb + k);
      asm("" : "+x"(y));
      for (int t = 0; t < JT; t++) acc[t * IT + q] = _mm256_fmadd_ps(x[t], y, acc[t * IT + q]);
    }
  }
  if (body < n)
    for (int q = 0; q < IT; q++) {
      const __m256 y = _mm256_maskload_ps(b + q * sb + body, mask);
      for (int t = 0; t < JT; t++)
        acc[t * IT + q] = _mm256_fmadd_ps(_mm256_maskload_ps(a + t * sa + body, mask), y, acc[t * IT + q]);
    }
  float part[8];
  _mm256_storeu_ps(part, sums8(acc));
  for (int t = 0; t < JT; t++)
    for (int q = 0; q < IT; q++) outs[t][i + q] += part[t * IT + q];
}

template <>
inline void dot_block<float>(const float *a, int64_t sa, int64_t nj, const float *b, int64_t sb, int64_t ni, int64_t n,
                             float *const *outs)
{
  const __m256i mask = tail_mask(n % 8);
  int64_t j = 0;
  for (; j < nj; j += 2) {
    const bool pair = j + 2 <= nj;
    const int64_t it = pair ? 4 : 8;
    int64_t i = 0;
    for (; i + it <= ni; i += it) {
      if (pair) dot_tile<2>(a + j * sa, sa, b + i * sb, sb, n, mask, outs + j, i);
      else dot_tile<1>(a + j * sa, sa, b + i * sb, sb, n, mask, outs + j, i);
    }
    for (int64_t t = j; t < j + (pair ? 2 : 1); t++)
      for (int64_t c = i; c < ni; c++) outs[t][c] += dot(a + t * sa, b + c * sb, n);
  }
}
#endif

// o += s w over n
template <typename scalar_t>
inline void axpy(scalar_t *o, scalar_t s, const scalar_t *w, int64_t n)
{
  constexpr int64_t lanes = 32 / sizeof(scalar_t);
  int64_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    typename Vec<scalar_t>::type v = load(o + i) + s * load(w + i);
    std::memcpy(o + i, &v, sizeof v);
  }
  for (; i < n; i++) o[i] += s * w[i];
}

// o[i] = sum_q s[pairs[q]] w[rows[q] n + i] over i < n, q < count: a row that sums several scaled rows of w, summed
// in registers and stored once (adding into o row by row would wait on its own stores)
template <typename scalar_t>
inline void combine_scaled_loop(scalar_t *o, const scalar_t *w, int64_t n, const scalar_t *s, const int64_t *pairs,
                                const int64_t *rows, int64_t count)
{
  for (int64_t i = 0; i < n; i++) {
    scalar_t acc = 0;
    for (int64_t q = 0; q < count; q++) acc += s[pairs[q]] * w[rows[q] * n + i];
    o[i] = acc;
  }
}

template <typename scalar_t>
inline void combine_scaled(scalar_t *o, const scalar_t *w, int64_t n, const scalar_t *s, const int64_t *pairs,
                           const int64_t *rows, int64_t count)
{
  combine_scaled_loop(o, w, n, s, pairs, rows, count);
}

#if defined(__AVX2__) && defined(__FMA__)
// combine_scaled for n = 8 NV + t (t < 8 lanes under `mask` where TAIL): the row's vectors all in registers
template <int NV, bool TAIL>
inline void combine_scaled8(float *o, const float *w, int64_t n, const float *s, const int64_t *pairs,
                            const int64_t *rows, int64_t count, __m256i mask)
{
  __m256 a[NV + 1];
  for (int v = 0; v <= NV; v++) a[v] = _mm256_setzero_ps();
  for (int64_t q = 0; q < count; q++) {
    const __m256 b = _mm256_broadcast_ss(s + pairs[q]);
    const float *wq = w + rows[q] * n;
    for (int v = 0; v < NV; v++) a[v] = _mm256_fmadd_ps(b, _mm256_loadu_ps(wq + 8 * v), a[v]);
    if (TAIL) a[NV] = _mm256_fmadd_ps(b, _mm256_maskload_ps(wq + 8 * NV, mask), a[NV]);
  }
  for (int v = 0; v < NV; v++) _mm256_storeu_ps(o + 8 * v, a[v]);
  if (TAIL) _mm256_maskstore_ps(o + 8 * NV, mask, a[NV]);
}

template <>
inline void combine_scaled<float>(float *o, const float *w, int64_t n, const float *s, const int64_t *pairs,
                                  const int64_t *rows, int64_t count)
{
  const __m256i mask = tail_mask(n % 8);
  switch (n) {  // the engine's radial widths, as in dots
    case 8: return combine_scaled8<1, false>(o, w, n, s, pairs, rows, count, mask);
    case 12: return combine_scaled8<1, true>(o, w, n, s, pairs, rows, count, mask);
    case 16: return combine_scaled8<2, false>(o, w, n, s, pairs, rows, count, mask);
    case 20: return combine_scaled8<2, true>(o, w, n, s, pairs, rows, count, mask);
    case 24: return combine_scaled8<3, false>(o, w, n, s, pairs, rows, count, mask);
    case 32: return combine_scaled8<4, false>(o, w, n, s, pairs, rows, count, mask);
    default: break;
  }
  combine_scaled_loop(o, w, n, s, pairs, rows, count);
}
#endif

// out[t * out_stride + i] = sum_j coef[j * NR + t] rows[j * stride + i], t < NR, i < len: NR rows combined at once,
// a register tile of NR x 2 vectors (NR = 6: twelve accumulators, the two vectors of `rows` and a broadcast fill the
// sixteen AVX registers), every vector of `rows` loaded serving NR rows. The empty asm keeps the two loaded vectors
// in registers: without it the compiler folds the loads into the multiply-adds, one load per multiply-add again,
// and the loop runs at the load ports' speed (half the peak; 11-14 against 24 GFMA/s on this repository's CPU).
template <int NR, typename scalar_t>
inline void combine_tile(scalar_t *out, int64_t out_stride, const scalar_t *coef, const scalar_t *rows, int64_t stride,
                         int64_t n, int64_t len)
{
  typedef typename Vec<scalar_t>::type V;
  constexpr int64_t lanes = 32 / sizeof(scalar_t);
  int64_t i = 0;
#if defined(__AVX2__) && defined(__FMA__)
  if constexpr (std::is_same<scalar_t, float>::value) {  // the same in intrinsics: ~15% faster than GCC's loop
    for (; i + 16 <= len; i += 16) {
      __m256 a0[NR], a1[NR];
      for (int t = 0; t < NR; t++) a0[t] = _mm256_setzero_ps(), a1[t] = _mm256_setzero_ps();
      const float *p = rows + i, *c = coef;
      for (int64_t j = 0; j < n; j++, p += stride, c += NR) {
        const __m256 r0 = _mm256_loadu_ps(p), r1 = _mm256_loadu_ps(p + 8);
        for (int t = 0; t < NR; t++) {
          const __m256 b = _mm256_broadcast_ss(c + t);
          a0[t] = _mm256_fmadd_ps(b, r0, a0[t]), a1[t] = _mm256_fmadd_ps(b, r1, a1[t]);
        }
      }
      for (int t = 0; t < NR; t++)
        _mm256_storeu_ps(out + t * out_stride + i, a0[t]), _mm256_storeu_ps(out + t * out_stride + i + 8, a1[t]);
    }
    for (; i < len; i += 8) {  // the last len % 16 columns: one vector at a time, the last under a mask
      const __m256i m = tail_mask(len - i);
      __m256 a0[NR];
      for (int t = 0; t < NR; t++) a0[t] = _mm256_setzero_ps();
      const float *p = rows + i, *c = coef;
      for (int64_t j = 0; j < n; j++, p += stride, c += NR) {
        const __m256 r0 = _mm256_maskload_ps(p, m);
        for (int t = 0; t < NR; t++) a0[t] = _mm256_fmadd_ps(_mm256_broadcast_ss(c + t), r0, a0[t]);
      }
      for (int t = 0; t < NR; t++) _mm256_maskstore_ps(out + t * out_stride + i, m, a0[t]);
    }
  }
#endif
  for (; i + 2 * lanes <= len; i += 2 * lanes) {
    V a[NR][2] = {};
    for (int64_t j = 0; j < n; j++) {
      const scalar_t *p = rows + j * stride + i;
      V r0 = load(p), r1 = load(p + lanes);
#if defined(__AVX__)
      asm("" : "+x"(r0), "+x"(r1));
#endif
      for (int t = 0; t < NR; t++) {
        const scalar_t s = coef[j * NR + t];
        a[t][0] += s * r0, a[t][1] += s * r1;
      }
    }
    for (int t = 0; t < NR; t++)
      std::memcpy(out + t * out_stride + i, &a[t][0], sizeof(V)),
          std::memcpy(out + t * out_stride + i + lanes, &a[t][1], sizeof(V));
  }
  for (int t = 0; t < NR; t++)
    for (int64_t c = i; c < len; c++) {
      scalar_t a = 0;
      for (int64_t j = 0; j < n; j++) a += coef[j * NR + t] * rows[j * stride + c];
      out[t * out_stride + c] = a;
    }
}

// combine_tile for nr (1 .. 6) rows
template <typename scalar_t>
inline void combine_rows(int64_t nr, scalar_t *out, int64_t out_stride, const scalar_t *coef, const scalar_t *rows,
                         int64_t stride, int64_t n, int64_t len)
{
  switch (nr) {
    case 6: combine_tile<6>(out, out_stride, coef, rows, stride, n, len); break;
    case 5: combine_tile<5>(out, out_stride, coef, rows, stride, n, len); break;
    case 4: combine_tile<4>(out, out_stride, coef, rows, stride, n, len); break;
    case 3: combine_tile<3>(out, out_stride, coef, rows, stride, n, len); break;
    case 2: combine_tile<2>(out, out_stride, coef, rows, stride, n, len); break;
    default: combine_tile<1>(out, out_stride, coef, rows, stride, n, len); break;
  }
}

}    // namespace facetpot
