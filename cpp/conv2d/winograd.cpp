// winograd.cpp -- Winograd F(2x2,3x3) and F(4x4,3x3) convolution (see winograd.h).
//
// Work is split over images, one contiguous range per thread. Within a range the
// tiles are taken a block of whole tile rows ("bands") at a time, at most 128 tiles:
// the block's transformed input V (C x T per transform point) then stays in cache
// between its transform and its 16 or 36 GEMMs, and with n = T <= 128 the GEMM reads
// U (K x C, rows contiguous) in place instead of packing it (gemm_kernel.inc, direct A).
// A thread owns whole images, so the overlapping patches of backward-data's scatter
// never race, and backward-weights sums into a private dU per chunk, added in chunk
// order (the same bits for a given thread count, as conv2d.cpp's im2col path).
//
// Each transform is two halves, a constant matrix applied along the rows (lincomb) and
// one along the tile slots, each a loop over every slot of the block (see "Layout of a
// block"). The coefficients are compile-time constants; fma_c drops the zeros and
// folds the +-1s once the loops over the (m+2) rows are unrolled.
#include "conv2d/winograd.h"

#include <cstring>

#include "conv2d/winograd_matrices.h"
#include "conv2d/winograd_rows.h"
#include "conv2d/winograd_weights.h"

#include "common/cpu_features.h"
#include "common/parallel.h"
#include "common/scratch.h"
#include "common/shape.h"
#include "gemm/gemm.h"

