// winograd_weights.cpp -- U = G W G^T and dW = G^T dU G (see winograd_weights.h).
//
// Both run once per pass on every (k, c) pair, in double. Written scalar, one pair at a
// time, they were 15 % of a 256->256 @8 F(4x4) layer's fwd+bwd and 4 % of a VGG + BN (e)
// training step (perf, AVX-512 CPU, 1 thread): a pair is 9 inputs and 36 outputs, and
// UT's writes went K elements apart, a cache miss each once UT outgrew L2.
//
// Here kCB input channels are one step: their values sit side by side in small double
// arrays, and each half of a transform is a loop over those kCB lanes with the constant
// coefficients unrolled around it, which the compiler vectorizes. The k loop runs inside
// a block of channels, so the rows of UT a block writes (k contiguous) stay in cache
// while k advances. Every lane starts at 0.0 and adds the products in the scalar code's
// order (zero coefficients included: 0 * w is not dropped, so a NaN or -0 stays where it
// was), so the values are the scalar loops' bits.
#include "conv2d/winograd_weights.h"

#include "common/cpu_features.h"
#include "common/parallel.h"
#include "conv2d/winograd_matrices.h"

namespace natverk {

namespace {

constexpr int kCB = 16;  // input channels per step
// Output channels per step of UT's stores (UT[xi][c][k]: k contiguous). One k at a time they
// went K elements apart, 36 x 16 cache lines live at once, and were 60 % of the transform's
// time (perf, Zen 3, 64 -> 128 channels).
constexpr int kKB = 8;

inline int lanes(int64_t C, int64_t c0) { return C - c0 < kCB ? static_cast<int>(C - c0) : kCB; }

// Output channels [k0, k1) of winograd_weights_in.
template <typename T, int M>
__attribute__((always_inline)) inline void in_rows(T* U, T* UT, const T* Wt, int64_t K, int64_t C,
                                                   int64_t k0, int64_t k1) {
  constexpr int A = M + 2;
  // Lanes past a ragged block's n keep earlier (finite or not, but initialized) values
  // and are never stored.
  alignas(64) double w[9][kCB] = {};
  alignas(64) double gw[A][3][kCB];
  alignas(64) double ub[kKB][A * A][kCB];
  for (int64_t c0 = 0; c0 < C; c0 += kCB) {
    const int n = lanes(C, c0);
    for (int64_t kb = k0; kb < k1; kb += kKB) {
      const int nk = k1 - kb < kKB ? static_cast<int>(k1 - kb) : kKB;
      for (int kk = 0; kk < nk; ++kk) {
        const int64_t k = kb + kk;
        double (&u)[A * A][kCB] = ub[kk];
        const T* src = Wt + (k * C + c0) * 9;
        for (int e = 0; e < n; ++e)
          for (int ab = 0; ab < 9; ++ab) w[ab][e] = static_cast<double>(src[e * 9 + ab]);
        // gw[i][b] = sum_a G[i][a] w[a][b]
#pragma GCC unroll 6
        for (int i = 0; i < A; ++i)
#pragma GCC unroll 3
          for (int b = 0; b < 3; ++b)
            for (int e = 0; e < kCB; ++e) {
              double acc = 0.0;
#pragma GCC unroll 3
              for (int a = 0; a < 3; ++a) acc += Wino<M>::G[i][a] * w[a * 3 + b][e];
              gw[i][b][e] = acc;
            }
        // u[i][j] = sum_b gw[i][b] G[j][b]
#pragma GCC unroll 6
        for (int i = 0; i < A; ++i)
#pragma GCC unroll 6
          for (int j = 0; j < A; ++j)
            for (int e = 0; e < kCB; ++e) {
              double acc = 0.0;
#pragma GCC unroll 3
              for (int b = 0; b < 3; ++b) acc += gw[i][b][e] * Wino<M>::G[j][b];
              u[i * A + j][e] = acc;
            }
        if (U)
          for (int xi = 0; xi < A * A; ++xi) {
            T* o = U + (xi * K + k) * C + c0;
            for (int e = 0; e < n; ++e) o[e] = static_cast<T>(u[xi][e]);
          }
      }
      // UT's rows run over k: kKB of them at a time, not one element K apart per store
      if (UT)
        for (int xi = 0; xi < A * A; ++xi)
          for (int e = 0; e < n; ++e) {
            T* o = UT + (xi * C + c0 + e) * K + kb;
            for (int kk = 0; kk < nk; ++kk) o[kk] = static_cast<T>(ub[kk][xi][e]);
          }
    }
  }
}

// Output channels [k0, k1) of winograd_weights_out.
template <typename T, int M>
__attribute__((always_inline)) inline void out_rows(T* dW, const T* dU, int chunks, int64_t K,
                                                    int64_t C, int64_t k0, int64_t k1) {
  constexpr int A = M + 2, A2 = A * A;
  const int64_t ukc = A2 * K * C;
  alignas(64) double du[A2][kCB] = {};
  alignas(64) double gtd[3][A][kCB];
  alignas(64) double o[9][kCB];
  for (int64_t k = k0; k < k1; ++k)
    for (int64_t c0 = 0; c0 < C; c0 += kCB) {
      const int n = lanes(C, c0);
      // du[xi] = the chunks' partial sums, added in chunk order
      for (int xi = 0; xi < A2; ++xi) {
        for (int e = 0; e < kCB; ++e) du[xi][e] = 0.0;
        for (int ch = 0; ch < chunks; ++ch) {
          const T* p = dU + ch * ukc + (xi * K + k) * C + c0;
          for (int e = 0; e < n; ++e) du[xi][e] += static_cast<double>(p[e]);
        }
      }
      // gtd[a][j] = sum_i G[i][a] du[i][j]
#pragma GCC unroll 3
      for (int a = 0; a < 3; ++a)
#pragma GCC unroll 6
        for (int j = 0; j < A; ++j)
          for (int e = 0; e < kCB; ++e) {
            double acc = 0.0;
#pragma GCC unroll 6
            for (int i = 0; i < A; ++i) acc += Wino<M>::G[i][a] * du[i * A + j][e];
            gtd[a][j][e] = acc;
          }
      // o[a][b] = sum_j gtd[a][j] G[j][b]
#pragma GCC unroll 3
      for (int a = 0; a < 3; ++a)
#pragma GCC unroll 3
        for (int b = 0; b < 3; ++b)
          for (int e = 0; e < kCB; ++e) {
            double acc = 0.0;
#pragma GCC unroll 6
            for (int j = 0; j < A; ++j) acc += gtd[a][j][e] * Wino<M>::G[j][b];
            o[a * 3 + b][e] = acc;
          }
      T* out = dW + (k * C + c0) * 9;
      for (int e = 0; e < n; ++e)
        for (int ab = 0; ab < 9; ++ab) out[e * 9 + ab] = static_cast<T>(o[ab][e]);
    }
}

// One copy of each per SIMD level (as the GEMM's micro-kernels), chosen with simd_level().
#define NATVERK_WINO_WEIGHT_COPIES(isa, attr)                                                  \
  template <typename T, int M>                                                                 \
  attr void in_##isa(T* U, T* UT, const T* Wt, int64_t K, int64_t C, int64_t k0, int64_t k1) { \
    in_rows<T, M>(U, UT, Wt, K, C, k0, k1);                                                    \
  }                                                                                            \
  template <typename T, int M>                                                                 \
  attr void out_##isa(T* dW, const T* dU, int chunks, int64_t K, int64_t C, int64_t k0,        \
                      int64_t k1) {                                                            \
    out_rows<T, M>(dW, dU, chunks, K, C, k0, k1);                                              \
  }
