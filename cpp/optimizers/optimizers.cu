// optimizers.cu -- the CUDA twin of optimizers.cpp: the in-place parameter updates of
// optimizers.h (thesis §2.6, eq. 33-36), with g <- g + wd * w first:
//
//   sgd:       w -= lr g
//   momentum:  v = beta v + (1 - beta) g;               w -= lr v
//   RMSprop:   s = beta2 s + (1 - beta2) g^2;           w -= lr g / (sqrt(s) + eps)
//   Adam:      v = beta1 v + (1 - beta1) g;  s = beta2 s + (1 - beta2) g^2
//              w -= lr (v / (1 - beta1^t)) / (sqrt(s / (1 - beta2^t)) + eps)
//
// Layout: w, v, s, g are flat contiguous arrays of n elements of one dtype T.
// Thread mapping: one thread per element in a grid-stride loop (kBlock threads a block,
// blocks_for(n) blocks): every access is coalesced and the kernels run at memory bandwidth
// (Adam reads 4 and writes 3 arrays; the arithmetic is a dozen flops an element).
//
// Same arithmetic as the CPU, operation by operation:
// - the hyper-parameters are cast to T on the host exactly as optimizers.cpp casts them
//   (1 - beta formed in double, then cast), and Adam's bias corrections 1 - beta^t are formed
//   on the host in double with the same std::pow, then cast to T;
// - every per-element operation is done in T, in the CPU's order and association, with the
//   explicitly rounded intrinsics (__fmul_rn, __dadd_rn, ...). nvcc would otherwise contract
//   a * b + c into one FMA, which the CPU build (x86-64 baseline, no -mfma) never does; with
//   each operation rounded on its own, and IEEE division and square root on both sides, the
//   GPU's w, v, s are the CPU's bit for bit (NaN and inf included: wd * w is formed even when
//   wd is 0, as on the CPU).
// w, v, s and g may alias one another element for element (each element is read and then
// written by one thread), so the pointers carry no __restrict__.
#include <cmath>

#include "common/cuda_common.h"
#include "optimizers/optimizers.h"

