// winograd_rows.h -- the copies between image rows and a Winograd block's phase-major
// rows (winograd.cpp, "Layout of a block"), one version per SIMD level.
//
//   gather:  rp[ph * L + q] = row[q*m + ph - off]   for q < P, ph < m,
//            0 where q*m + ph - off falls outside [0, len) (the padding);
//   scatter: out[w] = src[ph * L + q]   (or +=)     for the same (q, ph), w = q*m + ph - off,
//            only where w lies in [0, len).
//
// gather reads the input rows (input_block) and dY's rows (grad_block); scatter writes
// the output rows (output_block) and adds into dX (scatter_block). Element by element
// these loops stride by m on one side, so the compiler leaves them scalar, and with a
// band only tw + 1 groups long (8 for a 14-pixel row under F(2x2)) they are too short
// to vectorise anyway: perf put a third of the F(2x2) transforms' time (MNIST 32->64
// @14, AVX-512) on them. The vector versions (winograd_rows.inc) move one register of
// consecutive row elements at a time: a masked load that zeroes the padding, one
// permutation to phase-major order, a masked store per phase (and the reverse for
// scatter). They move the same values to the same places and add in the same order, so
// every SIMD level gives the scalar loops' bits.
#pragma once
#include <cstdint>

namespace natverk {
namespace wino_rows {

// [begin, end) is the array the row lies in: a vector version may read any element of it
// (a plain load that reaches past the row into its neighbours, the lanes then cleared),
// never one outside it.
template <typename T>
using GatherFn = void (*)(T* rp, int64_t L, const T* row, int64_t off, int64_t len, int64_t P,
                          const T* begin, const T* end);
template <typename T>
using ScatterFn = void (*)(T* out, int64_t len, const T* src, int64_t L, int64_t off, int64_t P);
// Between a row of nb bands of P slots (the last one of each band a dummy) and the same
// row's nb * tw tiles, compact (winograd.cpp, "Layout of a block"):
//   compact: dst[bi*tw + q] = src[bi*P + q]                       for q < tw;
//   expand:  dst[bi*P + q] = src[bi*tw + q], dst[bi*P + tw] = 0.
template <typename T>
using SlotFn = void (*)(T* dst, const T* src, int64_t nb, int64_t P, int64_t tw);

// One SIMD level's copies for phase count M: gather, scatter (=), scatter (+=); and the
// slot copies, compact and expand.
template <typename T>
struct RowFns {
  GatherFn<T> gather;
  ScatterFn<T> store;
  ScatterFn<T> add;
  SlotFn<T> compact;
  SlotFn<T> expand;
};

// The whole groups q in [q0, q1) whose m elements all lie inside the row.
template <int M>
inline void inner_groups(int64_t off, int64_t len, int64_t P, int64_t& q0, int64_t& q1) {
  q0 = (off + M - 1) / M;
  q1 = len + off >= M ? (len + off - M) / M + 1 : 0;
  if (q1 > P) q1 = P;
  if (q1 < q0) q1 = q0;
}

// The scalar loops (any CPU): the groups inside the row without bounds checks, then
// the few at its ends with them.
template <typename T, int M>
void gather_scalar(T* __restrict rp, int64_t L, const T* __restrict row, int64_t off, int64_t len,
                   int64_t P, const T*, const T*) {
  int64_t q0, q1;
  inner_groups<M>(off, len, P, q0, q1);
  for (int64_t q = q0; q < q1; ++q)
#pragma GCC unroll 4
    for (int ph = 0; ph < M; ++ph) rp[ph * L + q] = row[q * M + ph - off];
  for (int64_t q = 0; q < P; ++q) {
    if (q == q0) q = q1;
    if (q >= P) break;
    for (int ph = 0; ph < M; ++ph) {
      const int64_t w = q * M + ph - off;
      rp[ph * L + q] = (w >= 0 && w < len) ? row[w] : T(0);
    }
  }
}

template <typename T, int M, bool Add>
void scatter_scalar(T* __restrict out, int64_t len, const T* __restrict src, int64_t L, int64_t off,
                    int64_t P) {
  int64_t q0, q1;
  inner_groups<M>(off, len, P, q0, q1);
  for (int64_t q = q0; q < q1; ++q)
#pragma GCC unroll 4
    for (int ph = 0; ph < M; ++ph) {
      T& o = out[q * M + ph - off];
      o = Add ? o + src[ph * L + q] : src[ph * L + q];
    }
  for (int64_t q = 0; q < P; ++q) {
    if (q == q0) q = q1;
    if (q >= P) break;
    for (int ph = 0; ph < M; ++ph) {
      const int64_t w = q * M + ph - off;
      if (w >= 0 && w < len) out[w] = Add ? out[w] + src[ph * L + q] : src[ph * L + q];
    }
  }
}

template <typename T>
void compact_scalar(T* __restrict dst, const T* __restrict src, int64_t nb, int64_t P, int64_t tw) {
  for (int64_t bi = 0; bi < nb; ++bi)
    for (int64_t q = 0; q < tw; ++q) dst[bi * tw + q] = src[bi * P + q];
}

template <typename T>
void expand_scalar(T* __restrict dst, const T* __restrict src, int64_t nb, int64_t P, int64_t tw) {
  for (int64_t bi = 0; bi < nb; ++bi) {
    for (int64_t q = 0; q < tw; ++q) dst[bi * P + q] = src[bi * tw + q];
    dst[bi * P + tw] = T(0);
  }
}

// The vector versions, compiled with -m flags in winograd_rows_avx2.cpp and
// winograd_rows_avx512.cpp; each ISA in its own namespace, as the GEMM's.
#define NATVERK_DECLARE_WINO_ROWS(ns)         \
  namespace ns {                              \
  template <typename T, int M>                \
  RowFns<T> row_fns();                        \
  }
NATVERK_DECLARE_WINO_ROWS(avx2)
NATVERK_DECLARE_WINO_ROWS(avx512)
#undef NATVERK_DECLARE_WINO_ROWS

}  // namespace wino_rows
}  // namespace natverk