NATVERK_WINO_WEIGHT_COPIES(generic, )
#if defined(NATVERK_HAVE_X86_KERNELS)
NATVERK_WINO_WEIGHT_COPIES(avx2, __attribute__((target("avx2"))))
NATVERK_WINO_WEIGHT_COPIES(avx512, __attribute__((target("avx512f,avx512dq,avx512vl,avx512bw,avx2"))))
#endif
#undef NATVERK_WINO_WEIGHT_COPIES

}  // namespace

template <typename T, int M>
void winograd_weights_in(T* U, T* UT, const T* Wt, int64_t K, int64_t C) {
  void (*f)(T*, T*, const T*, int64_t, int64_t, int64_t, int64_t) = &in_generic<T, M>;
#if defined(NATVERK_HAVE_X86_KERNELS)
  switch (simd_level()) {
    case SimdLevel::AVX512: f = &in_avx512<T, M>; break;
    case SimdLevel::AVX2: f = &in_avx2<T, M>; break;
    default: break;
  }
#endif
  parallel_for(K, 1, [&](int64_t k0, int64_t k1, int) { f(U, UT, Wt, K, C, k0, k1); });
}

template <typename T, int M>
void winograd_weights_out(T* dW, const T* dU, int chunks, int64_t K, int64_t C) {
  void (*f)(T*, const T*, int, int64_t, int64_t, int64_t, int64_t) = &out_generic<T, M>;
#if defined(NATVERK_HAVE_X86_KERNELS)
  switch (simd_level()) {
    case SimdLevel::AVX512: f = &out_avx512<T, M>; break;
    case SimdLevel::AVX2: f = &out_avx2<T, M>; break;
    default: break;
  }
#endif
  parallel_for(K, 1, [&](int64_t k0, int64_t k1, int) { f(dW, dU, chunks, K, C, k0, k1); });
}

#define NATVERK_INSTANTIATE(T, M)                                                     \
  template void winograd_weights_in<T, M>(T*, T*, const T*, int64_t, int64_t);        \
  template void winograd_weights_out<T, M>(T*, const T*, int, int64_t, int64_t);
NATVERK_INSTANTIATE(float, 2)
NATVERK_INSTANTIATE(float, 4)
NATVERK_INSTANTIATE(double, 2)
NATVERK_INSTANTIATE(double, 4)
#undef NATVERK_INSTANTIATE

}  // namespace natverk
