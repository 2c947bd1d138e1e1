// conv2d.cu -- the CUDA twin of conv2d.cpp: forward, backward-data and backward-weights as
// implicit GEMMs on the tiled engine of gemm_tile.cuh, for every geometry the CPU takes
// (stride, padding, dilation, groups). Formulas and layout in conv2d.h (seed 001 §4.2.3-4.2.4,
// thesis eq. 14-15); NCHW, weights (K, C/groups, kH, kW).
//
// Implicit GEMM (as cuDNN's IMPLICIT_GEMM and Chetlur et al. 2014 describe it): the im2col
// matrix is never stored; the B loader computes each of its elements from X (or dY) on the
// fly, and the epilogue scatters the result to its NCHW place. Per group g (Cg = C/groups
// input and Kg = K/groups output channels, R = kH kW):
//
//   forward      Y_g  (Kg x N·Ho·Wo)  = W_g (Kg x Cg·R)  · col(X)_g (Cg·R x N·Ho·Wo)   + b
//   backward-dX  dX_g (Cg x N·H·W)    = W_g^T (Cg x Kg·R) · row(dY)_g (Kg·R x N·H·W)
//                where row(dY)[(k, i, j), (n, h, w)] = dY[n, k, oh, ow] when
//                h + ph - i dh = oh sh and w + pw - j dw = ow sw land on the output grid, else 0
//                (the transposed convolution, written as a gather: no atomics, deterministic);
//   backward-dW  dW_g (Kg x Cg·R)     = dY_g (Kg x N·Ho·Wo) · col(X)_g^T (N·Ho·Wo x Cg·R)
//                a thin product over a long K = N·Ho·Wo: the engine's split-K spreads it
//                over the GPU and adds the parts in a fixed order;
//   db[k] = sum over n, oh, ow of dY: one block a channel, a tree in double (the CPU sums
//           in double too).
//
// The GEMM accumulates in T, as the CPU's im2col GEMM does, so float32 agrees with the CPU to
// the float32 tolerance and float64 to 1e-12. Speed: this is the correctness-first form; the
// index arithmetic per loaded element (divisions by Ho·Wo, Wo, R, kW) is the first thing to
// replace (precomputed offsets, fast division) once a GPU run has profiled it.
#include "common/cuda_common.h"
#include "conv2d/conv2d.h"
#include "gemm/gemm_tile.cuh"

