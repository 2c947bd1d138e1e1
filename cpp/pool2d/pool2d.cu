// pool2d.cu -- the CUDA twin of pool2d.cpp: max, average and global average pooling on NCHW
// tensors. The formulas, the tie / NaN / padding rules and Ho, Wo are those of pool2d.h:
//
//   max:  Y = the FIRST maximum of the window's in-bounds positions in row-major window order
//         (padding never wins; a NaN wins and stays), argmax = its flat index h*W + w in the
//         (H, W) plane. Backward routes dY to the arg-max; overlapping windows add up.
//   avg:  Y = (sum of the in-bounds positions, in T) * (1 / (kH kW))  (count_include_pad=True).
//   global avg: Y[n, c] = (sum over the plane, in double) / (H W).
//
// Layout: X, dX (N, C, H, W); Y, dY, argmax (N, C, Ho, Wo); all C-contiguous.
//
// Thread mapping (grid-stride loops, int64 indices throughout):
//   - forwards: one thread per OUTPUT element. Adjacent threads own adjacent ow, so the Y and
//     argmax stores coalesce and the window loads of neighbouring threads overlap in L1/L2; the
//     window loop visits only its in-bounds span (a huge, mostly padded kernel_size costs what
//     the input costs, as on the CPU).
//   - backwards: one thread per INPUT element, GATHERING over the windows that contain it
//     (ceil(kH/sh) x ceil(kW/sw) of them), never scattering with atomics: every dX element is
//     written once, by one thread, so the result is deterministic and needs no zero-fill pass.
//     The windows are visited in increasing (oh, ow) order, the order in which the CPU kernel
//     adds them up, so dX equals the CPU's bit for bit (products are rounded before the add,
//     see mul_rn, so nvcc cannot contract them into an FMA the CPU does not use).
//   - global average: one warp per plane (coalesced loads, a double accumulator per lane, a
//     shuffle tree in fixed order: deterministic); its backward is elementwise.
//
// maxpool2d_backward checks, in a small kernel over argmax, that every index lies inside its
// own window (hence inside its plane) and returns false otherwise, like the CPU kernel; that
// bool is a host value, so it is the one entry here that waits for the stream.
#include "common/cuda_common.h"
#include "pool2d/pool2d.h"

