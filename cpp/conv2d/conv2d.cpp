// conv2d.cpp -- the convolution entry points: the choice of algorithm, and the
// im2col + GEMM algorithm itself (see conv2d.h for the maths).
#include "conv2d/conv2d.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "batchnorm/batchnorm.h"
#include "common/cpu_features.h"
#include "common/elementwise.h"
#include "common/lanes.h"
#include "common/parallel.h"
#include "common/scratch.h"
#include "common/shape.h"
#include "conv2d/conv_direct.h"
#include "conv2d/dw_dot.h"
#include "conv2d/winograd.h"
#include "gemm/gemm.h"

namespace natverk {

Conv2dShape make_conv2d_shape(int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t Cw,
                              int64_t kH, int64_t kW, int64_t sh, int64_t sw, int64_t ph,
                              int64_t pw, int64_t dh, int64_t dw, int64_t groups) {
  auto fail = [](const std::string& msg) { throw std::invalid_argument(msg); };
  if (N < 1 || C < 1 || H < 1 || W < 1) fail("input must be non-empty (N, C, H, W all >= 1)");
  if (K < 1 || kH < 1 || kW < 1) fail("weight must be non-empty (out_channels, kH, kW all >= 1)");
  if (sh < 1 || sw < 1) fail("stride must be >= 1, got " + pair_str(sh, sw));
  if (ph < 0 || pw < 0) fail("padding must be >= 0, got " + pair_str(ph, pw));
  if (dh < 1 || dw < 1) fail("dilation must be >= 1, got " + pair_str(dh, dw));
  if (groups < 1) fail("groups must be >= 1, got " + std::to_string(groups));
  if (C % groups != 0 || K % groups != 0)
    fail("groups (" + std::to_string(groups) + ") must divide in_channels (" + std::to_string(C) +
         ") and out_channels (" + std::to_string(K) + ")");
  // C / groups, not Cw * groups: groups divides C (checked above), and the product could overflow.
  if (C / groups != Cw)
    fail("weight has " + std::to_string(Cw) + " input channels per group but the input has " +
         std::to_string(C) + " channels in " + std::to_string(groups) + " group(s)");
  Conv2dShape s{N, C, H, W, K, kH, kW, sh, sw, ph, pw, dh, dw, groups, 0, 0};
  // Overflow-checked (common/shape.h): padding and dilation are free integers, and the
  // unchecked H + 2 * ph wrapped around for ph near 2^63 and "fitted" any kernel.
  std::tie(s.Ho, s.Wo) = conv_out_size(H, W, Window2d{kH, kW, sh, sw, ph, pw, dh, dw}, true);
  // Every size the kernels compute from the shape must fit int64 too: the output
  // (N, K, Ho, Wo) and one image's im2col columns (C/groups * kH * kW, Ho * Wo), in bytes of
  // the widest dtype. Past this point the kernels' plain arithmetic cannot overflow.
  checked_bytes(checked_numel({N, K, s.Ho, s.Wo}, "the output"), sizeof(double), "the output");
  checked_bytes(checked_numel({Cw, kH, kW, s.Ho, s.Wo}, "the im2col workspace"), sizeof(double),
                "the im2col workspace");
  return s;
}

// ---- the choice of algorithm

namespace {
// -1: NATVERK_CONV_ALGO not read yet
std::atomic<int> g_conv_algo{-1};
}  // namespace

const char* conv_algo_name(ConvAlgo a) {
  switch (a) {
    case ConvAlgo::Im2col: return "im2col";
    case ConvAlgo::Winograd2: return "winograd2";
    case ConvAlgo::Winograd4: return "winograd4";
    default: return "auto";
  }
}

ConvAlgo parse_conv_algo(const std::string& name) {
  for (ConvAlgo a : {ConvAlgo::Auto, ConvAlgo::Im2col, ConvAlgo::Winograd2, ConvAlgo::Winograd4})
    if (name == conv_algo_name(a)) return a;
  throw std::invalid_argument("conv algorithm must be one of auto, im2col, winograd2, winograd4, got '" +
                              name + "'");
}

ConvAlgo conv_algo() {
  const int v = g_conv_algo.load(std::memory_order_relaxed);
  if (v >= 0) return static_cast<ConvAlgo>(v);
  const char* env = std::getenv("NATVERK_CONV_ALGO");
  ConvAlgo a = ConvAlgo::Auto;
  if (env && *env) {
    try {
      a = parse_conv_algo(env);
    } catch (const std::invalid_argument&) {
      throw std::invalid_argument(std::string("NATVERK_CONV_ALGO='") + env +
                                  "' is not one of auto, im2col, winograd2, winograd4");
    }
  }
  int expected = -1;  // a concurrent set_conv_algo wins over the environment
  g_conv_algo.compare_exchange_strong(expected, static_cast<int>(a));
  return static_cast<ConvAlgo>(g_conv_algo.load(std::memory_order_relaxed));
}

void set_conv_algo(ConvAlgo a) { g_conv_algo.store(static_cast<int>(a), std::memory_order_relaxed); }

ConvAlgo conv2d_algorithm(const Conv2dShape& s) {
  const ConvAlgo forced = conv_algo();
  const bool wino = winograd_applies(s);
  if (forced != ConvAlgo::Auto) return (forced == ConvAlgo::Im2col || wino) ? forced : ConvAlgo::Im2col;
  if (!wino) return ConvAlgo::Im2col;
  // The measured rule (benchmarks/README.md, "Convolution algorithms" and "Winograd tiles
  // vectorised over channels"; fwd+bwd, batch 64, 1 thread, Zen 3 with AVX2, float32 ms):
  // - below 8 channels in or out the transforms cost more than the multiplications they
  //   save (4->32 @28: im2col 8.1, F(4x4) 8.3; 1->32 @28: 3.0 against 7.4; 3->64 @32: 16
  //   against 28); from 8 on Winograd wins by 2.5x (8->32 @28: 19.6 against 8.0; 8->8 @28:
  //   6.9 against 2.6; 32->8 @14: 7.3 against 2.6). ncnn draws the line at 16, for
  //   kernels vectorised along the image; ours vectorise over channels, 8 a register.
  // - F(4x4, 3x3) needs 2.25 multiplications an output against F(2x2)'s 4, and wins from
  //   16x16 outputs on (64->64 @32: 90 against 126; 128->128 @16: 70 against 93) and on
  //   smaller images whose sides it pads no further than F(2x2) does, a multiple of 4 or
  //   one short of it (256->256 @8: 68 against 91; 64->128 @7: 9.3 against 12.9; 32->64
  //   @12: 5.3 against 8.0). Where it pads further it loses with AVX2 (32->64 @14: 11.8
  //   against 10.6) or ties (32->64 @10: 5.1 against 5.4).
  // - Its float32 error, on the points of winograd_matrices.h, stays inside the float32
  //   default of 1e-5 up to 256 channels (tests/test_conv_algos.py), so the channel count
  //   does not limit it.
  // - With AVX-512 (measured on Zen 4: benchmarks/README.md, "F(4x4) below 16x16 with
  //   AVX-512"), F(4x4) also wins where it pads further, as long as its padded tiles take
  //   at most 3/4 of F(2x2)'s multiplications, 36 t4 <= 3/4 16 t2 with t4, t2 the tiles an
  //   image: 32->64 @14 8.0-8.1 against 9.3-10.3, 64->64 @13 18.2 against 19.7, 256->256 @14
  //   206 against 237, 8->32 @14 3.1 against 3.8 (128->128 @14 is a tie: 62-74 against
  //   59-68). Past that line it ties (64->64 @9 9.3 against 9.7, 32->64 @10 4.3 against
  //   4.5) or loses (64->64 @6 4.1 against 3.4, @5 3.2 against 2.8).
  if (s.C < 8 || s.K < 8) return ConvAlgo::Im2col;
  if (s.Ho >= 16 && s.Wo >= 16) return ConvAlgo::Winograd4;
  // F(4x4) pads a side of n outputs to 4 ceil(n/4), F(2x2) to 2 ceil(n/2)
  const auto no_more_padding = [](int64_t n) { return (n + 3) / 4 * 4 == (n + 1) / 2 * 2; };
  if (no_more_padding(s.Ho) && no_more_padding(s.Wo)) return ConvAlgo::Winograd4;
  if (simd_level() == SimdLevel::AVX512) {
    const int64_t t4 = ((s.Ho + 3) / 4) * ((s.Wo + 3) / 4), t2 = ((s.Ho + 1) / 2) * ((s.Wo + 1) / 2);
    if (3 * t4 <= t2) return ConvAlgo::Winograd4;
  }
  return ConvAlgo::Winograd2;
}

// ---- im2col + GEMM

namespace {

thread_local Scratch t_cols;

// col (Cg*kH*kW, Ho*Wo) from one group of one image x (Cg, H, W)
template <typename T>
void im2col(T* col, const T* x, int64_t Cg, const Conv2dShape& s) {
  const int64_t HWo = s.Ho * s.Wo;
  for (int64_t c = 0; c < Cg; ++c)
    for (int64_t i = 0; i < s.kH; ++i)
      for (int64_t j = 0; j < s.kW; ++j) {
        T* row = col + ((c * s.kH + i) * s.kW + j) * HWo;
        const T* plane = x + c * s.H * s.W;
        for (int64_t oh = 0; oh < s.Ho; ++oh) {
          const int64_t h = oh * s.sh - s.ph + i * s.dh;
          T* out = row + oh * s.Wo;
          if (h < 0 || h >= s.H) {
            std::memset(out, 0, sizeof(T) * static_cast<size_t>(s.Wo));
            continue;
          }
          const T* in = plane + h * s.W;
          const int64_t off = j * s.dw - s.pw;
          if (s.sw == 1) {
            // stride 1: the row is a contiguous run of the input, zero-padded at either end
            const int64_t lo = off < 0 ? -off : 0;
            const int64_t hi = (s.W - off) < s.Wo ? (s.W - off) : s.Wo;
            if (hi <= lo) {
              std::memset(out, 0, sizeof(T) * static_cast<size_t>(s.Wo));
              continue;
            }
            for (int64_t ow = 0; ow < lo; ++ow) out[ow] = T(0);
            std::memcpy(out + lo, in + lo + off, sizeof(T) * static_cast<size_t>(hi - lo));
            for (int64_t ow = hi; ow < s.Wo; ++ow) out[ow] = T(0);
          } else {
            for (int64_t ow = 0; ow < s.Wo; ++ow) {
              const int64_t w = ow * s.sw + off;
              out[ow] = (w >= 0 && w < s.W) ? in[w] : T(0);
            }
          }
        }
      }
}

// x (Cg, H, W) += col2im(col): the adjoint of im2col
template <typename T>
void col2im_add(T* x, const T* col, int64_t Cg, const Conv2dShape& s) {
  const int64_t HWo = s.Ho * s.Wo;
  for (int64_t c = 0; c < Cg; ++c)
    for (int64_t i = 0; i < s.kH; ++i)
      for (int64_t j = 0; j < s.kW; ++j) {
        const T* row = col + ((c * s.kH + i) * s.kW + j) * HWo;
        T* plane = x + c * s.H * s.W;
        for (int64_t oh = 0; oh < s.Ho; ++oh) {
          const int64_t h = oh * s.sh - s.ph + i * s.dh;
          if (h < 0 || h >= s.H) continue;
          T* out = plane + h * s.W;
          const T* in = row + oh * s.Wo;
          const int64_t off = j * s.dw - s.pw;
          for (int64_t ow = 0; ow < s.Wo; ++ow) {
            const int64_t w = ow * s.sw + off;
            if (w >= 0 && w < s.W) out[w] += in[ow];
          }
        }
      }
}

// A 1x1, stride-1, unpadded convolution reads X directly as its own columns.
bool is_pointwise(const Conv2dShape& s) {
  return s.kH == 1 && s.kW == 1 && s.sh == 1 && s.sw == 1 && s.ph == 0 && s.pw == 0;
}

}  // namespace

namespace {

template <typename T>
void im2col_forward(T* Y, const T* X, const T* Wt, const T* b, const Conv2dShape& s,
                    const ConvEvalEpilogue* ep = nullptr) {
  // A few taps a channel (a first layer on 1-3 channels): the direct kernel, same bits, no columns
  if (conv2d_direct_forward<T>(Y, X, Wt, b, s, ep)) return;
  const int64_t G = s.groups, Cg = s.C / G, Kg = s.K / G;
  const int64_t HWo = s.Ho * s.Wo, ckk = Cg * s.kH * s.kW;
  // Sized (and checked) before the parallel region, so an impossible size fails on the caller.
  const size_t col_bytes = checked_bytes(checked_mul(ckk, HWo, "the im2col workspace"), sizeof(T),
                                         "the im2col workspace");
  parallel_for(s.N, 1, [&](int64_t n0, int64_t n1, int) {
    const bool direct = is_pointwise(s);
    T* col = direct ? nullptr : static_cast<T*>(t_cols.get(col_bytes));
    for (int64_t n = n0; n < n1; ++n) {
      T* y = Y + n * s.K * HWo;
      for (int64_t k = 0; k < s.K; ++k) {
        const T bias = b ? b[k] : T(0);
        for (int64_t p = 0; p < HWo; ++p) y[k * HWo + p] = bias;
      }
      for (int64_t g = 0; g < G; ++g) {
        const T* x = X + (n * s.C + g * Cg) * s.H * s.W;
        const T* cols = x;
        if (!direct) {
          im2col(col, x, Cg, s);
          cols = col;
        }
        // y_g (Kg x HWo) += W_g (Kg x ckk) @ cols (ckk x HWo)
        gemm_rowmajor<T>(false, false, Kg, HWo, ckk, T(1), Wt + g * Kg * ckk, ckk, cols, HWo, T(1),
                         y + g * Kg * HWo, HWo);
      }
      if (ep)  // the image's output, K x HWo, is still in cache
        for (int64_t k = 0; k < s.K; ++k)
          batchnorm_eval_row<T>(y + k * HWo, y + k * HWo, HWo, ep->scale[k], ep->shift[k], ep->relu);
    }
  });
}

// ---- backward-weights of few-tap convolutions by dot products (dw_dot.h)

// The largest ckk (taps per output channel) that takes the dot products: a 3x3 layer on
// up to three channels. Measured against the GEMM: see im2col_backward.
constexpr int64_t kDotMaxTaps = 27;

template <typename T>
dw_dot::DotFns<T> dot_fns() {
#if defined(NATVERK_HAVE_X86_KERNELS)
  switch (simd_level()) {
    case SimdLevel::AVX512: return dw_dot::avx512::dot_fns<T>();
    case SimdLevel::AVX2: return dw_dot::avx2::dot_fns<T>();
    default: break;
  }
#endif
  return dw_dot::generic::dot_fns<T>();
}

// One image of one group: part (its blocks of lane sums) += cols (ckk x HWo) . dY_g
// (Kg x HWo) along the whole vectors of pixels, tail (Kg x ckk) += the rest. Rows past
// Kg or ckk read zero_row; their sums are never read.
template <typename T>
void dot_image(const dw_dot::DotFns<T>& f, T* part, T* tail, const T* cols, const T* dy, const T* zero_row,
               int64_t ckk, int64_t Kg, int64_t HWo, int64_t nvec, int64_t p_tail) {
  const int64_t ntb = (ckk + f.tb - 1) / f.tb, blk = static_cast<int64_t>(f.kb) * f.tb * f.lanes;
  const T* dyr[16];  // f.kb and f.tb are at most 9 (dw_dot_*.cpp)
  const T* cr[16];
  for (int64_t k0 = 0, kb = 0; k0 < Kg; k0 += f.kb, ++kb) {
    for (int r = 0; r < f.kb; ++r) dyr[r] = k0 + r < Kg ? dy + (k0 + r) * HWo : zero_row;
    for (int64_t q0 = 0, tb = 0; q0 < ckk; q0 += f.tb, ++tb) {
      for (int t = 0; t < f.tb; ++t) cr[t] = q0 + t < ckk ? cols + (q0 + t) * HWo : zero_row;
      f.block(part + (kb * ntb + tb) * blk, cr, dyr, nvec);
    }
  }
  if (p_tail < HWo)
    for (int64_t k = 0; k < Kg; ++k)
      for (int64_t q = 0; q < ckk; ++q) {
        T acc = T(0);
        for (int64_t p = p_tail; p < HWo; ++p) acc += cols[q * HWo + p] * dy[k * HWo + p];
        tail[k * ckk + q] += acc;
      }
}

// dW_g (Kg x ckk) += the lane sums of part, lane by lane in order, + tail.
template <typename T>
void dot_finish(const dw_dot::DotFns<T>& f, T* dw, const T* part, const T* tail, int64_t ckk, int64_t Kg) {
  const int64_t ntb = (ckk + f.tb - 1) / f.tb, blk = static_cast<int64_t>(f.kb) * f.tb * f.lanes;
  for (int64_t k = 0; k < Kg; ++k)
    for (int64_t q = 0; q < ckk; ++q) {
      const T* lanes = part + ((k / f.kb) * ntb + q / f.tb) * blk + ((k % f.kb) * f.tb + q % f.tb) * f.lanes;
      T sum = T(0);
      for (int l = 0; l < f.lanes; ++l) sum += lanes[l];
      dw[k * ckk + q] += sum + tail[k * ckk + q];
    }
}

template <typename T>
void im2col_backward(T* dX, T* dW, const T* dY, const T* X, const T* Wt, const Conv2dShape& s) {
  const int64_t G = s.groups, Cg = s.C / G, Kg = s.K / G;
  const int64_t HWo = s.Ho * s.Wo, ckk = Cg * s.kH * s.kW;
  const int64_t wsize = s.K * ckk;  // the weight's size: an existing array, cannot overflow
  const size_t col_bytes = checked_bytes(checked_mul(ckk, HWo, "the im2col workspace"), sizeof(T),
                                         "the im2col workspace");
  const bool direct = is_pointwise(s);
  // For stride 1, dX is itself a forward convolution (seed 001 eq. 42): dY, padded by
  // p' = d (k - 1) - p, convolved with the 180-degree-rotated, channel-transposed kernels.
  // That GEMM has depth K*kH*kW instead of K, and needs no col2im scatter-add: measured
  // faster than W^T dY + col2im for every 3x3 layer we train from 8 input channels on.
  // Below that its m = C/groups fills too few of the micro-kernel's rows, and W^T dY
  // (m = C*kH*kW) + col2im wins: 3->64 @32, batch 64, 1 thread, dX 19 -> 5.2 ms.
  const bool dx_as_conv = dX && !direct && Cg >= 8 && s.sh == 1 && s.sw == 1 && s.ph <= s.dh * (s.kH - 1) &&
                          s.pw <= s.dw * (s.kW - 1);
  T* dX_scatter = dx_as_conv ? nullptr : dX;

  // dW: per-chunk partial sums over that chunk's images, added in chunk order
  // afterwards, so the result does not depend on thread timing.
  // With few taps per output channel (ckk = 9 for a first layer on one channel, 27 on
  // three) the GEMMs waste most of their tiles (dw_dot.h), so dW is taken as dot products
  // along the pixels instead. Batch 64, 1 thread, AVX-512, dW alone, 3 alternating runs:
  // 1->32 @28 0.95-0.98 -> 0.47 ms (it was dW^T = cols dY^T, packing dY^T for every
  // image); 3->64 @32 4.00-4.06 -> 3.70-3.76 ms (it was dW = dY cols^T).
  const bool dot_dw = dW && !direct && ckk <= kDotMaxTaps;
  const int chunks = plan_chunks(s.N, 1);
  std::vector<T> partial;
  if (dW && chunks > 1)
    partial.assign(static_cast<size_t>(checked_mul(wsize, chunks - 1, "the per-thread dW partial sums")), T(0));
  if (dW) std::memset(dW, 0, sizeof(T) * static_cast<size_t>(wsize));
  const dw_dot::DotFns<T> dot = dot_fns<T>();
  const int64_t nkb = (Kg + dot.kb - 1) / dot.kb, ntb = (ckk + dot.tb - 1) / dot.tb;
  const int64_t dot_block = static_cast<int64_t>(dot.kb) * dot.tb * dot.lanes;
  const int64_t nvec = HWo / dot.lanes, p_tail = nvec * dot.lanes;
  const int64_t part_size = dot_dw ? checked_mul(G * nkb * ntb, dot_block, "the dW lane sums") : 0;
  // the rows a block reads past the last channel or tap: zeros, their products discarded
  const std::vector<T> zero_row(dot_dw ? static_cast<size_t>(HWo) : 0, T(0));

  parallel_for_chunks(s.N, chunks, [&](int64_t n0, int64_t n1, int chunk) {
    T* dw_acc = !dW ? nullptr : (chunk == 0 ? dW : partial.data() + (chunk - 1) * wsize);
    T* col = direct ? nullptr : static_cast<T*>(t_cols.get(col_bytes));
    // dot_dw: the lane-wise sums of this chunk's images, block by block, and the pixels
    // past the last whole vector, summed at the end of the chunk
    std::vector<T> part, tail;
    if (dot_dw) {
      part.assign(static_cast<size_t>(part_size), T(0));
      tail.assign(static_cast<size_t>(wsize), T(0));
    }
    for (int64_t n = n0; n < n1; ++n) {
      const T* dy = dY + n * s.K * HWo;
      if (dX_scatter)
        std::memset(dX_scatter + n * s.C * s.H * s.W, 0, sizeof(T) * static_cast<size_t>(s.C * s.H * s.W));
      for (int64_t g = 0; g < G; ++g) {
        const T* dy_g = dy + g * Kg * HWo;
        const T* w_g = Wt + g * Kg * ckk;
        if (dw_acc) {
          const T* x = X + (n * s.C + g * Cg) * s.H * s.W;
          const T* cols = x;
          if (!direct) {
            im2col(col, x, Cg, s);
            cols = col;
          }
          if (dot_dw)
            dot_image(dot, part.data() + g * nkb * ntb * dot_block, tail.data() + g * Kg * ckk, cols, dy_g,
                      zero_row.data(), ckk, Kg, HWo, nvec, p_tail);
          else  // dW_g (Kg x ckk) += dY_g (Kg x HWo) @ cols^T (HWo x ckk)
            gemm_rowmajor<T>(false, true, Kg, ckk, HWo, T(1), dy_g, HWo, cols, HWo, T(1),
                             dw_acc + g * Kg * ckk, ckk);
        }
        if (dX_scatter) {
          T* dx = dX_scatter + (n * s.C + g * Cg) * s.H * s.W;
          if (direct) {
            // dX_g (Cg x HW) += W_g^T (Cg x Kg) @ dY_g (Kg x HW)
            gemm_rowmajor<T>(true, false, Cg, HWo, Kg, T(1), w_g, ckk, dy_g, HWo, T(1), dx, HWo);
          } else {
            // dcols (ckk x HWo) = W_g^T @ dY_g, then scatter-add back to the image
            gemm_rowmajor<T>(true, false, ckk, HWo, Kg, T(1), w_g, ckk, dy_g, HWo, T(0), col, HWo);
            col2im_add(dx, col, Cg, s);
          }
        }
      }
    }
    if (dot_dw)
      for (int64_t g = 0; g < G; ++g)
        dot_finish(dot, dw_acc + g * Kg * ckk, part.data() + g * nkb * ntb * dot_block, tail.data() + g * Kg * ckk,
                   ckk, Kg);
  });
  if (dx_as_conv) {
    // rotated[g*Cg + c, k, i, j] = W[g*Kg + k, c, kH-1-i, kW-1-j]: the weight of a convolution
    // from K channels back to C channels, with the same groups.
    std::vector<T> rotated(static_cast<size_t>(wsize));
    for (int64_t g = 0; g < G; ++g)
      for (int64_t k = 0; k < Kg; ++k)
        for (int64_t c = 0; c < Cg; ++c)
          for (int64_t i = 0; i < s.kH; ++i)
            for (int64_t j = 0; j < s.kW; ++j)
              rotated[static_cast<size_t>((((g * Cg + c) * Kg + k) * s.kH + i) * s.kW + j)] =
                  Wt[(((g * Kg + k) * Cg + c) * s.kH + (s.kH - 1 - i)) * s.kW + (s.kW - 1 - j)];
    const Conv2dShape t = make_conv2d_shape(s.N, s.K, s.Ho, s.Wo, s.C, Kg, s.kH, s.kW, 1, 1,
                                            s.dh * (s.kH - 1) - s.ph, s.dw * (s.kW - 1) - s.pw,
                                            s.dh, s.dw, G);
    im2col_forward<T>(dX, dY, rotated.data(), nullptr, t);
  }
  if (dW) {
    for (int c = 1; c < chunks; ++c) {
      const T* p = partial.data() + (c - 1) * wsize;
      for (int64_t i = 0; i < wsize; ++i) dW[i] += p[i];
    }
  }
}

}  // namespace

template <typename T>
void conv2d_forward(T* Y, const T* X, const T* Wt, const T* b, const Conv2dShape& s, const ConvEvalEpilogue* ep) {
  switch (conv2d_algorithm(s)) {
    case ConvAlgo::Winograd2: return winograd_forward<T, 2>(Y, X, Wt, b, s, ep);
    case ConvAlgo::Winograd4: return winograd_forward<T, 4>(Y, X, Wt, b, s, ep);
    default: return im2col_forward<T>(Y, X, Wt, b, s, ep);
  }
}

namespace {

// db[k] = sum over n and p of dY[n][k][p] (the bias gradient), for channels [k0, k1): each (n, k)
// row summed into eight double lanes, element p into lane p % 8, the lanes added pairwise at the
// end (lanes.h). One running sum was a 4-cycle add-latency chain an element (db took as long as dW
// on 3->64 @32). The rows are visited image by image, the block's channels in turn, i.e. in memory
// order: walking one channel through all N images instead reads rows 784 bytes long, N x K x 784
// apart (32->64 @14), each a cold start for the hardware prefetcher, and perf put 8.5 % of the
// MNIST CNN's training step there (Intel Xeon, AVX-512). Each channel's lanes see the same
// additions in the same order either way, at every SIMD level: the bits do not change.
template <typename T>
__attribute__((always_inline)) inline void bias_grad_channels(T* db, const T* dY, int64_t N, int64_t K,
                                                              int64_t S, int64_t k0, int64_t k1) {
  constexpr int64_t kBlock = 64;  // 64 channels' lanes, 4 KB, stay in L1
  for (int64_t b0 = k0; b0 < k1; b0 += kBlock) {
    const int64_t b1 = b0 + kBlock < k1 ? b0 + kBlock : k1;
    Lanes acc[kBlock];
    for (int64_t n = 0; n < N; ++n)
      for (int64_t k = b0; k < b1; ++k)
        accumulate(acc[k - b0], dY + (n * K + k) * S, S, [](auto v) NATVERK_INLINE_LAMBDA { return v; });
    for (int64_t k = b0; k < b1; ++k) db[k] = static_cast<T>(acc[k - b0].total());
  }
}

template <typename T>
using BiasGradFn = void (*)(T*, const T*, int64_t, int64_t, int64_t, int64_t, int64_t);
#define NATVERK_BIAS_GRAD_COPY(isa, attr)                                                                  \
  template <typename T>                                                                                    \
  attr void bias_grad_##isa(T* db, const T* dY, int64_t N, int64_t K, int64_t S, int64_t k0, int64_t k1) { \
    bias_grad_channels<T>(db, dY, N, K, S, k0, k1);                                                        \
  }
NATVERK_BIAS_GRAD_COPY(generic, )
#if defined(NATVERK_HAVE_X86_KERNELS)
NATVERK_BIAS_GRAD_COPY(avx2, __attribute__((target("avx2"))))
NATVERK_BIAS_GRAD_COPY(avx512, __attribute__((target("avx512f,avx512dq,avx512vl,avx512bw,avx2"))))
#endif
#undef NATVERK_BIAS_GRAD_COPY

template <typename T>
BiasGradFn<T> bias_grad_copy() {
#if defined(NATVERK_HAVE_X86_KERNELS)
  switch (simd_level()) {
    case SimdLevel::AVX512: return &bias_grad_avx512<T>;
    case SimdLevel::AVX2: return &bias_grad_avx2<T>;
    default: break;
  }
#endif
  return &bias_grad_generic<T>;
}

}  // namespace

