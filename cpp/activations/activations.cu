// activations.cu -- the CUDA twin of activations.cpp: elementwise activations, their
// backward passes from the output h, and the row-wise stable softmax. The formulas, the NaN
// behaviour and the aliasing rules (out may alias in, dz may alias dh) are those of
// activations.h; every expression below is written in the same order as the CPU loop, so the
// only differences are the last-ulp ones of the device exp/tanh.
//
// Layout: C-contiguous arrays; softmax works on a rows x cols matrix, one row at a time.
//
// Thread mapping:
// - Elementwise kernels: one element per thread in a grid-stride loop (blocks_for), the
//   activation a template parameter so the loop body has no branch on it. Memory-bound: one
//   coalesced read (two for backward) and one coalesced write per element.
// - softmax: a group of TPR threads per row (TPR = 8, 32 or kBlock, chosen from cols, so short
//   rows such as 10 classes do not leave 22 of 32 lanes idle and long rows use a whole block).
//   The group takes the row maximum, then sums e^(z - max) in double (Acc, as the CPU), with a
//   fixed xor-butterfly (plus a fixed-order pass over the warps' values for TPR = kBlock): the
//   pattern depends only on TPR, so the result is deterministic and every lane of the group
//   holds the identical total. Each lane touches the same columns j = lane, lane + TPR, ... in
//   all three passes (max, exp, divide), so it re-reads only values it wrote itself: no barrier
//   is needed between the passes.
// - softmax_rows also serves softmax cross-entropy (losses.cu): with a label array it adds each
//   row's weighted -log p_y, so the probabilities of softmax() and softmax_cross_entropy() come
//   from one kernel and agree bit for bit, as on the CPU.
#include <cmath>

#include "activations/activations.h"
#include "common/cuda_common.h"