namespace natverk {
namespace cuda {

namespace {

// [lo, hi): the window offsets 0..k-1 that land inside 0..n-1 for a window starting at
// `start` (pool2d.cpp's inside()). |start| <= the padded size, so nothing overflows.
struct Span {
  int64_t lo, hi;
};
__device__ __forceinline__ Span inside(int64_t start, int64_t k, int64_t n) {
  const int64_t lo = start < 0 ? -start : 0;
  const int64_t hi = n - start < k ? n - start : k;
  return {lo, hi};
}

// [lo, hi): the outputs o < n_out whose window [o*s - p, o*s - p + k) contains position x
// (0 <= x < the input size): o*s <= x + p and o*s >= x + p - k + 1. Written with divisions
// only (no a + s - 1 rounding trick): k and s are free integers and may be near 2^63.
__device__ __forceinline__ Span windows_containing(int64_t x, int64_t k, int64_t s, int64_t p,
                                                   int64_t n_out) {
  const int64_t top = x + p;            // >= 0, and <= the padded size
  int64_t hi = top / s + 1;             // last o with o*s <= top, plus one
  if (hi > n_out) hi = n_out;
  const int64_t a = top - k + 1;        // o*s >= a; a may be negative (then every o >= 0 does)
  const int64_t lo = a <= 0 ? 0 : a / s + (a % s != 0 ? 1 : 0);
  return {lo, hi};
}

// A product rounded on its own: nvcc would otherwise fuse `acc += a * b` into one FMA, and the
// CPU kernel rounds the product first.
__device__ __forceinline__ float mul_rn(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ double mul_rn(double a, double b) { return __dmul_rn(a, b); }

__device__ __forceinline__ int64_t grid_start() {
  return blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
}
__device__ __forceinline__ int64_t grid_step() { return static_cast<int64_t>(gridDim.x) * blockDim.x; }

template <typename T>
__global__ void maxpool_forward_kernel(T* __restrict__ Y, int64_t* __restrict__ argmax,
                                       const T* __restrict__ X, Pool2dShape s, int64_t total) {
  const int64_t out_plane = s.Ho * s.Wo, in_plane = s.H * s.W;
  for (int64_t idx = grid_start(); idx < total; idx += grid_step()) {
    const int64_t p = idx / out_plane, r = idx - p * out_plane;
    const int64_t oh = r / s.Wo, ow = r - oh * s.Wo;
    const T* x = X + p * in_plane;
    const int64_t h0 = oh * s.sh - s.ph, w0 = ow * s.sw - s.pw;
    const Span si = inside(h0, s.kH, s.H), sj = inside(w0, s.kW, s.W);
    int64_t best = -1;  // stays -1 only for a window with no in-bounds position (never, see
    T bv = T(0);        // make_pool2d_shape: padding <= kernel / 2), as on the CPU
    for (int64_t i = si.lo; i < si.hi; ++i) {
      const int64_t h = h0 + i;
      for (int64_t j = sj.lo; j < sj.hi; ++j) {
        const int64_t at = h * s.W + (w0 + j);
        const T v = x[at];
        // first maximum wins; a NaN wins and stays (v != v): pool2d.cpp's rule
        if (best < 0 || v > bv || (v != v && bv == bv)) {
          best = at;
          bv = v;
        }
      }
    }
    Y[idx] = bv;
    argmax[idx] = best;
  }
}

// bad = 1 when an argmax index lies outside its own window's in-bounds part (which includes
// outside the plane and negative indices). Many threads may store the same 1: a benign race
// with a deterministic result.
__global__ void maxpool_check_argmax_kernel(int* __restrict__ bad, const int64_t* __restrict__ argmax,
                                            Pool2dShape s, int64_t total) {
  const int64_t out_plane = s.Ho * s.Wo;
  for (int64_t idx = grid_start(); idx < total; idx += grid_step()) {
    const int64_t a = argmax[idx];
    const int64_t r = idx % out_plane;
    const int64_t oh = r / s.Wo, ow = r - oh * s.Wo;
    const int64_t h0 = oh * s.sh - s.ph, w0 = ow * s.sw - s.pw;
    bool ok = a >= 0 && a < s.H * s.W;
    if (ok) {
      const int64_t h = a / s.W, w = a - h * s.W;
      const Span si = inside(h0, s.kH, s.H), sj = inside(w0, s.kW, s.W);
      ok = h - h0 >= si.lo && h - h0 < si.hi && w - w0 >= sj.lo && w - w0 < sj.hi;
    }
    if (!ok) *bad = 1;
  }
}

template <typename T>
__global__ void maxpool_backward_kernel(T* __restrict__ dX, const T* __restrict__ dY,
                                        const int64_t* __restrict__ argmax, Pool2dShape s, int64_t total) {
  const int64_t out_plane = s.Ho * s.Wo, in_plane = s.H * s.W;
  for (int64_t idx = grid_start(); idx < total; idx += grid_step()) {
    const int64_t p = idx / in_plane, at = idx - p * in_plane;
    const int64_t h = at / s.W, w = at - h * s.W;
    const Span oh_r = windows_containing(h, s.kH, s.sh, s.ph, s.Ho);
    const Span ow_r = windows_containing(w, s.kW, s.sw, s.pw, s.Wo);
    const T* dy = dY + p * out_plane;
    const int64_t* am = argmax + p * out_plane;
    T acc = T(0);  // the CPU starts from a zeroed plane and adds in increasing output order
    for (int64_t oh = oh_r.lo; oh < oh_r.hi; ++oh)
      for (int64_t ow = ow_r.lo; ow < ow_r.hi; ++ow) {
        const int64_t o = oh * s.Wo + ow;
        if (am[o] == at) acc += dy[o];
      }
    dX[idx] = acc;
  }
}

template <typename T>
__global__ void avgpool_forward_kernel(T* __restrict__ Y, const T* __restrict__ X, Pool2dShape s, T inv,
                                       int64_t total) {
  const int64_t out_plane = s.Ho * s.Wo, in_plane = s.H * s.W;
  for (int64_t idx = grid_start(); idx < total; idx += grid_step()) {
    const int64_t p = idx / out_plane, r = idx - p * out_plane;
    const int64_t oh = r / s.Wo, ow = r - oh * s.Wo;
    const T* x = X + p * in_plane;
    const int64_t h0 = oh * s.sh - s.ph, w0 = ow * s.sw - s.pw;
    const Span si = inside(h0, s.kH, s.H), sj = inside(w0, s.kW, s.W);
    T acc = T(0);  // in T and in row-major window order, as pool2d.cpp
    for (int64_t i = si.lo; i < si.hi; ++i) {
      const int64_t row = (h0 + i) * s.W + w0;  // w0 + j >= 0 for j >= sj.lo
      for (int64_t j = sj.lo; j < sj.hi; ++j) acc += x[row + j];
    }
    Y[idx] = acc * inv;
  }
}

template <typename T>
__global__ void avgpool_backward_kernel(T* __restrict__ dX, const T* __restrict__ dY, Pool2dShape s, T inv,
                                        int64_t total) {
  const int64_t out_plane = s.Ho * s.Wo, in_plane = s.H * s.W;
  for (int64_t idx = grid_start(); idx < total; idx += grid_step()) {
    const int64_t p = idx / in_plane, at = idx - p * in_plane;
    const int64_t h = at / s.W, w = at - h * s.W;
    const Span oh_r = windows_containing(h, s.kH, s.sh, s.ph, s.Ho);
    const Span ow_r = windows_containing(w, s.kW, s.sw, s.pw, s.Wo);
    const T* dy = dY + p * out_plane;
    T acc = T(0);
    for (int64_t oh = oh_r.lo; oh < oh_r.hi; ++oh)
      for (int64_t ow = ow_r.lo; ow < ow_r.hi; ++ow) acc += mul_rn(dy[oh * s.Wo + ow], inv);
    dX[idx] = acc;
  }
}

constexpr int kWarp = 32;

template <typename T>
__global__ void global_avgpool_forward_kernel(T* __restrict__ Y, const T* __restrict__ X, int64_t planes,
                                              int64_t HW) {
  const int lane = threadIdx.x % kWarp;
  const int64_t warps_per_block = blockDim.x / kWarp;
  const int64_t first = blockIdx.x * warps_per_block + threadIdx.x / kWarp;
  const int64_t step = static_cast<int64_t>(gridDim.x) * warps_per_block;
  // The loop bound depends only on the warp, so whole warps run the shuffles together.
  for (int64_t p = first; p < planes; p += step) {
    const T* x = X + p * HW;
    double acc = 0;  // Acc<T> is double for both dtypes (common/elementwise.h)
    for (int64_t i = lane; i < HW; i += kWarp) acc += static_cast<double>(x[i]);
    for (int off = kWarp / 2; off > 0; off >>= 1) acc += __shfl_down_sync(0xffffffffu, acc, off);
    if (lane == 0) Y[p] = static_cast<T>(acc / static_cast<double>(HW));
  }
}

template <typename T>
__global__ void global_avgpool_backward_kernel(T* __restrict__ dX, const T* __restrict__ dY, int64_t HW,
                                               int64_t total) {
  const double count = static_cast<double>(HW);
  for (int64_t idx = grid_start(); idx < total; idx += grid_step())
    dX[idx] = static_cast<T>(static_cast<double>(dY[idx / HW]) / count);  // as pool2d.cpp, per element
}

// 1 / (kH kW) in T, computed exactly as pool2d.cpp does (the product in double: kernel sizes
// are free integers and the int64 product can overflow).
template <typename T>
T inverse_window(const Pool2dShape& s) {
  return T(1) / static_cast<T>(static_cast<double>(s.kH) * static_cast<double>(s.kW));
}

}  // namespace

template <typename T>
void maxpool2d_forward(T* Y, int64_t* argmax, const T* X, const Pool2dShape& s) {
  const int64_t total = s.N * s.C * s.Ho * s.Wo;
  if (total <= 0 || s.H * s.W <= 0) return;
  maxpool_forward_kernel<T><<<blocks_for(total), kBlock, 0, stream()>>>(Y, argmax, X, s, total);
  NV_CUDA_LAUNCH_CHECK(maxpool_forward_kernel);
}

template <typename T>
bool maxpool2d_backward(T* dX, const T* dY, const int64_t* argmax, const Pool2dShape& s) {
  const int64_t in_total = s.N * s.C * s.H * s.W, out_total = s.N * s.C * s.Ho * s.Wo;
  if (in_total <= 0) return true;
  if (out_total <= 0) {  // no windows: nothing is routed anywhere
    NV_CUDA_CHECK(cudaMemsetAsync(dX, 0, sizeof(T) * static_cast<size_t>(in_total), stream()));
    return true;
  }
  Workspace flag(sizeof(int));
  NV_CUDA_CHECK(cudaMemsetAsync(flag.as<int>(), 0, sizeof(int), stream()));
  maxpool_check_argmax_kernel<<<blocks_for(out_total), kBlock, 0, stream()>>>(flag.as<int>(), argmax, s,
                                                                              out_total);
  NV_CUDA_LAUNCH_CHECK(maxpool_check_argmax_kernel);
  maxpool_backward_kernel<T><<<blocks_for(in_total), kBlock, 0, stream()>>>(dX, dY, argmax, s, in_total);
  NV_CUDA_LAUNCH_CHECK(maxpool_backward_kernel);
  int bad = 0;
  NV_CUDA_CHECK(cudaMemcpyAsync(&bad, flag.as<int>(), sizeof(int), cudaMemcpyDeviceToHost, stream()));
  synchronize();  // the bool is a host value (see the top of this file)
  return bad == 0;
}

template <typename T>
void avgpool2d_forward(T* Y, const T* X, const Pool2dShape& s) {
  const int64_t total = s.N * s.C * s.Ho * s.Wo;
  if (total <= 0 || s.H * s.W <= 0) return;
  avgpool_forward_kernel<T><<<blocks_for(total), kBlock, 0, stream()>>>(Y, X, s, inverse_window<T>(s), total);
  NV_CUDA_LAUNCH_CHECK(avgpool_forward_kernel);
}

template <typename T>
void avgpool2d_backward(T* dX, const T* dY, const Pool2dShape& s) {
  const int64_t total = s.N * s.C * s.H * s.W;
  if (total <= 0) return;
  // With no outputs every window range is empty and the kernel writes zeros.
  avgpool_backward_kernel<T><<<blocks_for(total), kBlock, 0, stream()>>>(dX, dY, s, inverse_window<T>(s),
                                                                         total);
  NV_CUDA_LAUNCH_CHECK(avgpool_backward_kernel);
}

template <typename T>
void global_avgpool_forward(T* Y, const T* X, int64_t N, int64_t C, int64_t HW) {
  const int64_t planes = N * C;
  if (planes <= 0) return;
  if (HW <= 0) {  // the CPU kernel divides 0 by 0: NaN (the bindings never get here)
    NV_CUDA_CHECK(cudaMemsetAsync(Y, 0xff, sizeof(T) * static_cast<size_t>(planes), stream()));
    return;
  }
  constexpr int kWarpsPerBlock = kBlock / kWarp;
  global_avgpool_forward_kernel<T><<<blocks_for(planes, kWarpsPerBlock), kBlock, 0, stream()>>>(Y, X, planes, HW);
  NV_CUDA_LAUNCH_CHECK(global_avgpool_forward_kernel);
}

template <typename T>
void global_avgpool_backward(T* dX, const T* dY, int64_t N, int64_t C, int64_t HW) {
  const int64_t total = N * C * HW;
  if (total <= 0) return;
  global_avgpool_backward_kernel<T><<<blocks_for(total), kBlock, 0, stream()>>>(dX, dY, HW, total);
  NV_CUDA_LAUNCH_CHECK(global_avgpool_backward_kernel);
}

#define NATVERK_INSTANTIATE(T)                                                            \
  template void maxpool2d_forward<T>(T*, int64_t*, const T*, const Pool2dShape&);        \
  template bool maxpool2d_backward<T>(T*, const T*, const int64_t*, const Pool2dShape&); \
  template void avgpool2d_forward<T>(T*, const T*, const Pool2dShape&);                  \
  template void avgpool2d_backward<T>(T*, const T*, const Pool2dShape&);                 \
  template void global_avgpool_forward<T>(T*, const T*, int64_t, int64_t, int64_t);      \
  template void global_avgpool_backward<T>(T*, const T*, int64_t, int64_t, int64_t);
NATVERK_INSTANTIATE(float)
NATVERK_INSTANTIATE(double)
#undef NATVERK_INSTANTIATE

}  // namespace cuda
}  // namespace natverk
