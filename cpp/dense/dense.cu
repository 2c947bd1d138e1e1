// dense.cu -- the CUDA twin of dense.cpp: the fully connected layer on the tiled GEMM engine
// (gemm_tile.cuh), with the bias, the L2 term and the store fused into the GEMM's epilogue.
// Formulas in dense.h (thesis §2.1, eq. 9 for the L2 gradient).
//
//   forward:  H = f(X W + b)        X (m x n_in) row-major, W (n_in x n_out), H (m x n_out)
//   backward: dW = X^T dZ + lambda W,  db = column sums of dZ (in double),  dX = dZ W^T
//
// The rounding matches the CPU: there H = b and the GEMM adds X W onto it (acc + b); dW is
// lambda W and the GEMM adds X^T dZ onto it (acc + lambda W).
#include "activations/activations.h"
#include "common/cuda_common.h"
#include "dense/dense.h"
#include "gemm/gemm_tile.cuh"

namespace natverk {
namespace cuda {

namespace {
template <typename T>
struct BiasStore {  // H[i, j] = v + b[j]
  T* H;
  const T* b;
  int64_t n;
  __device__ void operator()(int64_t i, int64_t j, T v) const { H[i * n + j] = v + b[j]; }
};

template <typename T>
struct L2Store {  // dW[i, j] = v + lambda W[i, j]  (just v when lambda == 0, as the CPU)
  T* dW;
  const T* W;
  int64_t n;
  T lambda;
  __device__ void operator()(int64_t i, int64_t j, T v) const {
    const int64_t at = i * n + j;
    dW[at] = lambda == T(0) ? v : v + lambda * W[at];
  }
};

template <typename T>
struct PlainStore {
  T* C;
  int64_t n;
  __device__ void operator()(int64_t i, int64_t j, T v) const { C[i * n + j] = v; }
};

template <typename T>
__global__ void bias_add_kernel(T* __restrict__ Z, const T* __restrict__ b, int64_t m, int64_t n) {
  const int64_t total = m * n;
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x)
    Z[idx] += b[idx % n];
}

// Column sums in double, in two passes so that short, wide and tall, narrow matrices both
// fill the GPU: pass 1 gives each (row chunk, column) a thread that sums its rows in order;
// pass 2 adds the chunks in order. Deterministic.
constexpr int64_t kRowsPerChunk = 256;

template <typename T>
__global__ void column_partial_kernel(double* __restrict__ part, const T* __restrict__ dZ, int64_t m, int64_t n,
                                      int64_t chunks) {
  const int64_t total = chunks * n;
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t c = idx / n, j = idx % n;
    const int64_t r0 = c * kRowsPerChunk, r1 = r0 + kRowsPerChunk < m ? r0 + kRowsPerChunk : m;
    double s = 0.0;
    for (int64_t r = r0; r < r1; ++r) s += static_cast<double>(dZ[r * n + j]);
    part[idx] = s;
  }
}

template <typename T>
__global__ void column_final_kernel(T* __restrict__ db, const double* __restrict__ part, int64_t n, int64_t chunks) {
  for (int64_t j = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; j < n;
       j += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    double s = 0.0;
    for (int64_t c = 0; c < chunks; ++c) s += part[c * n + j];
    db[j] = static_cast<T>(s);
  }
}
}  // namespace

template <typename T>
void bias_add(T* Z, const T* b, int64_t m, int64_t n) {
  if (m <= 0 || n <= 0) return;
  bias_add_kernel<T><<<blocks_for(m * n), kBlock, 0, stream()>>>(Z, b, m, n);
  NV_CUDA_LAUNCH_CHECK(bias_add_kernel);
}

template <typename T>
void bias_grad(T* db, const T* dZ, int64_t m, int64_t n) {
  if (n <= 0) return;
  const int64_t chunks = m > 0 ? (m + kRowsPerChunk - 1) / kRowsPerChunk : 1;
  Workspace part(static_cast<size_t>(chunks * n) * sizeof(double));
  column_partial_kernel<T><<<blocks_for(chunks * n), kBlock, 0, stream()>>>(part.as<double>(), dZ, m, n, chunks);
  NV_CUDA_LAUNCH_CHECK(column_partial_kernel);
  column_final_kernel<T><<<blocks_for(n), kBlock, 0, stream()>>>(db, part.as<double>(), n, chunks);
  NV_CUDA_LAUNCH_CHECK(column_final_kernel);
}

template <typename T>
void dense_forward(T* H, const T* X, const T* W, const T* b, int64_t m, int64_t n_in, int64_t n_out,
                   Activation act) {
  // X is read along K (its rows), W along N (its rows are the K index, columns adjacent).
  launch_gemm<T, true, false>(StridedLoader<T>{X, n_in, 1}, StridedLoader<T>{W, n_out, 1},
                              BiasStore<T>{H, b, n_out}, m, n_out, n_in);
  // Qualified: Activation is natverk::Activation, so ADL would also find the CPU twin.
  natverk::cuda::activation_forward<T>(H, H, m * n_out, act);
}

template <typename T>
void dense_backward(T* dX, T* dW, T* db, const T* dZ, const T* X, const T* W, int64_t m, int64_t n_in,
                    int64_t n_out, T lambda) {
  // dW = X^T dZ: A(i, p) = X[p, i] (adjacent along M), B(p, j) = dZ[p, j] (adjacent along N).
  launch_gemm<T, false, false>(StridedLoader<T>{X, 1, n_in}, StridedLoader<T>{dZ, n_out, 1},
                               L2Store<T>{dW, W, n_out, lambda}, n_in, n_out, m);
  bias_grad<T>(db, dZ, m, n_out);
  // dX = dZ W^T: A = dZ (along K), B(p, j) = W[j, p] (adjacent along K).
  if (dX)
    launch_gemm<T, true, true>(StridedLoader<T>{dZ, n_out, 1}, StridedLoader<T>{W, 1, n_out},
                               PlainStore<T>{dX, n_in}, m, n_in, n_out);
}

#define NATVERK_INSTANTIATE(T)                                                                          \
  template void bias_add<T>(T*, const T*, int64_t, int64_t);                                           \
  template void bias_grad<T>(T*, const T*, int64_t, int64_t);                                          \
  template void dense_forward<T>(T*, const T*, const T*, const T*, int64_t, int64_t, int64_t, Activation); \
  template void dense_backward<T>(T*, T*, T*, const T*, const T*, const T*, int64_t, int64_t, int64_t, T);
NATVERK_INSTANTIATE(float)
NATVERK_INSTANTIATE(double)
#undef NATVERK_INSTANTIATE

}  // namespace cuda
}  // namespace natverk