namespace natverk {
namespace cuda {

namespace {

// The geometry the loaders need, by value in kernel parameters.
struct Geo {
  int64_t N, C, H, W, K, kH, kW, sh, sw, ph, pw, dh, dw, Ho, Wo;
  int64_t Cg, Kg, R;  // channels per group, kernel positions
  int64_t g;          // the group this launch handles
};

Geo make_geo(const Conv2dShape& s, int64_t g) {
  Geo o{s.N, s.C, s.H, s.W, s.K, s.kH, s.kW, s.sh, s.sw, s.ph, s.pw, s.dh, s.dw, s.Ho, s.Wo,
        s.C / s.groups, s.K / s.groups, s.kH * s.kW, g};
  return o;
}

// col(X)_g[p = (c, i, j), q = (n, oh, ow)] = X[n, g Cg + c, oh sh - ph + i dh, ow sw - pw + j dw]
// (0 in the padding). Forward's B(p, q); backward-dW's B(q, p) (the transpose).
template <typename T>
__device__ inline T col_x(const T* X, const Geo& s, int64_t p, int64_t q) {
  const int64_t c = p / s.R, r = p % s.R, i = r / s.kW, j = r % s.kW;
  const int64_t HWo = s.Ho * s.Wo;
  const int64_t n = q / HWo, o = q % HWo, oh = o / s.Wo, ow = o % s.Wo;
  const int64_t ih = oh * s.sh - s.ph + i * s.dh, iw = ow * s.sw - s.pw + j * s.dw;
  if (ih < 0 || ih >= s.H || iw < 0 || iw >= s.W) return T(0);
  return X[((n * s.C + s.g * s.Cg + c) * s.H + ih) * s.W + iw];
}

template <typename T>
struct ColXLoader {  // forward B(p, q)
  const T* X;
  Geo s;
  __device__ T operator()(int64_t p, int64_t q) const { return col_x(X, s, p, q); }
};

template <typename T>
struct ColXTLoader {  // backward-dW B(q, p)
  const T* X;
  Geo s;
  __device__ T operator()(int64_t q, int64_t p) const { return col_x(X, s, p, q); }
};

// Forward epilogue: Y[n, g Kg + k, oh, ow] = v + b[g Kg + k].
template <typename T>
struct ConvOutStore {
  T* Y;
  const T* b;
  Geo s;
  __device__ void operator()(int64_t k, int64_t q, T v) const {
    const int64_t HWo = s.Ho * s.Wo, n = q / HWo, o = q % HWo, kk = s.g * s.Kg + k;
    Y[(n * s.K + kk) * HWo + o] = b ? v + b[kk] : v;
  }
};

// Backward-dX A(c, p = (k, i, j)) = W[g Kg + k, c, i, j].
template <typename T>
struct WtTLoader {
  const T* Wt;
  Geo s;
  __device__ T operator()(int64_t c, int64_t p) const {
    const int64_t k = p / s.R, r = p % s.R;
    return Wt[((s.g * s.Kg + k) * s.Cg + c) * s.R + r];
  }
};

// Backward-dX B(p = (k, i, j), q = (n, h, w)): the dY element that position (h, w) meets
// through kernel tap (i, j), if any.
template <typename T>
struct RowDyLoader {
  const T* dY;
  Geo s;
  __device__ T operator()(int64_t p, int64_t q) const {
    const int64_t k = p / s.R, r = p % s.R, i = r / s.kW, j = r % s.kW;
    const int64_t HW = s.H * s.W, n = q / HW, hw = q % HW, h = hw / s.W, w = hw % s.W;
    const int64_t th = h + s.ph - i * s.dh, tw = w + s.pw - j * s.dw;
    if (th < 0 || tw < 0 || th % s.sh != 0 || tw % s.sw != 0) return T(0);
    const int64_t oh = th / s.sh, ow = tw / s.sw;
    if (oh >= s.Ho || ow >= s.Wo) return T(0);
    return dY[((n * s.K + s.g * s.Kg + k) * s.Ho + oh) * s.Wo + ow];
  }
};

// Backward-dX epilogue: dX[n, g Cg + c, h, w] = v.
template <typename T>
struct ConvInStore {
  T* dX;
  Geo s;
  __device__ void operator()(int64_t c, int64_t q, T v) const {
    const int64_t HW = s.H * s.W, n = q / HW, hw = q % HW;
    dX[(n * s.C + s.g * s.Cg + c) * HW + hw] = v;
  }
};

// Backward-dW A(k, q = (n, oh, ow)) = dY[n, g Kg + k, oh, ow].
template <typename T>
struct DyLoader {
  const T* dY;
  Geo s;
  __device__ T operator()(int64_t k, int64_t q) const {
    const int64_t HWo = s.Ho * s.Wo, n = q / HWo, o = q % HWo;
    return dY[(n * s.K + s.g * s.Kg + k) * HWo + o];
  }
};

// Backward-dW epilogue: dW[g Kg + k, p] = v (p = (c, i, j) is the weight's own inner index).
template <typename T>
struct WeightGradStore {
  T* dW;
  Geo s;
  __device__ void operator()(int64_t k, int64_t p, T v) const { dW[(s.g * s.Kg + k) * s.Cg * s.R + p] = v; }
};

// db[k] = sum_{n, o} dY[n, k, o]: one block a channel; each thread sums a strided share in
// double, then a fixed-shape tree in shared memory (deterministic).
constexpr int kBiasThreads = 256;

template <typename T>
__global__ void __launch_bounds__(kBiasThreads)
conv_bias_grad_kernel(T* __restrict__ db, const T* __restrict__ dY, int64_t N, int64_t K, int64_t HWo) {
  __shared__ double part[kBiasThreads];
  const int64_t k = blockIdx.x;
  const int64_t total = N * HWo;
  double s = 0.0;
  for (int64_t idx = threadIdx.x; idx < total; idx += kBiasThreads) {
    const int64_t n = idx / HWo, o = idx % HWo;
    s += static_cast<double>(dY[(n * K + k) * HWo + o]);
  }
  part[threadIdx.x] = s;
  __syncthreads();
  for (int stride = kBiasThreads / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) part[threadIdx.x] += part[threadIdx.x + stride];
    __syncthreads();
  }
  if (threadIdx.x == 0) db[k] = static_cast<T>(part[0]);
}

}  // namespace

template <typename T>
void conv2d_forward(T* Y, const T* X, const T* Wt, const T* b, const Conv2dShape& s) {
  for (int64_t g = 0; g < s.groups; ++g) {
    const Geo geo = make_geo(s, g);
    // A = W_g: row k of the group's weights, its Cg·R entries adjacent (along K).
    launch_gemm<T, true, false>(StridedLoader<T>{Wt + g * geo.Kg * geo.Cg * geo.R, geo.Cg * geo.R, 1},
                                ColXLoader<T>{X, geo}, ConvOutStore<T>{Y, b, geo}, geo.Kg, s.N * s.Ho * s.Wo,
                                geo.Cg * geo.R);
  }
}

template <typename T>
void conv2d_backward(T* dX, T* dW, T* db, const T* dY, const T* X, const T* Wt, const Conv2dShape& s) {
  for (int64_t g = 0; g < s.groups; ++g) {
    const Geo geo = make_geo(s, g);
    if (dX)
      launch_gemm<T, false, false>(WtTLoader<T>{Wt, geo}, RowDyLoader<T>{dY, geo}, ConvInStore<T>{dX, geo}, geo.Cg,
                                   s.N * s.H * s.W, geo.Kg * geo.R);
    if (dW)
      launch_gemm<T, true, true>(DyLoader<T>{dY, geo}, ColXTLoader<T>{X, geo}, WeightGradStore<T>{dW, geo}, geo.Kg,
                                 geo.Cg * geo.R, s.N * s.Ho * s.Wo);
  }
  if (db && s.K > 0) {
    conv_bias_grad_kernel<T><<<static_cast<unsigned>(s.K), kBiasThreads, 0, stream()>>>(db, dY, s.N, s.K,
                                                                                      s.Ho * s.Wo);
    NV_CUDA_LAUNCH_CHECK(conv_bias_grad_kernel);
  }
}

template void conv2d_forward<float>(float*, const float*, const float*, const float*, const Conv2dShape&);
template void conv2d_forward<double>(double*, const double*, const double*, const double*, const Conv2dShape&);
template void conv2d_backward<float>(float*, float*, float*, const float*, const float*, const float*,
                                     const Conv2dShape&);
template void conv2d_backward<double>(double*, double*, double*, const double*, const double*, const double*,
                                      const Conv2dShape&);

}  // namespace cuda
}  // namespace natverk