template <typename T>
void conv2d_backward(T* dX, T* dW, T* db, const T* dY, const T* X, const T* Wt,
                     const Conv2dShape& s) {
  const int64_t HWo = s.Ho * s.Wo;
  switch (conv2d_algorithm(s)) {
    case ConvAlgo::Winograd2: winograd_backward<T, 2>(dX, dW, dY, X, Wt, s); break;
    case ConvAlgo::Winograd4: winograd_backward<T, 4>(dX, dW, dY, X, Wt, s); break;
    default: im2col_backward<T>(dX, dW, dY, X, Wt, s);
  }
  if (db) {
    auto fn = bias_grad_copy<T>();
    parallel_for(s.K, 1, [&](int64_t k0, int64_t k1, int) { fn(db, dY, s.N, s.K, HWo, k0, k1); });
  }
}

template void conv2d_forward<float>(float*, const float*, const float*, const float*, const Conv2dShape&,
                                    const ConvEvalEpilogue*);
template void conv2d_forward<double>(double*, const double*, const double*, const double*, const Conv2dShape&,
                                     const ConvEvalEpilogue*);
template void conv2d_backward<float>(float*, float*, float*, const float*, const float*, const float*,
                                     const Conv2dShape&);
template void conv2d_backward<double>(double*, double*, double*, const double*, const double*,
                                      const double*, const Conv2dShape&);

}  // namespace natverk
