// conv_pool.h -- a few-channel convolution, its bias, an optional ReLU and a 2x2 max-pooling in
// one pass (issue 12, "a first-layer kernel for C_in below the SIMD width"): the first layer of
// the thesis' MNIST CNN, conv 1->32 @28 -> ReLU -> max-pool 2x2.
//
// Done as three kernels, the convolution writes its whole output (64 x 32 x 28 x 28 floats,
// 6.4 MB, past the L2) through im2col and a GEMM of depth 9, and the pooling reads it back.
// Here each vector holds L pooled outputs of one channel along an image row (PyTorch's and
// oneDNN's "direct" convolutions vectorise along the image too, Georganas et al., SC18); the
// four conv outputs of each pooling window are four accumulators, and only the pooled values
// and their arg-max are stored. The backward pass needs nothing else: the pooling's backward
// reads the arg-max, the ReLU's the pooled output, the convolution's X and dY.
//
// The bits are those of conv2d_forward (im2col + GEMM), then maxpool2d_forward (2x2, stride 2),
// then activation_forward's ReLU on the pooled output, the order the plan runs them in
// (plan.cpp, fuse_relu_maxpool):
//   * every conv output is one FMA chain over its taps (c, i, j) in im2col's row order, from 0,
//     zero padding included, as the GEMM's micro-kernel runs it when the taps fit one k block,
//     then + b[k] in one rounding (the GEMM's C = acc + C on a C filled with the bias, +0
//     without one);
//   * the window's four candidates are taken in maxpool2d's order (row 0 left, right, row 1
//     left, right) with its rule: a larger value wins, a NaN wins over a number, ties keep the
//     first; the arg-max is the same index into the conv output's plane;
//   * relu: v > 0 || v != v ? v : 0 (NaN kept, -0 to +0).
// tests/test_conv_pool.py holds it to those bits, and to the float64 reference.
#pragma once
#include <cstdint>

#include "conv2d/conv2d.h"

namespace natverk {

// Whether conv2d_maxpool_forward runs shape s (the convolution's) at the current SIMD level:
// groups 1, stride 1, dilation 1, at most kConvPoolMaxTaps taps a channel of output
// (C kH kW), conv output at least 2x2 and under 2^31 pixels, the im2col algorithm chosen for s (conv2d_algorithm:
// also under a forced algorithm), and AVX2 or AVX-512 (the scalar level's GEMM does not fuse
// its multiply-adds, so there the three kernels run).
constexpr int64_t kConvPoolMaxTaps = 27;
bool conv_maxpool_applies(const Conv2dShape& s);

// P (N, K, Ho/2, Wo/2) = [ReLU](maxpool2x2(conv2d(X, W, b))) and argmax (same shape; index
// into the conv output's Ho x Wo plane), as described above. b may be null (no bias).
// Returns false, touching nothing, where conv_maxpool_applies(s) is false.
template <typename T>
bool conv2d_maxpool_forward(T* P, int64_t* argmax, const T* X, const T* W, const T* b, const Conv2dShape& s,
                            bool relu);

namespace conv_pool {
// One SIMD level's kernel, for images [n0, n1) (conv_pool.inc).
template <typename T>
using ImagesFn = void (*)(T* P, int64_t* argmax, const T* X, const T* W, const T* b, const Conv2dShape& s,
                          bool relu, int64_t n0, int64_t n1);
#define NATVERK_DECLARE_CONV_POOL(ns) \
  namespace ns {                      \
  template <typename T>               \
  ImagesFn<T> images_fn(const Conv2dShape& s); \
  }
NATVERK_DECLARE_CONV_POOL(avx2)
NATVERK_DECLARE_CONV_POOL(avx512)
#undef NATVERK_DECLARE_CONV_POOL
}  // namespace conv_pool

}  // namespace natverk