namespace natverk {
namespace cuda {

namespace {

// The device math in the dtype (expf for float, as std::exp(float) on the CPU).
__device__ __forceinline__ float dev_exp(float x) { return expf(x); }
__device__ __forceinline__ double dev_exp(double x) { return exp(x); }
__device__ __forceinline__ float dev_tanh(float x) { return tanhf(x); }
__device__ __forceinline__ double dev_tanh(double x) { return tanh(x); }
// A product that nvcc may not fuse into a following add (an FMA rounds once where the CPU
// rounds twice): keeps 1 - h*h rounded as on the CPU.
__device__ __forceinline__ float mul_rn(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ double mul_rn(double a, double b) { return __dmul_rn(a, b); }

// Stable for large |z|, as the CPU's sigmoid(): never exp of a large positive number.
template <typename T>
__device__ __forceinline__ T sigmoid(T z) {
  if (z >= T(0)) return T(1) / (T(1) + dev_exp(-z));
  const T e = dev_exp(z);
  return e / (T(1) + e);
}

// No __restrict__: out may alias in (one thread reads element i before writing it).
template <typename T, Activation A>
__global__ void activation_forward_kernel(T* out, const T* in, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const T z = in[i];
    T h;
    if constexpr (A == Activation::ReLU) {
      h = (z > T(0) || z != z) ? z : T(0);  // keeps NaN, as np.maximum(0, z)
    } else if constexpr (A == Activation::Sigmoid) {
      h = sigmoid(z);
    } else {
      static_assert(A == Activation::Tanh, "identity is a copy, not a kernel");
      h = dev_tanh(z);
    }
    out[i] = h;
  }
}

template <typename T, Activation A>
__global__ void activation_backward_kernel(T* dz, const T* dh, const T* h, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const T g = dh[i], hi = h[i];
    T d;
    if constexpr (A == Activation::ReLU) {
      d = hi > T(0) ? g : T(0);
    } else if constexpr (A == Activation::Sigmoid) {
      d = g * hi * (T(1) - hi);
    } else {
      static_assert(A == Activation::Tanh, "identity is a copy, not a kernel");
      d = g * (T(1) - mul_rn(hi, hi));
    }
    dz[i] = d;
  }
}

template <typename T, Activation A>
void launch_forward(T* out, const T* in, int64_t n) {
  activation_forward_kernel<T, A><<<blocks_for(n), kBlock, 0, stream()>>>(out, in, n);
  NV_CUDA_LAUNCH_CHECK(activation_forward_kernel);
}

template <typename T, Activation A>
void launch_backward(T* dz, const T* dh, const T* h, int64_t n) {
  activation_backward_kernel<T, A><<<blocks_for(n), kBlock, 0, stream()>>>(dz, dh, h, n);
  NV_CUDA_LAUNCH_CHECK(activation_backward_kernel);
}

// ---------------------------------------------------------------------------------------------
// softmax

constexpr int kWarp = 32;

// The max / sum over the TPR lanes of a group; every lane of the group gets the same value.
// With TPR <= 32 a group lies inside one warp and the xor partners stay inside the group
// (offsets < TPR). With TPR == kBlock the warps' results meet in shared memory `red`, which
// every thread then reads in the same order. The caller's loop is uniform over the group
// (over the block for TPR == kBlock), so the __syncthreads below are reached by all threads.
template <int TPR, typename V>
__device__ __forceinline__ V group_max(V v, V* red) {
  constexpr int kLanes = TPR < kWarp ? TPR : kWarp;
#pragma unroll
  for (int off = kLanes / 2; off > 0; off >>= 1) {
    const V o = __shfl_xor_sync(0xffffffffu, v, off);
    v = o > v ? o : v;
  }
  if constexpr (TPR > kWarp) {
    __syncthreads();  // red may still be read by a slower warp from the previous call
    if (threadIdx.x % kWarp == 0) red[threadIdx.x / kWarp] = v;
    __syncthreads();
    V m = red[0];
    for (int w = 1; w < TPR / kWarp; ++w) m = red[w] > m ? red[w] : m;
    v = m;
  }
  return v;
}

template <int TPR>
__device__ __forceinline__ double group_sum(double v, double* red) {
  constexpr int kLanes = TPR < kWarp ? TPR : kWarp;
#pragma unroll
  for (int off = kLanes / 2; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  if constexpr (TPR > kWarp) {
    __syncthreads();
    if (threadIdx.x % kWarp == 0) red[threadIdx.x / kWarp] = v;
    __syncthreads();
    double s = red[0];
    for (int w = 1; w < TPR / kWarp; ++w) s += red[w];
    v = s;
  }
  return v;
}

template <typename T, int TPR>
__global__ void softmax_rows_kernel(T* probs, const T* z, int64_t rows, int64_t cols, const int64_t* y,
                                    const T* class_weights, double* rowloss) {
  static_assert(kBlock % TPR == 0 && (TPR <= kWarp || TPR == kBlock), "TPR: a warp divisor or the block");
  constexpr int kRowsPerBlock = kBlock / TPR;
  __shared__ T red_max[kBlock / kWarp];
  __shared__ double red_sum[kBlock / kWarp];
  const int group = threadIdx.x / TPR, lane = threadIdx.x % TPR;
  // base is uniform over the block, so every lane runs the same iterations and meets every
  // shuffle and barrier. A group past the last row works on row `base` (valid) and writes nothing.
  for (int64_t base = blockIdx.x * static_cast<int64_t>(kRowsPerBlock); base < rows;
       base += static_cast<int64_t>(gridDim.x) * kRowsPerBlock) {
    const bool active = base + group < rows;
    const int64_t r = active ? base + group : base;
    const T* zr = z + r * cols;
    T* pr = probs + r * cols;
    // The maximum starts at zr[0] in every lane (as the CPU): a lane with no column still
    // holds a value of the row.
    T mx = zr[0];
    for (int64_t j = lane; j < cols; j += TPR) mx = zr[j] > mx ? zr[j] : mx;
    mx = group_max<TPR>(mx, red_max);
    double sum = 0;
    for (int64_t j = lane; j < cols; j += TPR) {
      const T e = dev_exp(zr[j] - mx);
      if (active) pr[j] = e;
      sum += static_cast<double>(e);
    }
    sum = group_sum<TPR>(sum, red_sum);
    const T total = static_cast<T>(sum);
    if (active)
      for (int64_t j = lane; j < cols; j += TPR) pr[j] /= total;
    if (rowloss != nullptr && active && lane == 0) {
      // -log p_y = log(sum e^(z - max)) - (z_y - max), weighted (losses.cpp's formula). A label
      // outside 0..cols-1 is never used as an index; the caller reports it and discards this.
      const int64_t c = y[r];
      double term = 0;
      if (c >= 0 && c < cols) {
        const double nll = log(sum) - static_cast<double>(zr[c] - mx);
        term = (class_weights != nullptr ? static_cast<double>(class_weights[c]) : 1.0) * nll;
      }
      rowloss[r] = term;
    }
  }
}

template <typename T, int TPR>
void launch_softmax(T* probs, const T* z, int64_t rows, int64_t cols, const int64_t* y, const T* class_weights,
                    double* rowloss) {
  softmax_rows_kernel<T, TPR><<<blocks_for(rows, kBlock / TPR), kBlock, 0, stream()>>>(probs, z, rows, cols, y,
                                                                                      class_weights, rowloss);
  NV_CUDA_LAUNCH_CHECK(softmax_rows_kernel);
}

}  // namespace

template <typename T>
void activation_forward(T* out, const T* in, int64_t n, Activation act) {
  if (n <= 0) return;
  switch (act) {
    case Activation::ReLU: launch_forward<T, Activation::ReLU>(out, in, n); break;
    case Activation::Sigmoid: launch_forward<T, Activation::Sigmoid>(out, in, n); break;
    case Activation::Tanh: launch_forward<T, Activation::Tanh>(out, in, n); break;
    case Activation::Identity:
      if (out != in)
        NV_CUDA_CHECK(cudaMemcpyAsync(out, in, static_cast<size_t>(n) * sizeof(T), cudaMemcpyDeviceToDevice, stream()));
      break;
  }
}

template <typename T>
void activation_backward(T* dz, const T* dh, const T* h, int64_t n, Activation act) {
  if (n <= 0) return;
  switch (act) {
    case Activation::ReLU: launch_backward<T, Activation::ReLU>(dz, dh, h, n); break;
    case Activation::Sigmoid: launch_backward<T, Activation::Sigmoid>(dz, dh, h, n); break;
    case Activation::Tanh: launch_backward<T, Activation::Tanh>(dz, dh, h, n); break;
    case Activation::Identity:
      if (dz != dh)
        NV_CUDA_CHECK(cudaMemcpyAsync(dz, dh, static_cast<size_t>(n) * sizeof(T), cudaMemcpyDeviceToDevice, stream()));
      break;
  }
}

template <typename T>
void softmax_rows(T* probs, const T* z, int64_t rows, int64_t cols, const int64_t* y, const T* class_weights,
                  double* rowloss) {
  if (rows <= 0 || cols <= 0) return;
  // Short rows (a classifier's 10 classes) by 8 lanes, up to 2048 columns by a warp, longer
  // rows by the whole block: each lane then handles at most ~64 columns per pass.
  if (cols <= 32)
    launch_softmax<T, 8>(probs, z, rows, cols, y, class_weights, rowloss);
  else if (cols <= 2048)
    launch_softmax<T, kWarp>(probs, z, rows, cols, y, class_weights, rowloss);
  else
    launch_softmax<T, kBlock>(probs, z, rows, cols, y, class_weights, rowloss);
}

template <typename T>
void softmax_forward(T* probs, const T* z, int64_t rows, int64_t cols) {
  softmax_rows<T>(probs, z, rows, cols, nullptr, nullptr, nullptr);
}

#define NATVERK_INSTANTIATE(T)                                                         \
  template void activation_forward<T>(T*, const T*, int64_t, Activation);             \
  template void activation_backward<T>(T*, const T*, const T*, int64_t, Activation);  \
  template void softmax_forward<T>(T*, const T*, int64_t, int64_t);                   \
  template void softmax_rows<T>(T*, const T*, int64_t, int64_t, const int64_t*, const T*, double*);
NATVERK_INSTANTIATE(float)
NATVERK_INSTANTIATE(double)
#undef NATVERK_INSTANTIATE

}  // namespace cuda
}  // namespace natverk