namespace natverk {

bool winograd_applies(const Conv2dShape& s) {
  return s.kH == 3 && s.kW == 3 && s.sh == 1 && s.sw == 1 && s.dh == 1 && s.dw == 1 &&
         s.groups == 1;
}

namespace {

// acc + c * x for a coefficient known at compile time once the loops are unrolled.
template <typename T>
__attribute__((always_inline)) inline T fma_c(T acc, double c, T x) {
  if (c == 0.0) return acc;
  if (c == 1.0) return acc + x;
  if (c == -1.0) return acc - x;
  return acc + static_cast<T>(c) * x;
}

// out[i * os + e] = init + sum_r C(i, r) in[r * is + e] for i < I, e < n, where C(i, r) is
// Coef[i][r], or Coef[r][i] when Transposed. Every contiguous half of a transform is this:
// a small constant matrix times a block of rows.
template <typename T, int I, int R, const auto& Coef, bool Transposed = false>
__attribute__((always_inline)) inline void lincomb(T* __restrict out, int64_t os, const T* __restrict in,
                                                   int64_t is, int64_t n, T init = T(0)) {
#pragma GCC unroll 6
  for (int i = 0; i < I; ++i) {
    T* o = out + i * os;
    for (int64_t e = 0; e < n; ++e) {
      T acc = init;
#pragma GCC unroll 6
      for (int r = 0; r < R; ++r) acc = fma_c(acc, Transposed ? Coef[r][i] : Coef[i][r], in[r * is + e]);
      o[e] = acc;
    }
  }
}

struct Geom {
  int64_t th, tw;   // tiles per output column and row
  int64_t P;        // tw + 1: slots per band in a block's row buffers (see below)
  int64_t tc;       // columns per band in the transform domain: tw (compact) or P
  int64_t bpb;      // bands per block: bpb * tc <= 128, the GEMMs' n
  int64_t tmax;     // row-buffer slots per block, at most: bpb * P
};

// Compact transform-domain columns from 64 input channels on (see "Layout of a block").
constexpr int64_t kCompactMinC = 64;

template <int M>
Geom make_geom(const Conv2dShape& s) {
  Geom g;
  g.th = (s.Ho + M - 1) / M;
  g.tw = (s.Wo + M - 1) / M;
  g.P = g.tw + 1;
  g.tc = s.C >= kCompactMinC ? g.tw : g.P;
  g.bpb = 128 / g.tc > 0 ? 128 / g.tc : 1;
  g.tmax = g.bpb * g.P;
  return g;
}

// Elements of each of the two per-thread transform buffers.
template <int M>
int64_t band_buf(const Geom& g) {
  return (M + 2) * M * (g.tmax + 1);
}

// Layout of a block. Every transform below is one loop over all the tiles of the block,
// not one per band: with a band alone the loops were tw long (8 for a 32-pixel image
// under F(4x4)), shorter than one AVX-512 vector, and ran scalar.
//
// On the image side (the rows input_block reads, the rows scatter_block adds into) the
// rows are kept "phase-major": element w = q*m + ph of band bi's row is at
// [ph][bi*P + q] (q = 0..tw), phases L = Tp + 1 apart, Tp = nb*P. Column col of tile
// slot t's patch is then [col % m][t + col / m], a unit-stride read for every slot; only
// the copies in and out of the image interleave (groups of m): winograd_rows.h, a vector
// version per SIMD level. Slot bi*P + tw holds the band's last m pixels, which the last
// tile's patch reaches into, so it is a dummy tile there.
//
// In the transform domain (V, M, dM, dV: what the GEMMs read and write) band bi has tc
// columns at bi*tc, Tc = nb*tc in all. With tc = P the dummies come along: the GEMMs
// do 1/P more multiplications (a fifth for an 8x8 image under F(2x2), a third under
// F(4x4)); a dummy's gradient dM is exactly 0 (its dY patch is all padding), so it adds
// nothing to dW or dX, and its forward output is never stored. With tc = tw the tiles
// are compact and the GEMMs skip the dummies, at the price of a copy in input_block's
// and scatter_block's horizontal halves, the only ones that see both layouts (the
// compact and expand copies of winograd_rows.h); output_block and grad_block need no
// dummies. Compact pays where the GEMMs are large against the copies (the two builds in
// alternating processes, fwd+bwd, 1 thread, AVX-512, median ms): 256->256 @8 F(2x2)
// 115 -> 100, F(4x4) 104 -> 75; 128->128 @16 F(4x4) 82 -> 71; 64->64 @32 F(4x4)
// 98 -> 86; but MNIST 32->64 @14 F(2x2) 12.9 -> 13.5, its backward-data pass 4.2 -> 4.7
// (the copies cost about what the dummies' 1/8 of the small GEMMs did). Hence
// kCompactMinC.

// The bands b0 .. b0 + nb - 1 of a thread's images: band b is tile row b % th of image b / th.
struct Bands {
  int64_t b0, nb, th;
  int64_t n(int64_t bi) const { return (b0 + bi) / th; }
  int64_t ty(int64_t bi) const { return (b0 + bi) % th; }
};

// V[xi * ld + t] = (B^T d_t B)[xi] for every tile t of the block (compact), channel c
// of X. rows, tmp, hrow: band_buf elements each.
template <typename T, int M>
__attribute__((always_inline)) inline void input_block(T* __restrict V, int64_t ld, const T* X,
                                                       int64_t c, const Bands& bd,
                                                       const Conv2dShape& s, const Geom& g,
                                                       const wino_rows::RowFns<T>& rf,
                                                       T* __restrict rows, T* __restrict tmp,
                                                       T* __restrict hrow) {
  constexpr int A = M + 2;
  const int64_t Tp = bd.nb * g.P, L = Tp + 1, rl = M * L;
  const T* X_end = X + s.N * s.C * s.H * s.W;  // the gather may read anywhere in X
  for (int r = 0; r < A; ++r) {
    T* rr = rows + r * rl;
    for (int64_t bi = 0; bi < bd.nb; ++bi) {
      const int64_t h = bd.ty(bi) * M - s.ph + r;
      if (h < 0 || h >= s.H) {
        for (int ph = 0; ph < M; ++ph)
          std::memset(rr + ph * L + bi * g.P, 0, sizeof(T) * static_cast<size_t>(g.P));
      } else {
        rf.gather(rr + bi * g.P, L, X + ((bd.n(bi) * s.C + c) * s.H + h) * s.W, s.pw, s.W, g.P, X, X_end);
      }
    }
    for (int ph = 0; ph < M; ++ph) rr[ph * L + Tp] = T(0);  // read by the last dummy only
  }
  // vertical half: tmp[i] = sum_r BT[i][r] rows[r], over every phase and slot
  lincomb<T, A, A, Wino<M>::BT>(tmp, rl, rows, rl, rl);
  // horizontal half: V[i][j][t] = sum_col BT[j][col] tmp[i][col % m][t + col / m], over
  // every slot; compact: into hrow, then its tiles into V
#pragma GCC unroll 6
  for (int i = 0; i < A; ++i)
#pragma GCC unroll 6
    for (int j = 0; j < A; ++j) {
      const T* t = tmp + i * rl;
      T* v = g.tc == g.P ? V + (i * A + j) * ld : hrow;
      for (int64_t e = 0; e < Tp; ++e) {
        T acc = T(0);
#pragma GCC unroll 6
        for (int col = 0; col < A; ++col) acc = fma_c(acc, Wino<M>::BT[j][col], t[(col % M) * L + e + col / M]);
        v[e] = acc;
      }
      if (g.tc != g.P) rf.compact(V + (i * A + j) * ld, hrow, bd.nb, g.P, g.tw);
    }
}

// Channel k of Y = A^T M_t A + bias for every tile of the block, from Mv[xi * ld + t].
// t1, ob: band_buf elements each.
template <typename T, int M>
__attribute__((always_inline)) inline void output_block(T* Y, int64_t k, const T* __restrict Mv,
                                                        int64_t ld, T bias, const Bands& bd,
                                                        const Conv2dShape& s, const Geom& g,
                                                        const wino_rows::RowFns<T>& rf,
                                                        T* __restrict t1, T* __restrict ob) {
  constexpr int A = M + 2;
  const int64_t Tc = bd.nb * g.tc;
  // horizontal half: t1[i][jo][t] = sum_j AT[jo][j] M[i][j][t]
#pragma GCC unroll 6
  for (int i = 0; i < A; ++i) lincomb<T, M, A, Wino<M>::AT>(t1 + i * M * Tc, Tc, Mv + i * A * ld, ld, Tc);
  // vertical half: ob[io][jo][t] = bias + sum_i AT[io][i] t1[i][jo][t]
  lincomb<T, M, A, Wino<M>::AT>(ob, M * Tc, t1, M * Tc, M * Tc, bias);
  // then interleaved into output row ty*m + io of each band: Y[.., tx*m + jo] =
  // ob[io][jo][tx] for the tw tiles, the columns past Wo of the last one dropped
  for (int io = 0; io < M; ++io) {
    for (int64_t bi = 0; bi < bd.nb; ++bi) {
      const int64_t oh = bd.ty(bi) * M + io;
      if (oh >= s.Ho) continue;
      rf.store(Y + ((bd.n(bi) * s.K + k) * s.Ho + oh) * s.Wo, s.Wo, ob + io * M * Tc + bi * g.tc, Tc, 0, g.tw);
    }
  }
}

// dMv[xi * ld + t] = (A dY_t A^T)[xi] for every tile of the block, channel k of dY.
// rows, t1: band_buf elements each.
template <typename T, int M>
__attribute__((always_inline)) inline void grad_block(T* __restrict dMv, int64_t ld, const T* dY,
                                                      int64_t k, const Bands& bd,
                                                      const Conv2dShape& s, const Geom& g,
                                                      const wino_rows::RowFns<T>& rf,
                                                      T* __restrict rows, T* __restrict t1) {
  constexpr int A = M + 2;
  const int64_t Tc = bd.nb * g.tc;
  const T* dY_end = dY + s.N * s.K * s.Ho * s.Wo;  // the gather may read anywhere in dY
  // rows[io][jo][t] = dY[ty*m + io, tx*m + jo], zero past the edges (and in the dummies)
  for (int io = 0; io < M; ++io) {
    T* rr = rows + io * M * Tc;
    for (int64_t bi = 0; bi < bd.nb; ++bi) {
      const int64_t oh = bd.ty(bi) * M + io;
      if (oh >= s.Ho) {
        for (int jo = 0; jo < M; ++jo)
          std::memset(rr + jo * Tc + bi * g.tc, 0, sizeof(T) * static_cast<size_t>(g.tc));
      } else {
        rf.gather(rr + bi * g.tc, Tc, dY + ((bd.n(bi) * s.K + k) * s.Ho + oh) * s.Wo, 0, s.Wo, g.tc, dY, dY_end);
      }
    }
  }
  // horizontal half: t1[io][j][t] = sum_jo AT[jo][j] dY[io][jo][t]
#pragma GCC unroll 4
  for (int io = 0; io < M; ++io)
    lincomb<T, A, M, Wino<M>::AT, true>(t1 + io * A * Tc, Tc, rows + io * M * Tc, Tc, Tc);
  // vertical half: dM[i][j][t] = sum_io AT[io][i] t1[io][j][t]
#pragma GCC unroll 6
  for (int j = 0; j < A; ++j) lincomb<T, A, M, Wino<M>::AT, true>(dMv + j * ld, A * ld, t1 + j * Tc, A * Tc, Tc);
}

// Channel c of dX += B dV_t B^T for every tile of the block (the adjoint of
// input_block). t1, pr, ex: band_buf elements each.
template <typename T, int M>
__attribute__((always_inline)) inline void scatter_block(T* dX, int64_t c, const T* __restrict dV,
                                                         int64_t ld, const Bands& bd,
                                                         const Conv2dShape& s, const Geom& g,
                                                         const wino_rows::RowFns<T>& rf,
                                                         T* __restrict t1, T* __restrict pr,
                                                         T* __restrict ex) {
  constexpr int A = M + 2;
  const int64_t Tp = bd.nb * g.P, L = Tp + 1, rl = M * L;
  std::memset(t1, 0, sizeof(T) * static_cast<size_t>(A * rl));
  // horizontal half: t1[i][col % m][t + col / m] += sum_j BT[j][col] dV[i][j][t], over
  // every slot (compact: of ex, dV[i][.] with 0 in the dummies); neighbouring patches
  // overlap by two columns, so each col is its own pass.
  const bool padded = g.tc == g.P;
#pragma GCC unroll 6
  for (int i = 0; i < A; ++i) {
    if (!padded)
      for (int j = 0; j < A; ++j) rf.expand(ex + j * Tp, dV + (i * A + j) * ld, bd.nb, g.P, g.tw);
    const T* src = padded ? dV + i * A * ld : ex;
    const int64_t sld = padded ? ld : Tp;
#pragma GCC unroll 6
    for (int col = 0; col < A; ++col) {
      T* o = t1 + i * rl + (col % M) * L + col / M;
      for (int64_t e = 0; e < Tp; ++e) {
        T acc = T(0);
#pragma GCC unroll 6
        for (int j = 0; j < A; ++j) acc = fma_c(acc, Wino<M>::BT[j][col], src[j * sld + e]);
        o[e] += acc;
      }
    }
  }
  // vertical half: pr[r][ph][t] = sum_i BT[i][r] t1[i][ph][t], added onto row ty*m - ph + r
  lincomb<T, A, A, Wino<M>::BT, true>(pr, rl, t1, rl, rl);
  for (int r = 0; r < A; ++r) {
    for (int64_t bi = 0; bi < bd.nb; ++bi) {
      const int64_t h = bd.ty(bi) * M - s.ph + r;
      if (h < 0 || h >= s.H) continue;
      rf.add(dX + ((bd.n(bi) * s.C + c) * s.H + h) * s.W, s.W, pr + r * rl + bi * g.P, L, s.pw, g.P);
    }
  }
}

thread_local Scratch t_wino;
// The caller's transformed weights and dU partial sums: kept between calls, so a
// training step allocates nothing once its shapes have been seen.
thread_local Scratch t_wino_u, t_wino_du;

// One thread's workspace, carved from t_wino.
template <typename T>
struct Work {
  T *V, *Mb, *dV, *b1, *b2, *b3;
};

template <typename T, int M>
size_t work_elems(const Conv2dShape& s, const Geom& g, bool v, bool dv) {
  constexpr int A = M + 2;
  const int64_t a2t = checked_mul(A * A, g.tmax, "the Winograd workspace");
  int64_t total = 3 * band_buf<M>(g) + checked_mul(a2t, s.K, "the Winograd workspace");
  if (v) total += checked_mul(a2t, s.C, "the Winograd workspace");
  if (dv) total += checked_mul(a2t, s.C, "the Winograd workspace");
  checked_bytes(total, sizeof(T), "the Winograd workspace");
  return static_cast<size_t>(total);
}

template <typename T, int M>
Work<T> carve(const Conv2dShape& s, const Geom& g, bool v, bool dv) {
  constexpr int A = M + 2;
  T* base = static_cast<T*>(t_wino.get(work_elems<T, M>(s, g, v, dv) * sizeof(T)));
  const int64_t a2t = A * A * g.tmax, buf = band_buf<M>(g);
  Work<T> w{nullptr, nullptr, nullptr, base, base + buf, base + 2 * buf};
  T* p = base + 3 * buf;
  w.Mb = p;
  p += a2t * s.K;
  if (v) { w.V = p; p += a2t * s.C; }
  if (dv) w.dV = p;
  return w;
}

inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

// What one pass needs, shared by the threads.
template <typename T>
struct Job {
  const Conv2dShape* s;
  Geom g;
  T* Y;           // forward: output
  T* dX;          // backward: input gradient or null
  T* dU;          // backward: per-chunk dU partial sums or null
  const T* X;
  const T* dY;
  const T* U;     // forward: U[xi][k][c]; backward: UT[xi][c][k]
  const T* b;
  wino_rows::RowFns<T> rows;  // this SIMD level's row copies
};

// The transforms of every tile of images [n0, n1), block by block, with the GEMMs
// between them. always_inline: each ISA wrapper below compiles its own copy.
template <typename T, int M>
__attribute__((always_inline)) inline void forward_range(const Job<T>& j, int64_t n0, int64_t n1) {
  constexpr int A = M + 2, A2 = A * A;
  const Conv2dShape& s = *j.s;
  const Geom& g = j.g;
  const int64_t C = s.C, K = s.K;
  const Work<T> w = carve<T, M>(s, g, true, false);
  for (int64_t b0 = n0 * g.th; b0 < n1 * g.th; b0 += g.bpb) {
    const Bands bd{b0, min64(g.bpb, n1 * g.th - b0), g.th};
    const int64_t Tc = bd.nb * g.tc;
    for (int64_t c = 0; c < C; ++c)
      input_block<T, M>(w.V + c * Tc, C * Tc, j.X, c, bd, s, g, j.rows, w.b1, w.b2, w.b3);
    // M_xi (K x Tc) = U_xi (K x C) V_xi (C x Tc)
    for (int xi = 0; xi < A2; ++xi)
      gemm_serial_rowmajor<T>(false, false, K, Tc, C, T(1), j.U + xi * K * C, C, w.V + xi * C * Tc,
                              Tc, T(0), w.Mb + xi * K * Tc, Tc);
    for (int64_t k = 0; k < K; ++k)
      output_block<T, M>(j.Y, k, w.Mb + k * Tc, K * Tc, j.b ? j.b[k] : T(0), bd, s, g, j.rows, w.b1, w.b2);
  }
}

template <typename T, int M>
__attribute__((always_inline)) inline void backward_range(const Job<T>& j, int64_t n0, int64_t n1,
                                                          int chunk) {
  constexpr int A = M + 2, A2 = A * A;
  const Conv2dShape& s = *j.s;
  const Geom& g = j.g;
  const int64_t C = s.C, K = s.K, HW = s.H * s.W;
  const Work<T> w = carve<T, M>(s, g, j.dU != nullptr, j.dX != nullptr);
  if (j.dX) std::memset(j.dX + n0 * C * HW, 0, sizeof(T) * static_cast<size_t>((n1 - n0) * C * HW));
  T* du = j.dU ? j.dU + chunk * A2 * K * C : nullptr;
  for (int64_t b0 = n0 * g.th; b0 < n1 * g.th; b0 += g.bpb) {
    const Bands bd{b0, min64(g.bpb, n1 * g.th - b0), g.th};
    const int64_t Tc = bd.nb * g.tc;
    for (int64_t k = 0; k < K; ++k) grad_block<T, M>(w.Mb + k * Tc, K * Tc, j.dY, k, bd, s, g, j.rows, w.b1, w.b2);
    if (du) {
      for (int64_t c = 0; c < C; ++c)
        input_block<T, M>(w.V + c * Tc, C * Tc, j.X, c, bd, s, g, j.rows, w.b1, w.b2, w.b3);
      // dU_xi (K x C) += dM_xi (K x Tc) V_xi^T (Tc x C)
      for (int xi = 0; xi < A2; ++xi)
        gemm_serial_rowmajor<T>(false, true, K, C, Tc, T(1), w.Mb + xi * K * Tc, Tc, w.V + xi * C * Tc,
                                Tc, T(1), du + xi * K * C, C);
    }
    if (j.dX) {
      // dV_xi (C x Tc) = U_xi^T (C x K) dM_xi (K x Tc)
      for (int xi = 0; xi < A2; ++xi)
        gemm_serial_rowmajor<T>(false, false, C, Tc, K, T(1), j.U + xi * C * K, K, w.Mb + xi * K * Tc,
                                Tc, T(0), w.dV + xi * C * Tc, Tc);
      for (int64_t c = 0; c < C; ++c)
        scatter_block<T, M>(j.dX, c, w.dV + c * Tc, C * Tc, bd, s, g, j.rows, w.b1, w.b2, w.b3);
    }
  }
}

// One copy of the range functions per SIMD level, as the GEMM micro-kernels (the
// transforms are a third to a half of the time; compiled for the baseline alone they
// ran at a quarter of AVX-512's width). Chosen with simd_level(), so NATVERK_SIMD
// lowers them too.
template <typename T, int M>
struct RangeFns {
  void (*fwd)(const Job<T>&, int64_t, int64_t);
  void (*bwd)(const Job<T>&, int64_t, int64_t, int);
  wino_rows::RowFns<T> rows;
};

#define NATVERK_WINO_RANGES(name, attr)                                                          \
  template <typename T, int M>                                                                   \
  attr void fwd_##name(const Job<T>& j, int64_t n0, int64_t n1) {                                \
    forward_range<T, M>(j, n0, n1);                                                              \
  }                                                                                              \
  template <typename T, int M>                                                                   \
  attr void bwd_##name(const Job<T>& j, int64_t n0, int64_t n1, int chunk) {                     \
    backward_range<T, M>(j, n0, n1, chunk);                                                      \
  }

