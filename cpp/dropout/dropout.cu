// dropout.cu -- the CUDA twin of dropout.cpp: inverted dropout with the counter-based uniform
// (formula and RNG in dropout.h and counter_rng.h).
//
//   forward:  mask[i] = u(seed, i) >= p,  y[i] = mask[i] ? x[i] * scale : 0
//   backward: dx[i] = mask[i] ? dy[i] * scale : 0,        scale = p < 1 ? 1 / (1 - p) : 0
//
// Layout: flat contiguous arrays of n elements; mask is uint8, one byte per element.
// Thread mapping: one thread per element in a grid-stride loop (kBlock threads a block,
// blocks_for(n) blocks), so consecutive threads touch consecutive addresses and every load and
// store is coalesced. Both kernels are memory-bound (the hash is a handful of 64-bit integer
// multiplies per element, far below the bandwidth cost of 2-3 array passes).
//
// Bit-identical masks: u(seed, i) comes from counter_rng.h, the very inline functions the CPU
// kernel calls, compiled here as __host__ __device__: the integer hash wraps modulo 2^64 on
// both, (bits >> 11) * 2^-53 is exact in double, and the comparison with p is made in double,
// as on the CPU. The seed half of the hash (counter_key) is computed once on the host. scale
// is formed on the host in double and cast to T exactly as dropout.cpp does, and x * scale is
// a single rounded multiply, so y and dx equal the CPU's bit for bit as well.
#include "common/cuda_common.h"
#include "dropout/counter_rng.h"
#include "dropout/dropout.h"

namespace natverk {
namespace cuda {

namespace {

template <typename T>
__global__ void dropout_forward_kernel(T* y, uint8_t* __restrict__ mask, const T* x, int64_t n, double p,
                                       uint64_t key, T scale) {
  // y may alias x (in-place dropout; each element is read before it is written, by one
  // thread): no __restrict__ on them.
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    // counter_uniform(seed, i) == counter_uniform_keyed(counter_key(seed), i) (counter_rng.h).
    const bool keep = counter_uniform_keyed(key, static_cast<uint64_t>(i)) >= p;
    mask[i] = keep ? 1 : 0;
    y[i] = keep ? x[i] * scale : T(0);
  }
}

template <typename T>
__global__ void dropout_backward_kernel(T* dx, const T* dy, const uint8_t* __restrict__ mask, int64_t n,
                                        T scale) {
  // dx may alias dy (each element is read before it is written, by one thread): no __restrict__.
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    dx[i] = mask[i] ? dy[i] * scale : T(0);
}

// dropout.cpp's scale, formed the same way (in double, then cast).
template <typename T>
T dropout_scale(double p) {
  return static_cast<T>(p < 1 ? 1.0 / (1.0 - p) : 0.0);
}

}  // namespace

template <typename T>
void dropout_forward(T* y, uint8_t* mask, const T* x, int64_t n, double p, uint64_t seed) {
  if (n <= 0) return;
  dropout_forward_kernel<T><<<blocks_for(n), kBlock, 0, stream()>>>(y, mask, x, n, p, counter_key(seed),
                                                                     dropout_scale<T>(p));
  NV_CUDA_LAUNCH_CHECK(dropout_forward_kernel);
}

template <typename T>
void dropout_backward(T* dx, const T* dy, const uint8_t* mask, int64_t n, double p) {
  if (n <= 0) return;
  dropout_backward_kernel<T><<<blocks_for(n), kBlock, 0, stream()>>>(dx, dy, mask, n, dropout_scale<T>(p));
  NV_CUDA_LAUNCH_CHECK(dropout_backward_kernel);
}

template void dropout_forward<float>(float*, uint8_t*, const float*, int64_t, double, uint64_t);
template void dropout_forward<double>(double*, uint8_t*, const double*, int64_t, double, uint64_t);
template void dropout_backward<float>(float*, const float*, const uint8_t*, int64_t, double);
template void dropout_backward<double>(double*, const double*, const uint8_t*, int64_t, double);

}  // namespace cuda
}  // namespace natverk
