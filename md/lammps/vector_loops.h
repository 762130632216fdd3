// Short loops over contiguous rows in 32-byte vectors (GCC / Clang vector extension: AVX registers where the build
// targets them, two SSE registers otherwise), for the engine's kernels whose rows are too short for a GEMM call:
// the factored channel step (density_group_op.cpp) and the linear maps of a few atoms (frozen_program_op.cpp).
#pragma once

#include <cstdint>
#include <cstring>
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

#if defined(__AVX__)
// [sum a_0, ..., sum a_7]
inline __m256 sums8(const __m256 *a)
{
  const __m256 s01 = _mm256_hadd_ps(a[0], a[1]), s23 = _mm256_hadd_ps(a[2], a[3]);
  const __m256 s45 = _mm256_hadd_ps(a[4], a[5]), s67 = _mm256_hadd_ps(a[6], a[7]);
  const __m256 s0123 = _mm256_hadd_ps(s01, s23), s4567 = _mm256_hadd_ps(s45, s67);
  return _mm256_add_ps(_mm256_permute2f128_ps(s0123, s4567, 0x20), _mm256_permute2f128_ps(s0123, s4567, 0x31));
}

template <>
inline void dots<float>(const float *x, const float *w, const int64_t *xoff, const int64_t *woff, int64_t count,
                        int64_t n, float *out)
{
  const int64_t body = n - n % 8;
  int64_t q = 0;
  for (; q + 8 <= count; q += 8) {
    __m256 acc[8];
    float tail[8];
    for (int64_t j = 0; j < 8; j++) {
      const float *xq = x + xoff[q + j], *wq = w + woff[q + j];
      __m256 a = _mm256_setzero_ps();
      for (int64_t i = 0; i < body; i += 8) a = _mm256_fmadd_ps(_mm256_loadu_ps(xq + i), _mm256_loadu_ps(wq + i), a);
      acc[j] = a;
      float t = 0;
      for (int64_t i = body; i < n; i++) t += xq[i] * wq[i];
      tail[j] = t;
    }
    _mm256_storeu_ps(out + q, _mm256_add_ps(sums8(acc), _mm256_loadu_ps(tail)));
  }
  for (; q < count; q++) out[q] = dot(x + xoff[q], w + woff[q], n);
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

// out[i] = sum_j coef[j] rows[j * stride + i], i < len, j < n: a few rows combined, the partial sums of 32 floats
// (four vectors) at a time held in registers across the rows
template <typename scalar_t>
inline void combine_rows(scalar_t *out, const scalar_t *coef, const scalar_t *rows, int64_t stride, int64_t n,
                         int64_t len)
{
  typedef typename Vec<scalar_t>::type V;
  constexpr int64_t lanes = 32 / sizeof(scalar_t);
  int64_t i = 0;
  for (; i + 4 * lanes <= len; i += 4 * lanes) {
    V a0 = {}, a1 = {}, a2 = {}, a3 = {};
    for (int64_t j = 0; j < n; j++) {
      const scalar_t s = coef[j], *p = rows + j * stride + i;
      a0 += s * load(p), a1 += s * load(p + lanes), a2 += s * load(p + 2 * lanes), a3 += s * load(p + 3 * lanes);
    }
    std::memcpy(out + i, &a0, sizeof a0), std::memcpy(out + i + lanes, &a1, sizeof a1);
    std::memcpy(out + i + 2 * lanes, &a2, sizeof a2), std::memcpy(out + i + 3 * lanes, &a3, sizeof a3);
  }
  for (; i + lanes <= len; i += lanes) {
    V a = {};
    for (int64_t j = 0; j < n; j++) a += coef[j] * load(rows + j * stride + i);
    std::memcpy(out + i, &a, sizeof a);
  }
  for (; i < len; i++) {
    scalar_t a = 0;
    for (int64_t j = 0; j < n; j++) a += coef[j] * rows[j * stride + i];
    out[i] = a;
  }
}

}    // namespace facetpot
