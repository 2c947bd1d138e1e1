// pool2d.h -- max, average and global average pooling on NCHW tensors
// (seed 001 §4.2.6; thesis §2.7).
//
//   max:  Y[n, c, oh, ow] = max_{i < kH, j < kW} X[n, c, oh*sh - ph + i, ow*sw - pw + j]
//         (padding never wins: padded positions count as -inf). The arg-max is kept
//         as the flat index h*W + w inside the (H, W) plane; backward routes dY
//         there, and overlapping windows add up (seed 001 §4.2.6). A window
//         holding NaN yields NaN (its arg-max is the NaN).
//   avg:  Y = sum over the window / (kH * kW)  (zero padding counted, PyTorch's
//         count_include_pad=True); backward spreads dY / (kH * kW) over the window.
//   global avg: Y[n, c] = mean over (H, W); backward dY / (H W) everywhere.
//
// X (N, C, H, W), Y (N, C, Ho, Wo) with Ho = floor((H + 2 ph - kH) / sh) + 1.
// Outputs are overwritten. Planes run in parallel.
#pragma once
#include <cstdint>

namespace natverk {

struct Pool2dShape {
  int64_t N, C, H, W, kH, kW, sh, sw, ph, pw, Ho, Wo;
};

// Validates (padding at most half the kernel, as PyTorch requires; window fits;
// no size overflows int64, common/shape.h) and fills Ho, Wo; throws
// std::invalid_argument. The window loops visit only the in-bounds part of each
// window, so a huge, mostly padded kernel_size costs no more than the input.
Pool2dShape make_pool2d_shape(int64_t N, int64_t C, int64_t H, int64_t W, int64_t kH, int64_t kW,
                              int64_t sh, int64_t sw, int64_t ph, int64_t pw);

template <typename T>
void maxpool2d_forward(T* Y, int64_t* argmax, const T* X, const Pool2dShape& s);
// Returns false (leaving those entries out) when an argmax index lies outside its plane.
// relu_out, when given, is Y after a ReLU (plan.cpp's fuse_relu_maxpool runs the ReLU that
// precedes a max-pooling on its pooled output): dY counts only where relu_out > 0, the ReLU's
// backward in the same pass.
template <typename T>
bool maxpool2d_backward(T* dX, const T* dY, const int64_t* argmax, const Pool2dShape& s,
                        const T* relu_out = nullptr);

template <typename T>
void avgpool2d_forward(T* Y, const T* X, const Pool2dShape& s);
template <typename T>
void avgpool2d_backward(T* dX, const T* dY, const Pool2dShape& s);

template <typename T>
void global_avgpool_forward(T* Y, const T* X, int64_t N, int64_t C, int64_t HW);
template <typename T>
void global_avgpool_backward(T* dX, const T* dY, int64_t N, int64_t C, int64_t HW);

}  // namespace natverk

// The CUDA twins (pool2d.cu), on device pointers, queued on natverk::cuda::stream(); the
// shape comes from the host function make_pool2d_shape above. Same rules and results as the
// CPU kernels; the backwards gather over the windows containing each input position (no
// atomics: deterministic, dX written once, no zero-fill needed).
namespace natverk {
namespace cuda {
template <typename T>
void maxpool2d_forward(T* Y, int64_t* argmax, const T* X, const Pool2dShape& s);
// Returns false when an argmax index lies outside its own window (so also when it lies outside
// the plane); such entries route nothing. Waits for the stream: the answer is a host value.
template <typename T>
bool maxpool2d_backward(T* dX, const T* dY, const int64_t* argmax, const Pool2dShape& s);
template <typename T>
void avgpool2d_forward(T* Y, const T* X, const Pool2dShape& s);
template <typename T>
void avgpool2d_backward(T* dX, const T* dY, const Pool2dShape& s);
template <typename T>
void global_avgpool_forward(T* Y, const T* X, int64_t N, int64_t C, int64_t HW);
template <typename T>
void global_avgpool_backward(T* dX, const T* dY, int64_t N, int64_t C, int64_t HW);
}  // namespace cuda
}  // namespace natverk
