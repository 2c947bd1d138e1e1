// conv2d.h -- 2-D convolution (cross-correlation, as every framework) on NCHW
// tensors, forward and backward, on our GEMM via im2col (seed 001 §4.2.3-4.2.4,
// thesis eq. 14-15):
//
//   Y[n, k, oh, ow] = b[k] + sum_{c in group(k), i, j}
//                     X[n, c, oh*sh - ph + i*dh, ow*sw - pw + j*dw] * W[k, c - c0(k), i, j]
//   Ho = floor((H + 2 ph - dh (kH - 1) - 1) / sh) + 1   (thesis eq. 15 with dilation)
//
// Backward (seed 001 eq. 42, 43):
//   dX = full convolution of dY with the 180-degree-rotated kernels (col2im of W^T dY)
//   dW[k, c, i, j] = sum_{n, oh, ow} X[n, c, oh*sh - ph + i*dh, ...] dY[n, k, oh, ow]
//   db[k] = sum_{n, oh, ow} dY[n, k, oh, ow]
// The sums run over the whole batch: any 1/N lives in the loss's gradient.
//
// Layout: X (N, C, H, W), W (K, C/groups, kH, kW), b (K), Y (N, K, Ho, Wo); all
// C-contiguous. Outputs are overwritten. Images are processed in parallel.
//
// Algorithms (each with its own forward, backward-data and backward-weights):
//   im2col     im2col + GEMM, every geometry (this file's .cpp), per-thread
//              column buffer reused across calls; its forward on at most 27 taps a
//              channel (a first layer on 1-3 channels), stride and dilation 1, runs the
//              direct kernel of conv_direct.h instead, with the same bits;
//   winograd2  Winograd F(2x2, 3x3), winograd4 F(4x4, 3x3): 3x3, stride 1,
//              dilation 1, one group (winograd.h).
// conv2d_algorithm() says which one runs for a shape: the forced one where it
// applies (set_conv_algo / NATVERK_CONV_ALGO), else the measured rule in
// conv2d.cpp.
#pragma once
#include <cstdint>
#include <string>

namespace natverk {

struct Conv2dShape {
  int64_t N, C, H, W;    // input
  int64_t K, kH, kW;     // output channels, kernel size
  int64_t sh, sw;        // stride
  int64_t ph, pw;        // zero padding
  int64_t dh, dw;        // dilation
  int64_t groups;
  int64_t Ho, Wo;        // output size (computed)
};

// Validates the geometry and fills Ho, Wo; throws std::invalid_argument with a
// message that names the offending argument, also when padding or dilation make a
// size overflow int64 (common/shape.h) or the output or im2col workspace could not
// be counted in int64 bytes.
Conv2dShape make_conv2d_shape(int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t Cw,
                              int64_t kH, int64_t kW, int64_t sh, int64_t sw, int64_t ph,
                              int64_t pw, int64_t dh, int64_t dw, int64_t groups);

enum class ConvAlgo { Auto = 0, Im2col = 1, Winograd2 = 2, Winograd4 = 3 };

const char* conv_algo_name(ConvAlgo a);
// "auto", "im2col", "winograd2", "winograd4"; throws std::invalid_argument otherwise.
ConvAlgo parse_conv_algo(const std::string& name);
// The forced algorithm (Auto: none). The first call reads NATVERK_CONV_ALGO; a bad
// value there throws std::invalid_argument naming the variable, at every call until fixed.
ConvAlgo conv_algo();
void set_conv_algo(ConvAlgo a);
// The algorithm conv2d_forward / conv2d_backward run for shape s (never Auto).
ConvAlgo conv2d_algorithm(const Conv2dShape& s);

// An evaluation-mode epilogue for conv2d_forward: a batch norm in evaluation mode (and a ReLU)
// applied to each image's output where the algorithm writes it, while it is in cache, instead of
// two more passes over the output (issue 12, "in inference, conv + bias + BN + ReLU in one
// epilogue"): y = T(y scale[k] + shift[k]), then with relu max(y, 0) keeping NaN, by
// batchnorm_eval_row, so the bits of conv2d_forward, batchnorm_forward_eval and
// activation_forward (scale, shift from batchnorm_eval_affine).
struct ConvEvalEpilogue {
  const double* scale;
  const double* shift;
  bool relu;
};

template <typename T>
void conv2d_forward(T* Y, const T* X, const T* Wt, const T* b, const Conv2dShape& s,
                    const ConvEvalEpilogue* ep = nullptr);

// Any of dX, dW, db may be null (not wanted).
template <typename T>
void conv2d_backward(T* dX, T* dW, T* db, const T* dY, const T* X, const T* Wt,
                     const Conv2dShape& s);

}  // namespace natverk

// The CUDA twins (conv2d.cu: implicit GEMM, every geometry): the same contracts on device
// pointers, queued on natverk::cuda::stream(). The shape comes from make_conv2d_shape.
namespace natverk {
namespace cuda {
template <typename T>
void conv2d_forward(T* Y, const T* X, const T* Wt, const T* b, const Conv2dShape& s);
template <typename T>
void conv2d_backward(T* dX, T* dW, T* db, const T* dY, const T* X, const T* Wt,
                     const Conv2dShape& s);
}  // namespace cuda
}  // namespace natverk
