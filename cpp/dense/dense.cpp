// dense.cpp -- see dense.h for the formulas.
#include "dense/dense.h"

#include "common/cpu_features.h"
#include "common/elementwise.h"
#include "gemm/gemm.h"

namespace natverk {

template <typename T>
void bias_add(T* Z, const T* b, int64_t m, int64_t n) {
  parallel_for(m, n > 0 ? kElementwiseGrain / n + 1 : m, [&](int64_t lo, int64_t hi, int) {
    for (int64_t i = lo; i < hi; ++i) {
      T* z = Z + i * n;
      for (int64_t j = 0; j < n; ++j) z[j] += b[j];
    }
  });
}

namespace {

// Column sums of dZ[:, j0 : j0 + w] (w <= kBlock) into db, each column's in row order in double.
// The lanes run across columns, so vector width never changes a column's sequence of adds: one
// copy per SIMD level, chosen at run time as the GEMM's. The baseline copy, two doubles at a time,
// took 40 % of a float64 dense_backward(128 x 2 x 250, no dX) in the MATLAB-style loop.
constexpr int64_t kBlock = 64;

template <typename T>
__attribute__((always_inline)) inline void colsum_block(T* db, const T* dZ, int64_t m, int64_t n, int64_t j0,
                                                        int64_t w) {
  typename Acc<T>::type acc[kBlock] = {};
  for (int64_t i = 0; i < m; ++i) {
    const T* row = dZ + i * n + j0;
    for (int64_t j = 0; j < w; ++j) acc[j] += row[j];
  }
  for (int64_t j = 0; j < w; ++j) db[j0 + j] = static_cast<T>(acc[j]);
}

#define NATVERK_COLSUM(isa, attr)                                                                       \
  template <typename T>                                                                                 \
  attr void colsum_##isa(T* db, const T* dZ, int64_t m, int64_t n, int64_t j0, int64_t w) {            \
    colsum_block<T>(db, dZ, m, n, j0, w);                                                               \
  }
NATVERK_COLSUM(generic, )
#if defined(NATVERK_HAVE_X86_KERNELS)
NATVERK_COLSUM(avx2, __attribute__((target("avx2"))))
NATVERK_COLSUM(avx512, __attribute__((target("avx512f,avx512dq,avx512vl,avx512bw,avx2"))))
#endif
#undef NATVERK_COLSUM

template <typename T>
using ColsumFn = void (*)(T*, const T*, int64_t, int64_t, int64_t, int64_t);

template <typename T>
ColsumFn<T> colsum_kernel() {
  ColsumFn<T> f = &colsum_generic<T>;
#if defined(NATVERK_HAVE_X86_KERNELS)
  switch (simd_level()) {
    case SimdLevel::AVX512: f = &colsum_avx512<T>; break;
    case SimdLevel::AVX2: f = &colsum_avx2<T>; break;
    default: break;
  }
#endif
  return f;
}

}  // namespace

template <typename T>
void bias_grad_serial(T* db, const T* dZ, int64_t m, int64_t n, int64_t j0, int64_t j1) {
  const ColsumFn<T> f = colsum_kernel<T>();
  for (int64_t j = j0; j < j1; j += kBlock) f(db, dZ, m, n, j, (j1 - j) < kBlock ? (j1 - j) : kBlock);
}

template <typename T>
void bias_grad(T* db, const T* dZ, int64_t m, int64_t n) {
  // Columns in blocks so the accumulators stay in registers/L1; each column's
  // sum runs in row order, whatever the thread count (and whatever the blocks).
  const ColsumFn<T> f = colsum_kernel<T>();
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  parallel_for(blocks, m > 0 ? kElementwiseGrain / (m * kBlock) + 1 : blocks,
               [&](int64_t lo, int64_t hi, int) {
                 for (int64_t blk = lo; blk < hi; ++blk) {
                   const int64_t j0 = blk * kBlock;
                   f(db, dZ, m, n, j0, (n - j0) < kBlock ? (n - j0) : kBlock);
                 }
               });
}

template <typename T>
void dense_forward(T* H, const T* X, const T* W, const T* b, int64_t m, int64_t n_in,
                   int64_t n_out, Activation act, bool serial) {
  // H = f(X W + b): the bias and a ReLU in the GEMM's epilogue (gemm.h, gemm_bias_act), the
  // sigmoid and tanh in a pass after it. Same bits as H = broadcast(b); H += X W; H = f(H).
  const bool relu = act == Activation::ReLU;
  gemm_bias_act<T>(H, n_out, X, n_in, 1, W, n_out, 1, m, n_out, n_in, T(1), b, relu, serial);
  if (!relu && act != Activation::Identity) activation_forward<T>(H, H, m * n_out, act);
}