namespace natverk {
namespace cuda {

namespace {

// Correctly rounded single operations in T, never fused (see the header comment).
__device__ __forceinline__ float op_add(float a, float b) { return __fadd_rn(a, b); }
__device__ __forceinline__ double op_add(double a, double b) { return __dadd_rn(a, b); }
__device__ __forceinline__ float op_sub(float a, float b) { return __fsub_rn(a, b); }
__device__ __forceinline__ double op_sub(double a, double b) { return __dsub_rn(a, b); }
__device__ __forceinline__ float op_mul(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ double op_mul(double a, double b) { return __dmul_rn(a, b); }
__device__ __forceinline__ float op_div(float a, float b) { return __fdiv_rn(a, b); }
__device__ __forceinline__ double op_div(double a, double b) { return __ddiv_rn(a, b); }
__device__ __forceinline__ float op_sqrt(float a) { return __fsqrt_rn(a); }
__device__ __forceinline__ double op_sqrt(double a) { return __dsqrt_rn(a); }

#define NV_GRID_STRIDE(i, n)                                                                  \
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < (n); \
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)

// CPU: w[i] -= a * (g[i] + wd * w[i])
template <typename T>
__global__ void sgd_kernel(T* w, const T* g, int64_t n, T a, T wd) {
  NV_GRID_STRIDE(i, n) {
    const T wi = w[i];
    w[i] = op_sub(wi, op_mul(a, op_add(g[i], op_mul(wd, wi))));
  }
}

// CPU: gi = g[i] + wd * w[i];  v[i] = b1 * v[i] + c1 * gi;  w[i] -= a * v[i]
template <typename T>
__global__ void momentum_kernel(T* w, T* v, const T* g, int64_t n, T a, T b1, T c1, T wd) {
  NV_GRID_STRIDE(i, n) {
    const T wi = w[i];
    const T gi = op_add(g[i], op_mul(wd, wi));
    const T vi = op_add(op_mul(b1, v[i]), op_mul(c1, gi));
    v[i] = vi;
    w[i] = op_sub(wi, op_mul(a, vi));
  }
}

// CPU: gi = g[i] + wd * w[i];  s[i] = b2 * s[i] + c2 * gi * gi;  w[i] -= a * gi / (sqrt(s[i]) + ep)
// (c2 * gi * gi is (c2 * gi) * gi and a * gi / d is (a * gi) / d: C++ is left-associative).
template <typename T>
__global__ void rmsprop_kernel(T* w, T* s, const T* g, int64_t n, T a, T b2, T c2, T ep, T wd) {
  NV_GRID_STRIDE(i, n) {
    const T wi = w[i];
    const T gi = op_add(g[i], op_mul(wd, wi));
    const T si = op_add(op_mul(b2, s[i]), op_mul(op_mul(c2, gi), gi));
    s[i] = si;
    w[i] = op_sub(wi, op_div(op_mul(a, gi), op_add(op_sqrt(si), ep)));
  }
}

// CPU: gi = g[i] + wd * w[i];  v[i] = b1 * v[i] + c1 * gi;  s[i] = b2 * s[i] + c2 * gi * gi;
//      w[i] -= a * (v[i] / corr1) / (sqrt(s[i] / corr2) + ep)
template <typename T>
__global__ void adam_kernel(T* w, T* v, T* s, const T* g, int64_t n, T a, T b1, T c1, T b2, T c2, T corr1,
                            T corr2, T ep, T wd) {
  NV_GRID_STRIDE(i, n) {
    const T wi = w[i];
    const T gi = op_add(g[i], op_mul(wd, wi));
    const T vi = op_add(op_mul(b1, v[i]), op_mul(c1, gi));
    v[i] = vi;
    const T si = op_add(op_mul(b2, s[i]), op_mul(op_mul(c2, gi), gi));
    s[i] = si;
    w[i] = op_sub(wi, op_div(op_mul(a, op_div(vi, corr1)), op_add(op_sqrt(op_div(si, corr2)), ep)));
  }
}

#undef NV_GRID_STRIDE

}  // namespace

template <typename T>
void sgd_update(T* w, const T* g, int64_t n, double lr, double weight_decay) {
  if (n <= 0) return;
  const T a = static_cast<T>(lr), wd = static_cast<T>(weight_decay);
  sgd_kernel<T><<<blocks_for(n), kBlock, 0, stream()>>>(w, g, n, a, wd);
  NV_CUDA_LAUNCH_CHECK(sgd_kernel);
}

template <typename T>
void momentum_update(T* w, T* v, const T* g, int64_t n, double lr, double beta, double weight_decay) {
  if (n <= 0) return;
  const T a = static_cast<T>(lr), b1 = static_cast<T>(beta), c1 = static_cast<T>(1.0 - beta);
  const T wd = static_cast<T>(weight_decay);
  momentum_kernel<T><<<blocks_for(n), kBlock, 0, stream()>>>(w, v, g, n, a, b1, c1, wd);
  NV_CUDA_LAUNCH_CHECK(momentum_kernel);
}

template <typename T>
void rmsprop_update(T* w, T* s, const T* g, int64_t n, double lr, double beta2, double eps,
                    double weight_decay) {
  if (n <= 0) return;
  const T a = static_cast<T>(lr), b2 = static_cast<T>(beta2), c2 = static_cast<T>(1.0 - beta2);
  const T ep = static_cast<T>(eps), wd = static_cast<T>(weight_decay);
  rmsprop_kernel<T><<<blocks_for(n), kBlock, 0, stream()>>>(w, s, g, n, a, b2, c2, ep, wd);
  NV_CUDA_LAUNCH_CHECK(rmsprop_kernel);
}

template <typename T>
void adam_update(T* w, T* v, T* s, const T* g, int64_t n, double lr, double beta1, double beta2, int64_t t,
                 double eps, double weight_decay) {
  if (n <= 0) return;
  const T a = static_cast<T>(lr), ep = static_cast<T>(eps), wd = static_cast<T>(weight_decay);
  const T b1 = static_cast<T>(beta1), c1 = static_cast<T>(1.0 - beta1);
  const T b2 = static_cast<T>(beta2), c2 = static_cast<T>(1.0 - beta2);
  // Bias corrections in double on the host, as optimizers.cpp forms them (1 - beta^t loses
  // digits in float for small t), then cast to T.
  const T corr1 = static_cast<T>(1.0 - std::pow(beta1, static_cast<double>(t)));
  const T corr2 = static_cast<T>(1.0 - std::pow(beta2, static_cast<double>(t)));
  adam_kernel<T><<<blocks_for(n), kBlock, 0, stream()>>>(w, v, s, g, n, a, b1, c1, b2, c2, corr1, corr2, ep,
                                                         wd);
  NV_CUDA_LAUNCH_CHECK(adam_kernel);
}

template <typename T>
void optimizer_update(OptimizerKind kind, T* w, T* v, T* s, const T* g, int64_t n, const OptimizerHyper& hp,
                      double weight_decay) {
  // The CPU dispatch (optimizers.cpp), kernel for kernel.
  switch (kind) {
    case OptimizerKind::sgd: sgd_update<T>(w, g, n, hp.lr, weight_decay); break;
    case OptimizerKind::momentum: momentum_update<T>(w, v, g, n, hp.lr, hp.beta, weight_decay); break;
    case OptimizerKind::rmsprop: rmsprop_update<T>(w, s, g, n, hp.lr, hp.beta2, hp.eps, weight_decay); break;
    case OptimizerKind::adam:
      adam_update<T>(w, v, s, g, n, hp.lr, hp.beta1, hp.beta2, hp.t, hp.eps, weight_decay);
      break;
  }
}

#define NATVERK_INSTANTIATE(T)                                                                    \
  template void sgd_update<T>(T*, const T*, int64_t, double, double);                            \
  template void momentum_update<T>(T*, T*, const T*, int64_t, double, double, double);           \
  template void rmsprop_update<T>(T*, T*, const T*, int64_t, double, double, double, double);    \
  template void adam_update<T>(T*, T*, T*, const T*, int64_t, double, double, double, int64_t,   \
                               double, double);                                                   \
  template void optimizer_update<T>(OptimizerKind, T*, T*, T*, const T*, int64_t, const OptimizerHyper&, \
                                    double);
NATVERK_INSTANTIATE(float)
NATVERK_INSTANTIATE(double)
#undef NATVERK_INSTANTIATE

}  // namespace cuda
}  // namespace natverk
