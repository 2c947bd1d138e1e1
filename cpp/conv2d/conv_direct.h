// conv_direct.h -- a direct forward convolution for layers with few taps per output channel
// (C kH kW <= 27: a first layer on one to three channels, 3x3), with no im2col buffer (issue 12,
// "a first-layer kernel for C_in below the SIMD width" and "a direct convolution ... with no
// im2col buffer"). conv2d.cpp's im2col algorithm runs it for its forward where it applies.
//
// Through im2col + GEMM such a layer is a GEMM of depth 27 or less (64 x 27 x 1024 for VGG's
// 3->64 @32): each image's columns are written, packed again, the output is filled with the bias
// and then read back and written by the GEMM, and the 27 multiply-adds of each output cannot
// hide that traffic (1 thread, Zen 3: 6.8 ms for a batch of 64, 33 GFLOP/s, 0.64 of PyTorch).
// Here each vector holds L outputs of one channel along an output row, as oneDNN's and PyTorch's
// direct convolutions vectorise along the image (Georganas et al., SC18); a register block is KB
// output channels x NB such vectors, and every tap is one broadcast weight a channel and one
// unaligned load an output vector from a zero-padded copy of the image (so no load tests an
// edge). The output is written once.
//
// The bits are conv2d_forward's through im2col + GEMM (conv_pool.h gives the same argument):
// every output is one FMA chain over its taps (c, i, j) in im2col's row order, from +0, zero
// padding included, as the GEMM's micro-kernel runs it when the taps fit one k block, then
// + b[k] in one rounding (+0 without a bias), as the GEMM's C = acc + C on a C filled with the
// bias. tests/test_conv_direct.py holds it to the GEMM's bits and to the float64 reference.
#pragma once
#include <cstdint>

#include "conv2d/conv2d.h"

namespace natverk {

constexpr int64_t kConvDirectMaxTaps = 27;

// Whether conv2d_direct_forward runs shape s at the current SIMD level: groups 1, stride 1,
// dilation 1, at most kConvDirectMaxTaps taps a channel of output, AVX2 or AVX-512 (the scalar
// level's GEMM does not fuse its multiply-adds, so there im2col + GEMM runs).
bool conv_direct_applies(const Conv2dShape& s);

// Y (N, K, Ho, Wo) = conv2d(X, W) + b, then the evaluation epilogue ep if given (conv2d.h), as
// described above; b may be null. Returns false, touching nothing, where conv_direct_applies(s)
// is false.
template <typename T>
bool conv2d_direct_forward(T* Y, const T* X, const T* W, const T* b, const Conv2dShape& s,
                           const ConvEvalEpilogue* ep);

namespace conv_direct {
// One SIMD level's kernel: image n of the batch.
template <typename T>
using ImageFn = void (*)(T* Y, const T* X, const T* W, const T* b, const Conv2dShape& s, int64_t n);
#define NATVERK_DECLARE_CONV_DIRECT(ns) \
  namespace ns {                        \
  template <typename T>                 \
  ImageFn<T> image_fn(const Conv2dShape& s); \
  }
NATVERK_DECLARE_CONV_DIRECT(avx2)
NATVERK_DECLARE_CONV_DIRECT(avx512)
#undef NATVERK_DECLARE_CONV_DIRECT
}  // namespace conv_direct

}  // namespace natverk