namespace {
// dX = dZ W^T, masked by the ReLU whose output X is when relu_mask (dense.h)
template <typename T>
void input_gradient(T* dX, const T* dZ, const T* X, const T* W, int64_t m, int64_t n_in, int64_t n_out,
                    bool relu_mask, bool serial = false) {
  // W^T: B = W read with its rows as columns (rows 1 apart, columns n_out apart)
  if (relu_mask) gemm_relu_mask<T>(dX, n_in, dZ, n_out, 1, W, 1, n_out, m, n_in, n_out, T(1), X, serial);
  else if (serial) gemm_serial_rowmajor<T>(false, true, m, n_in, n_out, T(1), dZ, n_out, W, n_out, T(0), dX, n_in);
  else gemm_rowmajor<T>(false, true, m, n_in, n_out, T(1), dZ, n_out, W, n_out, T(0), dX, n_in);
}
}  // namespace

template <typename T>
void dense_input_gradient_serial(T* dX, const T* dZ, const T* X, const T* W, int64_t m, int64_t n_in,
                                 int64_t n_out, bool relu_mask) {
  input_gradient(dX, dZ, X, W, m, n_in, n_out, relu_mask, true);
}

namespace {
// Rows [i0, i1) of dW = lambda W + X^T dZ over all m rows: lambda W filled in first, then X^T dZ
// added (beta = 1), or written (beta = 0) without lambda. A = X^T from column i0 of X (rows 1
// apart, columns n_in apart).
template <typename T>
void weight_gradient(T* dW, const T* dZ, const T* X, const T* W, int64_t m, int64_t n_in, int64_t n_out, T lambda,
                     int64_t i0, int64_t i1, bool serial) {
  if (i1 <= i0) return;
  T* d = dW + i0 * n_out;
  const T* w = W + i0 * n_out;
  if (lambda != T(0)) {
    const auto fill = [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) d[i] = lambda * w[i];
    };
    if (serial) fill(0, (i1 - i0) * n_out);
    else parallel_elementwise((i1 - i0) * n_out, fill);
  }
  const T beta = lambda != T(0) ? T(1) : T(0);
  if (serial) gemm_serial<T>(d, n_out, X + i0, 1, n_in, dZ, n_out, 1, i1 - i0, n_out, m, T(1), beta);
  else gemm<T>(d, n_out, X + i0, 1, n_in, dZ, n_out, 1, i1 - i0, n_out, m, T(1), beta);
}
}  // namespace

template <typename T>
void dense_weight_gradient_serial(T* dW, const T* dZ, const T* X, const T* W, int64_t m, int64_t n_in,
                                  int64_t n_out, T lambda, int64_t i0, int64_t i1) {
  weight_gradient(dW, dZ, X, W, m, n_in, n_out, lambda, i0, i1, true);
}

template <typename T>
void dense_backward(T* dX, T* dW, T* db, const T* dZ, const T* X, const T* W, int64_t m,
                    int64_t n_in, int64_t n_out, T lambda, bool relu_mask) {
  weight_gradient(dW, dZ, X, W, m, n_in, n_out, lambda, int64_t(0), n_in, false);
  bias_grad<T>(db, dZ, m, n_out);
  if (dX) input_gradient(dX, dZ, X, W, m, n_in, n_out, relu_mask);
}

template <typename T>
void dense_backward_update(T* dX, T* db, const T* dZ, const T* X, const T* W, int64_t m, int64_t n_in,
                           int64_t n_out, T* dW_scratch, const GemmTileUpdate<T>& upd, bool relu_mask) {
  if (dX) input_gradient(dX, dZ, X, W, m, n_in, n_out, relu_mask);
  bias_grad<T>(db, dZ, m, n_out);
  // X^T dZ: A = X^T (rows 1 apart, columns n_in apart), B = dZ
  gemm_update<T>(dW_scratch, n_out, X, 1, n_in, dZ, n_out, 1, n_in, n_out, m, T(1), upd);
}

#define NATVERK_INSTANTIATE(T)                                                               \
  template void bias_add<T>(T*, const T*, int64_t, int64_t);                                \
  template void bias_grad<T>(T*, const T*, int64_t, int64_t);                               \
  template void dense_forward<T>(T*, const T*, const T*, const T*, int64_t, int64_t, int64_t, \
                                 Activation, bool);                                         \
  template void dense_backward<T>(T*, T*, T*, const T*, const T*, const T*, int64_t, int64_t, \
                                  int64_t, T, bool);                                        \
  template void dense_backward_update<T>(T*, T*, const T*, const T*, const T*, int64_t, int64_t, int64_t, T*, \
                                         const GemmTileUpdate<T>&, bool);                     \
  template void bias_grad_serial<T>(T*, const T*, int64_t, int64_t, int64_t, int64_t);              \
  template void dense_input_gradient_serial<T>(T*, const T*, const T*, const T*, int64_t, int64_t, int64_t, bool); \
  template void dense_weight_gradient_serial<T>(T*, const T*, const T*, const T*, int64_t, int64_t, int64_t, T, \
                                                int64_t, int64_t);
NATVERK_INSTANTIATE(float)
NATVERK_INSTANTIATE(double)
#undef NATVERK_INSTANTIATE

}  // namespace natverk
