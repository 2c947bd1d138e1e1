// dw_dot.h -- backward-weights of a convolution with few taps per output channel
// (ckk = C/groups * kH * kW: 9 for a 3x3 first layer on one channel, 27 on three) as dot
// products along the output pixels.
//
// For one image, dW_g^T (ckk x K) += cols (ckk x HWo) dY_g^T (HWo x K): both operands run
// contiguously along the pixels p. As a GEMM that is m = ckk rows by n = K columns over a
// long k = HWo, and every GEMM layout wastes most of its tile: a first layer's 9 rows of
// a 12-row tile, and a transposed dY to pack for every image (1->32 @28: packing dY cost
// as much as the FMAs, and the pass ran at a fifth of the FMA peak and half of PyTorch's
// speed). Here the vector runs along p instead: KB rows of dY against TB rows of cols,
// KB * TB accumulators of L lanes, every lane useful. The accumulators live in a
// per-thread buffer between images (part) and are summed across lanes once per chunk of
// images, so the result depends on the thread count only, as conv2d.cpp's other paths.
#pragma once
#include <cstdint>

namespace natverk {
namespace dw_dot {

template <typename T>
struct DotFns {
  int lanes;  // L: elements per vector
  int kb;     // rows of dY per block
  int tb;     // rows of cols per block
  // part[(r * tb + t) * lanes + l] += sum over v < nvec of dy[r][v*L + l] * cols[t][v*L + l]
  void (*block)(T* part, const T* const* cols, const T* const* dy, int64_t nvec);
};

#define NATVERK_DECLARE_DW_DOT(ns) \
  namespace ns {                   \
  template <typename T>            \
  DotFns<T> dot_fns();             \
  }
NATVERK_DECLARE_DW_DOT(generic)
NATVERK_DECLARE_DW_DOT(avx2)
NATVERK_DECLARE_DW_DOT(avx512)
#undef NATVERK_DECLARE_DW_DOT

}  // namespace dw_dot
}  // namespace natverk
