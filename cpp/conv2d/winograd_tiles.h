// winograd_tiles.h -- the Winograd convolution's data side (winograd.h), vectorised over
// channels, one copy per SIMD level.
//
// A block of tile rows ("bands") is first transposed from NCHW into a channel-last,
// zero-padded buffer (rows x Wb x Cp, Cp = C rounded up to the vector width), so that
// every (m+2) x (m+2) input patch is (m+2)^2 unit-stride vector loads and each tile's
// transform is one straight run of vector arithmetic over Cp / lanes channel groups.
// This is the layout ncnn's and oneDNN's Winograd kernels transform in (channels in the
// vector, Lavin & Gray's tiles one after the other). The transform domain is tile-major:
//
//   V[xi][t][c]    (T x Cp per point xi)   the input transform B^T d B
//   M[xi][t][k]    (T x Kp)                V_xi UT_xi, the forward GEMM (m = T, n = K, k = C)
//   dM[xi][t][k]                           the gradient transform A dY A^T
//   dV[xi][t][c]                           dM_xi U_xi, the backward-data GEMM
//   dU[xi][k][c]  += dM_xi^T V_xi          the backward-weights GEMM
//
// It replaced a layout vectorised along the rows of tiles, whose strided row copies in and
// out of every block (gather, scatter, compact, expand) were a third of MNIST 64 -> 128
// @7's time (perf, Zen 3): there a row is two tiles. The transposes in and out here cost
// one pass over each image, S x S in registers (winograd_tiles.inc).
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>

#include "common/shape.h"
#include "conv2d/conv2d.h"

namespace natverk {
namespace wino_tiles {

// Bands (tile rows) per block: a block holds at most kTileBlock tiles, or one band.
constexpr int64_t kTileBlock = 128;

struct Geom {
  int64_t th, tw;  // tiles per output column and row
  int64_t Wb;      // columns of the padded input buffers: tw * m + 2
  int64_t Wt;      // columns of the output-side buffers: tw * m
  int64_t Cp, Kp;  // C and K rounded up to the vector width
  int64_t bpb;     // bands per block
  int64_t Tmax;    // tiles per block, at most: bpb * tw
  int64_t xrows;   // rows of the input-side buffers, at most: bpb * (m + 2)
};

// mr: the GEMM micro-kernel's rows (gemm_blocking_*): a block's T tiles are the GEMMs' m,
// and a ragged last tile of rows costs a whole one, so T is a multiple of mr where one
// of at least half a block is (64 -> 128 @7 F(4x4): 126 tiles, not 128).
template <int M>
Geom make_geom(const Conv2dShape& s, int lanes, int mr) {
  Geom g;
  g.th = (s.Ho + M - 1) / M;
  g.tw = (s.Wo + M - 1) / M;
  g.Wb = g.tw * M + 2;
  g.Wt = g.tw * M;
  g.Cp = (s.C + lanes - 1) / lanes * lanes;
  g.Kp = (s.K + lanes - 1) / lanes * lanes;
  g.bpb = kTileBlock / g.tw > 0 ? kTileBlock / g.tw : 1;
  for (int64_t b = g.bpb; b >= 1 && 2 * b * g.tw >= kTileBlock; --b)
    if (b * g.tw % mr == 0) {
      g.bpb = b;
      break;
    }
  g.Tmax = g.bpb * g.tw;
  g.xrows = g.bpb * (M + 2);
  return g;
}

// What one pass needs, shared by the threads. U: forward UT[xi][c][k] (C x K a point),
// backward U[xi][k][c]; dU: this pass's per-chunk partial sums [chunk][xi][k][c].
template <typename T>
struct Job {
  const Conv2dShape* s;
  Geom g;
  T* Y;
  T* dX;
  T* dU;
  const T* X;
  const T* dY;
  const T* U;
  const T* b;
  const ConvEvalEpilogue* ep;  // forward: the evaluation epilogue (conv2d.h), or null
};

// Elements of one thread's workspace (the buffers are carved in this order):
//   forward:  Xb, V, M, Yb, the bias padded to Kp;
//   backward: dYb, dM, then Xb and V (dW wanted), then dV and dXb (dX wanted).
// Checked: the sizes of the other buffers cannot overflow past this.
template <int M>
int64_t work_elems(const Geom& g, bool forward, bool dw, bool dx) {
  constexpr int64_t A2 = (M + 2) * (M + 2);
  const char* what = "the Winograd workspace";
  const int64_t xb = checked_mul(checked_mul(g.xrows, g.Wb, what), g.Cp, what);
  const int64_t yb = checked_mul(checked_mul(g.bpb * M, g.Wt, what), g.Kp, what);
  const int64_t v = checked_mul(A2 * g.Tmax, g.Cp, what), mk = checked_mul(A2 * g.Tmax, g.Kp, what);
  const int64_t total = forward ? xb + v + mk + yb + g.Kp : yb + mk + (dw ? xb + v : 0) + (dx ? v + xb : 0);
  if (total < 0) throw std::length_error(std::string(what) + " is too large");
  return total;
}

// Images [n0, n1) of the pass; chunk names backward's dU partial sum.
template <typename T, int M>
using FwdFn = void (*)(const Job<T>&, T* work, int64_t n0, int64_t n1);
template <typename T, int M>
using BwdFn = void (*)(const Job<T>&, T* work, int64_t n0, int64_t n1, int chunk);

template <typename T, int M>
struct Fns {
  int lanes;
  FwdFn<T, M> fwd;
  BwdFn<T, M> bwd;
};

// One copy per SIMD level (winograd_tiles.inc), each in its own namespace.
#define NATVERK_DECLARE_WINO_TILES(ns) \
  namespace ns {                       \
  template <typename T, int M>         \
  Fns<T, M> fns();                     \
  }
NATVERK_DECLARE_WINO_TILES(generic)
NATVERK_DECLARE_WINO_TILES(avx2)
NATVERK_DECLARE_WINO_TILES(avx512)
#undef NATVERK_DECLARE_WINO_TILES

}  // namespace wino_tiles
}  // namespace natverk
