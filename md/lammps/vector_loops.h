// Short loops over contiguous rows in 32-byte vectors (GCC / Clang vector extension: AVX registers where the build
// targets them, two SSE registers otherwise), for the engine's kernels whose rows are too short for a GEMM call:
// the factored channel step (density_group_op.cpp) and the linear maps of a few atoms (frozen_program_op.cpp).
#pragma once

#include <cstdint>
#include <cstring>

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

}    // namespace facetpot