NATVERK_WINO_RANGES(generic, )
#if defined(NATVERK_HAVE_X86_KERNELS)
NATVERK_WINO_RANGES(avx2, __attribute__((target("avx2,fma"))))
NATVERK_WINO_RANGES(avx512, __attribute__((target("avx512f,avx512dq,avx512vl,avx512bw,avx2,fma"))))
#endif
#undef NATVERK_WINO_RANGES

template <typename T, int M>
RangeFns<T, M> range_fns() {
  switch (simd_level()) {
#if defined(NATVERK_HAVE_X86_KERNELS)
    case SimdLevel::AVX512: return {&fwd_avx512<T, M>, &bwd_avx512<T, M>, wino_rows::avx512::row_fns<T, M>()};
    case SimdLevel::AVX2: return {&fwd_avx2<T, M>, &bwd_avx2<T, M>, wino_rows::avx2::row_fns<T, M>()};
#endif
    default:
      return {&fwd_generic<T, M>, &bwd_generic<T, M>,
              {&wino_rows::gather_scalar<T, M>, &wino_rows::scatter_scalar<T, M, false>,
               &wino_rows::scatter_scalar<T, M, true>, &wino_rows::compact_scalar<T>,
               &wino_rows::expand_scalar<T>}};
  }
}

}  // namespace

template <typename T, int M>
void winograd_forward(T* Y, const T* X, const T* Wt, const T* b, const Conv2dShape& s) {
  constexpr int A = M + 2, A2 = A * A;
  const Geom g = make_geom<M>(s);
  T* U = static_cast<T*>(t_wino_u.get(checked_bytes(checked_mul(A2 * s.K, s.C, "the Winograd weights"),
                                                     sizeof(T), "the Winograd weights")));
  winograd_weights_in<T, M>(U, nullptr, Wt, s.K, s.C);
  work_elems<T, M>(s, g, true, false);  // sized (and checked) on the caller, before the region
  const RangeFns<T, M> fns = range_fns<T, M>();
  const Job<T> job{&s, g, Y, nullptr, nullptr, X, nullptr, U, b, fns.rows};
  parallel_for(s.N, 1, [&](int64_t n0, int64_t n1, int) { fns.fwd(job, n0, n1); });
}

template <typename T, int M>
void winograd_backward(T* dX, T* dW, const T* dY, const T* X, const T* Wt, const Conv2dShape& s) {
  constexpr int A = M + 2, A2 = A * A;
  if (!dX && !dW) return;
  const Geom g = make_geom<M>(s);
  const int64_t C = s.C, K = s.K, ukc = A2 * K * C;
  T* UT = nullptr;
  if (dX) {
    UT = static_cast<T*>(t_wino_u.get(checked_bytes(ukc, sizeof(T), "the Winograd weights")));
    winograd_weights_in<T, M>(nullptr, UT, Wt, K, C);
  }
  // dU partial sums, one per chunk, added in chunk order below
  const int chunks = plan_chunks(s.N, 1);
  T* dU = nullptr;
  if (dW) {
    const int64_t n = checked_mul(ukc, chunks, "the Winograd dW partial sums");
    dU = static_cast<T*>(t_wino_du.get(checked_bytes(n, sizeof(T), "the Winograd dW partial sums")));
    std::memset(dU, 0, sizeof(T) * static_cast<size_t>(n));
  }
  work_elems<T, M>(s, g, dW != nullptr, dX != nullptr);
  const RangeFns<T, M> fns = range_fns<T, M>();
  const Job<T> job{&s, g, nullptr, dX, dU, X, dY, UT, nullptr, fns.rows};
  parallel_for_chunks(s.N, chunks, [&](int64_t n0, int64_t n1, int chunk) { fns.bwd(job, n0, n1, chunk); });
  if (!dW) return;
  // dW[k,c] = G^T (sum over chunks of dU[k,c], in chunk order) G, in double; output
  // channels split between the threads, each element's arithmetic the same whoever runs it
  winograd_weights_out<T, M>(dW, dU, chunks, K, C);
}

template void winograd_forward<float, 2>(float*, const float*, const float*, const float*, const Conv2dShape&);
template void winograd_forward<float, 4>(float*, const float*, const float*, const float*, const Conv2dShape&);
template void winograd_forward<double, 2>(double*, const double*, const double*, const double*, const Conv2dShape&);
template void winograd_forward<double, 4>(double*, const double*, const double*, const double*, const Conv2dShape&);
template void winograd_backward<float, 2>(float*, float*, const float*, const float*, const float*, const Conv2dShape&);
template void winograd_backward<float, 4>(float*, float*, const float*, const float*, const float*, const Conv2dShape&);
template void winograd_backward<double, 2>(double*, double*, const double*, const double*, const double*, const Conv2dShape&);
template void winograd_backward<double, 4>(double*, double*, const double*, const double*, const double*, const Conv2dShape&);

}  // namespace natverk
