// pool2d.cpp -- see pool2d.h for the definitions.
#include "pool2d/pool2d.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#if defined(NATVERK_HAVE_X86_KERNELS)
#include <immintrin.h>
#endif

#include "activations/activations.h"
#include "common/cpu_features.h"
#include "common/elementwise.h"
#include "common/parallel.h"
#include "common/shape.h"

namespace natverk {

Pool2dShape make_pool2d_shape(int64_t N, int64_t C, int64_t H, int64_t W, int64_t kH, int64_t kW,
                              int64_t sh, int64_t sw, int64_t ph, int64_t pw) {
  auto fail = [](const std::string& m) { throw std::invalid_argument(m); };
  if (N < 1 || C < 1 || H < 1 || W < 1) fail("input must be non-empty (N, C, H, W all >= 1)");
  if (kH < 1 || kW < 1) fail("kernel_size must be >= 1, got " + pair_str(kH, kW));
  if (sh < 1 || sw < 1) fail("stride must be >= 1, got " + pair_str(sh, sw));
  // ph > kH / 2, not 2 * ph > kH (the same for integers): 2 * ph overflowed for ph near 2^63,
  // wrapped negative, and let a padding of 2^63 - 1 through.
  if (ph < 0 || pw < 0 || ph > kH / 2 || pw > kW / 2)
    fail("padding must be between 0 and half the kernel size, got padding " + pair_str(ph, pw) +
         " for kernel_size " + pair_str(kH, kW));
  Pool2dShape s{N, C, H, W, kH, kW, sh, sw, ph, pw, 0, 0};
  std::tie(s.Ho, s.Wo) = conv_out_size(H, W, Window2d{kH, kW, sh, sw, ph, pw, 1, 1}, false);
  // The output and its argmax, (N, C, Ho, Wo) of 8-byte elements: past this check the
  // kernels' plain index arithmetic cannot overflow.
  checked_bytes(checked_numel({N, C, s.Ho, s.Wo}, "the output"), sizeof(int64_t), "the output");
  return s;
}

namespace {
inline int64_t grain_planes(int64_t plane) { return kElementwiseGrain / (plane > 0 ? plane : 1) + 1; }

// The part [lo, hi) of window offsets 0..k-1 that lands inside 0..n-1 for a window starting at
// `start`. The loops below run over it instead of testing every offset: kernel_size is a free
// integer (unlike a convolution's, it is no array's shape), and a window of 2^62 mostly padded
// positions must not take 2^62 iterations. |start| <= padded input size, so nothing overflows.
struct Span {
  int64_t lo, hi;
};
inline Span inside(int64_t start, int64_t k, int64_t n) {
  const int64_t lo = start < 0 ? -start : 0;
  const int64_t hi = n - start < k ? n - start : k;
  return {lo, hi};
}
}  // namespace

// One 2x2 window, the candidates in row-major window order: the first maximum wins, a NaN
// wins and stays. Selects, not branches: on real activations the winner is unpredictable, and a
// mispredicted branch per candidate cost more than the whole window.
template <typename T>
inline void maxpool_2x2_window(T* y, int64_t* am, const T* r0, const T* r1, int64_t w, int64_t base,
                               int64_t W) {
  int64_t best = base;
  T bv = r0[w];
  const T cand[3] = {r0[w + 1], r1[w], r1[w + 1]};
  const int64_t where[3] = {base + 1, base + W, base + W + 1};
  for (int q = 0; q < 3; ++q) {
    const T v = cand[q];
    const bool take = (v > bv) | ((v != v) & (bv == bv));  // bitwise: no short-circuit jumps
    best = take ? where[q] : best;
    bv = take ? v : bv;
  }
  *y = bv;
  *am = best;
}

#if defined(__SSE2__)
// Four float windows at once (SSE2 is in every x86-64 CPU, so no run-time dispatch): the even
// and odd columns of both rows are split into four candidate vectors and folded with the
// scalar rule above, lane by lane; q records which candidate won (0..3 in window order).
inline __m128 maxpool_2x2_fold_sse2(__m128 a_lo, __m128 a_hi, __m128 c_lo, __m128 c_hi, __m128i& q) {
  const __m128 cand[4] = {_mm_shuffle_ps(a_lo, a_hi, _MM_SHUFFLE(2, 0, 2, 0)),
                          _mm_shuffle_ps(a_lo, a_hi, _MM_SHUFFLE(3, 1, 3, 1)),
                          _mm_shuffle_ps(c_lo, c_hi, _MM_SHUFFLE(2, 0, 2, 0)),
                          _mm_shuffle_ps(c_lo, c_hi, _MM_SHUFFLE(3, 1, 3, 1))};
  __m128 bv = cand[0];
  q = _mm_setzero_si128();
  for (int k = 1; k < 4; ++k) {
    const __m128 v = cand[k];
    const __m128 take = _mm_or_ps(_mm_cmpgt_ps(v, bv), _mm_and_ps(_mm_cmpunord_ps(v, v), _mm_cmpord_ps(bv, bv)));
    bv = _mm_or_ps(_mm_and_ps(take, v), _mm_andnot_ps(take, bv));
    const __m128i t = _mm_castps_si128(take);
    q = _mm_or_si128(_mm_and_si128(t, _mm_set1_epi32(k)), _mm_andnot_si128(t, q));
  }
  return bv;
}

// The arg-max of windows ow .. ow + nw - 1 from the winners' candidate numbers.
inline void maxpool_2x2_argmax_sse2(int64_t* am, __m128i q, int64_t ow, int64_t nw, int64_t row_base, int64_t W) {
  alignas(16) int32_t qs[4];
  _mm_store_si128(reinterpret_cast<__m128i*>(qs), q);
  for (int64_t l = 0; l < nw; ++l) am[ow + l] = row_base + 2 * (ow + l) + (qs[l] & 1) + (qs[l] >> 1) * W;
}

// A ragged row end (Wo not a multiple of 4) redoes the row's last four windows in one more
// step instead of a scalar tail: the overlapped windows get the same values again. A row of
// fewer than four windows (3 in the Table 4 CNN's 7x7 -> 3x3 pool, where the scalar
// windows, compiled to branches, took as long as the 28x28 layer's pool) is one step whose
// loads stop at its 2 Wo columns; its lanes past Wo fold zeros and are not stored.
inline int64_t maxpool_2x2_row_sse2(float* y, int64_t* am, const float* r0, const float* r1,
                                    int64_t Wo, int64_t row_base, int64_t W) {
  __m128i q;
  if (Wo < 4) {
    const __m128 z = _mm_setzero_ps();
    auto lo = [&](const float* p) { return Wo >= 2 ? _mm_loadu_ps(p) : _mm_loadl_pi(z, reinterpret_cast<const __m64*>(p)); };
    auto hi = [&](const float* p) { return Wo == 3 ? _mm_loadl_pi(z, reinterpret_cast<const __m64*>(p + 4)) : z; };
    const __m128 bv = maxpool_2x2_fold_sse2(lo(r0), hi(r0), lo(r1), hi(r1), q);
    alignas(16) float ys[4];
    _mm_store_ps(ys, bv);
    for (int64_t l = 0; l < Wo; ++l) y[l] = ys[l];
    maxpool_2x2_argmax_sse2(am, q, 0, Wo, row_base, W);
    return Wo;
  }
  for (int64_t step = 0, ow = 0; step < (Wo + 3) / 4; ++step, ow = std::min(ow + 4, Wo - 4)) {
    const float* a = r0 + 2 * ow;
    const float* c = r1 + 2 * ow;
    const __m128 bv = maxpool_2x2_fold_sse2(_mm_loadu_ps(a), _mm_loadu_ps(a + 4), _mm_loadu_ps(c), _mm_loadu_ps(c + 4), q);
    _mm_storeu_ps(y + ow, bv);
    maxpool_2x2_argmax_sse2(am, q, ow, 4, row_base, W);
  }
  return Wo;
}
#endif

#if defined(NATVERK_HAVE_X86_KERNELS)
// Sixteen float windows at once under AVX-512, the same fold as the SSE2 step above with
// mask registers, and the arg-max computed in 64-bit lanes. A row's last step takes its
// ragged rest under masks, so rows shorter than 16 windows (14 and 7 in the MNIST CNN, where
// the SSE2 and scalar steps made 2x2 max-pool 6 % of a training step) are one step.
// Masked-off lanes are neither read nor written.
__attribute__((target("avx512f,avx512dq,avx512vl,avx512bw"))) int64_t maxpool_2x2_row_avx512(
    float* y, int64_t* am, const float* r0, const float* r1, int64_t Wo, int64_t row_base, int64_t W) {
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
  const __m512i two_l = _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14);
  const __m512i Wv = _mm512_set1_epi64(W);
  for (int64_t ow = 0; ow < Wo; ow += 16) {
    const int64_t nw = std::min<int64_t>(16, Wo - ow);
    const __mmask16 out = static_cast<__mmask16>((1u << nw) - 1);
    // the 2 nw input columns of both rows: lanes [0, 16) and [16, 32) of each
    const int64_t lo_n = std::min<int64_t>(16, 2 * nw), hi_n = 2 * nw - lo_n;
    const __mmask16 lo = static_cast<__mmask16>((1u << lo_n) - 1), hi = static_cast<__mmask16>((1u << hi_n) - 1);
    const float* a = r0 + 2 * ow;
    const float* c = r1 + 2 * ow;
    const __m512 a_lo = _mm512_maskz_loadu_ps(lo, a), a_hi = _mm512_maskz_loadu_ps(hi, a + 16);
    const __m512 c_lo = _mm512_maskz_loadu_ps(lo, c), c_hi = _mm512_maskz_loadu_ps(hi, c + 16);
    const __m512 cand[4] = {_mm512_permutex2var_ps(a_lo, even, a_hi), _mm512_permutex2var_ps(a_lo, odd, a_hi),
                            _mm512_permutex2var_ps(c_lo, even, c_hi), _mm512_permutex2var_ps(c_lo, odd, c_hi)};
    __m512 bv = cand[0];
    __m512i q = _mm512_setzero_si512();
    for (int k = 1; k < 4; ++k) {
      const __m512 v = cand[k];
      // v > bv, or v is NaN and bv is not: the scalar rule's take
      const __mmask16 take = _mm512_cmp_ps_mask(v, bv, _CMP_GT_OQ) |
                             (_mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q) & _mm512_cmp_ps_mask(bv, bv, _CMP_ORD_Q));
      bv = _mm512_mask_mov_ps(bv, take, v);
      q = _mm512_mask_mov_epi32(q, take, _mm512_set1_epi32(k));
    }
    _mm512_mask_storeu_ps(y + ow, out, bv);
    // am = row_base + 2 (ow + l) + (q & 1) + (q >> 1) W, eight lanes at a time
    const __m512i base = _mm512_add_epi64(_mm512_set1_epi64(row_base + 2 * ow), two_l);
    for (int h = 0; h < 2; ++h) {
      const __m512i qh = _mm512_cvtepi32_epi64(h ? _mm512_extracti64x4_epi64(q, 1) : _mm512_castsi512_si256(q));
      const __m512i col = _mm512_and_si512(qh, _mm512_set1_epi64(1));
      const __m512i row = _mm512_mullo_epi64(_mm512_srli_epi64(qh, 1), Wv);
      const __m512i idx = _mm512_add_epi64(_mm512_add_epi64(base, _mm512_set1_epi64(16 * h)), _mm512_add_epi64(col, row));
      _mm512_mask_storeu_epi64(am + ow + 8 * h, static_cast<__mmask8>(out >> (8 * h)), idx);
    }
  }
  return Wo;
}
#endif

#if defined(NATVERK_HAVE_X86_KERNELS)
// The even and odd elements of p[0..16), for maxpool_2x2_row_avx2.
__attribute__((target("avx2"), always_inline)) inline void maxpool_split_avx2(const float* p, __m256& ev, __m256& od) {
  const __m256 a = _mm256_loadu_ps(p), b = _mm256_loadu_ps(p + 8);
  // in-lane: [a0 a2 b0 b2 | a4 a6 b4 b6]; 64-bit pairs (0, 2, 1, 3): a0 a2 a4 a6 b0 b2 b4 b6
  ev = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0))), 0xD8));
  od = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1))), 0xD8));
}

// Eight float windows at once under AVX2, the same fold as the SSE2 step: each row's 16
// inputs split into even and odd columns (an in-lane shuffle, then a cross-lane
// permutation of 64-bit pairs), the arg-max in 64-bit lanes. A ragged row end redoes the
// row's last eight windows (same values again), as the SSE2 step does; rows of fewer than
// eight windows return 0 and take the SSE2 steps (no vmaskmov: microcoded on AMD Zen).
// (64, 32, 28, 28) -> 14 x 14: 1.12 -> 0.70 ms; (64, 64, 32, 32): 3.5 -> 1.7 ms (Zen 3, 1
// thread, with the output's allocation).
__attribute__((target("avx2"))) int64_t maxpool_2x2_row_avx2(float* y, int64_t* am, const float* r0,
                                                             const float* r1, int64_t Wo, int64_t row_base,
                                                             int64_t W) {
  if (Wo < 8) return 0;
  const __m256i one = _mm256_set1_epi64x(1), Wv = _mm256_set1_epi64x(W);
  const __m256i two_l = _mm256_setr_epi64x(0, 2, 4, 6);
  for (int64_t step = 0, ow = 0; step < (Wo + 7) / 8; ++step, ow = std::min(ow + 8, Wo - 8)) {
    __m256 cand[4];
    maxpool_split_avx2(r0 + 2 * ow, cand[0], cand[1]);
    maxpool_split_avx2(r1 + 2 * ow, cand[2], cand[3]);
    __m256 bv = cand[0];
    __m256i q = _mm256_setzero_si256();
    for (int k = 1; k < 4; ++k) {
      const __m256 v = cand[k];
      // v > bv, or v is NaN and bv is not: the scalar rule's take
      const __m256 take = _mm256_or_ps(_mm256_cmp_ps(v, bv, _CMP_GT_OQ),
                                       _mm256_and_ps(_mm256_cmp_ps(v, v, _CMP_UNORD_Q), _mm256_cmp_ps(bv, bv, _CMP_ORD_Q)));
      bv = _mm256_blendv_ps(bv, v, take);
      q = _mm256_blendv_epi8(q, _mm256_set1_epi32(k), _mm256_castps_si256(take));
    }
    _mm256_storeu_ps(y + ow, bv);
    // am = row_base + 2 (ow + l) + (q & 1) + (q >> 1) W, four lanes at a time
    const __m256i base = _mm256_add_epi64(_mm256_set1_epi64x(row_base + 2 * ow), two_l);
    for (int h = 0; h < 2; ++h) {
      const __m256i qh = _mm256_cvtepi32_epi64(h ? _mm256_extracti128_si256(q, 1) : _mm256_castsi256_si128(q));
      const __m256i col = _mm256_and_si256(qh, one);
      const __m256i row = _mm256_and_si256(_mm256_sub_epi64(_mm256_setzero_si256(), _mm256_srli_epi64(qh, 1)), Wv);
      const __m256i idx = _mm256_add_epi64(_mm256_add_epi64(base, _mm256_set1_epi64x(8 * h)), _mm256_add_epi64(col, row));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(am + ow + 4 * h), idx);
    }
  }
  return Wo;
}
#endif

// The common 2x2 / stride-2 / unpadded window (every VGG-style network): no bounds checks,
// four loads per output; float runs four windows per SSE2 step, eight per AVX2 step or
// sixteen per AVX-512 step.
// Same tie and NaN rules as the general loop below.
template <typename T>
inline void maxpool_2x2_plane(T* y, int64_t* am, const T* x, const Pool2dShape& s) {
#if defined(NATVERK_HAVE_X86_KERNELS)
  const bool avx512 = std::is_same_v<T, float> && simd_level() == SimdLevel::AVX512;
  const bool avx2 = std::is_same_v<T, float> && simd_level() == SimdLevel::AVX2;
#endif
  for (int64_t oh = 0; oh < s.Ho; ++oh) {
    const T* r0 = x + 2 * oh * s.W;
    const T* r1 = r0 + s.W;
    T* yrow = y + oh * s.Wo;
    int64_t* amrow = am + oh * s.Wo;
    const int64_t row_base = 2 * oh * s.W;
    int64_t ow = 0;
#if defined(NATVERK_HAVE_X86_KERNELS)
    if constexpr (std::is_same_v<T, float>) {
      if (avx512)
        ow = maxpool_2x2_row_avx512(yrow, amrow, r0, r1, s.Wo, row_base, s.W);
      else if (avx2)
        ow = maxpool_2x2_row_avx2(yrow, amrow, r0, r1, s.Wo, row_base, s.W);
    }
#endif
#if defined(__SSE2__)
    if constexpr (std::is_same_v<T, float>)
      if (ow == 0) ow = maxpool_2x2_row_sse2(yrow, amrow, r0, r1, s.Wo, row_base, s.W);
#endif
    for (; ow < s.Wo; ++ow) maxpool_2x2_window(yrow + ow, amrow + ow, r0, r1, 2 * ow, row_base + 2 * ow, s.W);
  }
}

template <typename T>
void maxpool2d_forward(T* Y, int64_t* argmax, const T* X, const Pool2dShape& s) {
  const int64_t planes = s.N * s.C;
  const bool two_by_two = s.kH == 2 && s.kW == 2 && s.sh == 2 && s.sw == 2 && s.ph == 0 && s.pw == 0;
  parallel_for(planes, grain_planes(s.H * s.W), [&](int64_t p0, int64_t p1, int) {
    if (two_by_two) {
      for (int64_t p = p0; p < p1; ++p)
        maxpool_2x2_plane(Y + p * s.Ho * s.Wo, argmax + p * s.Ho * s.Wo, X + p * s.H * s.W, s);
      return;
    }
    for (int64_t p = p0; p < p1; ++p) {
      const T* x = X + p * s.H * s.W;
      T* y = Y + p * s.Ho * s.Wo;
      int64_t* am = argmax + p * s.Ho * s.Wo;
      for (int64_t oh = 0; oh < s.Ho; ++oh)
        for (int64_t ow = 0; ow < s.Wo; ++ow) {
          const int64_t h0 = oh * s.sh - s.ph, w0 = ow * s.sw - s.pw;
          const Span si = inside(h0, s.kH, s.H), sj = inside(w0, s.kW, s.W);
          int64_t best = -1;
          T bv = T(0);
          for (int64_t i = si.lo; i < si.hi; ++i) {
            const int64_t h = h0 + i;
            for (int64_t j = sj.lo; j < sj.hi; ++j) {
              const int64_t w = w0 + j;
              const T v = x[h * s.W + w];
              // first maximum wins; a NaN wins and stays (v != v)
              if (best < 0 || v > bv || (v != v && bv == bv)) {
                best = h * s.W + w;
                bv = v;
              }
            }
          }
          y[oh * s.Wo + ow] = bv;
          am[oh * s.Wo + ow] = best;
        }
    }
  });
}

// ---- max-pool backward. dX is dY routed to each window's arg-max on a zeroed plane (the
// general loop below: memset, then dx[a] += g). With relu_out (the pooled output after a ReLU,
// plan.cpp's fuse_relu_maxpool) g is first masked to relu_out > 0 ? dy : 0, the ReLU's backward
// select (activations.cpp), so the two passes are one.
//
// The 2x2 / stride-2 / unpadded float window, at least 8 windows a row, under AVX2 or AVX-512
// writes each window's four positions directly instead: 0 + g at the winner (the general
// loop's sum, so -0 arrives as +0 there too) and +0 at the other three, plus zeros for a last
// row or column that no window covers. Same bits, one pass over dX instead of a memset and a
// scatter. Windows do not overlap, so every position is written once. An arg-max outside its
// own window (possible only for an argmax array that maxpool2d_forward did not write) makes the
// plane fall back to the general loop, which scatters it wherever it points inside the plane,
// as before. Rows of fewer than 8 windows keep the general loop: one vector step of a few
// windows cost more than the memset and the scatter (64 x 64 x 14 x 14: 0.24 -> 0.50 ms, Intel
// Xeon, 1 thread).
constexpr int64_t kPoolBackwardMaskChunk = 256;

#if defined(NATVERK_HAVE_X86_KERNELS)
// Sixteen windows a step: d = argmax - (the window's top-left). Unsigned compares give the
// window's lower row, r = (d - W) < 2, and with d' = d - (r ? W : 0) the column, d' == 1, and
// the check that d lies in the window at all, d' < 2 (eight 64-bit lanes a compare). Each of
// the four positions' values is v masked in; the even and odd columns are interleaved into the
// two rows' 32 positions. A ragged row end runs under masks.
__attribute__((target("avx512f,avx512dq,avx512vl,avx512bw"))) bool maxpool_2x2_plane_backward_avx512(
    float* dx, const float* dy, const int64_t* am, const float* relu_out, const Pool2dShape& s) {
  const __m512i lo_idx = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const __m512i hi_idx = _mm512_add_epi32(lo_idx, _mm512_set1_epi32(8));
  const __m512i two_l = _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14);
  const __m512i one = _mm512_set1_epi64(1), two = _mm512_set1_epi64(2), Wv = _mm512_set1_epi64(s.W);
  for (int64_t oh = 0; oh < s.Ho; ++oh) {
    float* d0 = dx + 2 * oh * s.W;
    float* d1 = d0 + s.W;
    const int64_t o = oh * s.Wo;
    for (int64_t ow = 0; ow < s.Wo; ow += 16) {
      const int64_t nw = std::min<int64_t>(16, s.Wo - ow);
      const __mmask16 out = static_cast<__mmask16>((1u << nw) - 1);
      __m512 g = _mm512_maskz_loadu_ps(out, dy + o + ow);
      if (relu_out) {
        const __m512 r = _mm512_maskz_loadu_ps(out, relu_out + o + ow);
        g = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(r, _mm512_setzero_ps(), _CMP_GT_OQ), g);
      }
      const __m512 v = _mm512_add_ps(_mm512_setzero_ps(), g);
      __mmask8 low[2], col[2], in[2];
      for (int h = 0; h < 2; ++h) {
        const __mmask8 part = static_cast<__mmask8>(out >> (8 * h));
        const __m512i base = _mm512_add_epi64(_mm512_set1_epi64(2 * oh * s.W + 2 * (ow + 8 * h)), two_l);
        __m512i d = _mm512_sub_epi64(_mm512_maskz_loadu_epi64(part, am + o + ow + 8 * h), base);
        low[h] = _mm512_cmplt_epu64_mask(_mm512_sub_epi64(d, Wv), two);
        d = _mm512_mask_sub_epi64(d, low[h], d, Wv);
        in[h] = _mm512_mask_cmplt_epu64_mask(part, d, two);
        col[h] = _mm512_cmpeq_epi64_mask(d, one);
      }
      const __mmask16 inside = _mm512_kunpackb(in[1], in[0]);
      if (inside != out) return false;
      const __mmask16 lower = _mm512_kunpackb(low[1], low[0]), right = _mm512_kunpackb(col[1], col[0]);
      const __mmask16 pick[4] = {static_cast<__mmask16>(inside & ~lower & ~right), static_cast<__mmask16>(inside & ~lower & right),
                                 static_cast<__mmask16>(inside & lower & ~right), static_cast<__mmask16>(inside & lower & right)};
      const int64_t lo_n = std::min<int64_t>(16, 2 * nw), hi_n = 2 * nw - lo_n;
      const __mmask16 lo = static_cast<__mmask16>((1u << lo_n) - 1), hi = static_cast<__mmask16>((1u << hi_n) - 1);
      float* rows[2] = {d0 + 2 * ow, d1 + 2 * ow};
      for (int r = 0; r < 2; ++r) {
        const __m512 even = _mm512_maskz_mov_ps(pick[2 * r], v), odd = _mm512_maskz_mov_ps(pick[2 * r + 1], v);
        _mm512_mask_storeu_ps(rows[r], lo, _mm512_permutex2var_ps(even, lo_idx, odd));
        if (hi) _mm512_mask_storeu_ps(rows[r] + 16, hi, _mm512_permutex2var_ps(even, hi_idx, odd));
      }
    }
  }
  return true;
}

// Eight windows a step under AVX2, the same test with the compares in 64-bit lanes, their
// masks narrowed to 32-bit lanes (all-ones or zero, so the low halves), the values and-ed in. A
// ragged row end redoes the row's last eight windows (the same values again).
__attribute__((target("avx2"))) bool maxpool_2x2_plane_backward_avx2(float* dx, const float* dy, const int64_t* am,
                                                                     const float* relu_out, const Pool2dShape& s) {
  // unsigned x < 2 as signed compares: (x ^ sign) < (2 ^ sign)
  const __m256i sign = _mm256_set1_epi64x(INT64_MIN), two_s = _mm256_set1_epi64x(INT64_MIN + 2);
  const __m256i one = _mm256_set1_epi64x(1), Wv = _mm256_set1_epi64x(s.W);
  const __m256i two_l = _mm256_setr_epi64x(0, 2, 4, 6), low_halves = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6);
  auto below_two = [&](__m256i x) __attribute__((target("avx2"))) {
    return _mm256_cmpgt_epi64(two_s, _mm256_xor_si256(x, sign));
  };
  auto narrow = [&](__m256i m0, __m256i m1) __attribute__((target("avx2"))) {
    return _mm256_castsi256_ps(_mm256_blend_epi32(_mm256_permutevar8x32_epi32(m0, low_halves),
                                                  _mm256_permutevar8x32_epi32(m1, low_halves), 0xF0));
  };
  for (int64_t oh = 0; oh < s.Ho; ++oh) {
    float* d0 = dx + 2 * oh * s.W;
    float* d1 = d0 + s.W;
    const int64_t o = oh * s.Wo;
    for (int64_t step = 0, ow = 0; step < (s.Wo + 7) / 8; ++step, ow = std::min(ow + 8, s.Wo - 8)) {
      __m256 g = _mm256_loadu_ps(dy + o + ow);
      if (relu_out) g = _mm256_and_ps(_mm256_cmp_ps(_mm256_loadu_ps(relu_out + o + ow), _mm256_setzero_ps(), _CMP_GT_OQ), g);
      const __m256 v = _mm256_add_ps(_mm256_setzero_ps(), g);
      __m256i low[2], col[2];
      for (int h = 0; h < 2; ++h) {
        const __m256i base = _mm256_add_epi64(_mm256_set1_epi64x(2 * oh * s.W + 2 * (ow + 4 * h)), two_l);
        __m256i d = _mm256_sub_epi64(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(am + o + ow + 4 * h)), base);
        low[h] = below_two(_mm256_sub_epi64(d, Wv));
        d = _mm256_sub_epi64(d, _mm256_and_si256(low[h], Wv));
        if (_mm256_movemask_pd(_mm256_castsi256_pd(below_two(d))) != 0xF) return false;
        col[h] = _mm256_cmpeq_epi64(d, one);
      }
      const __m256 lower = narrow(low[0], low[1]), right = narrow(col[0], col[1]);
      const __m256 top_v = _mm256_andnot_ps(lower, v), low_v = _mm256_and_ps(lower, v);
      const __m256 pick[4] = {_mm256_andnot_ps(right, top_v), _mm256_and_ps(right, top_v), _mm256_andnot_ps(right, low_v),
                              _mm256_and_ps(right, low_v)};
      float* rows[2] = {d0 + 2 * ow, d1 + 2 * ow};
      for (int r = 0; r < 2; ++r) {
        // [e0 o0 e1 o1 | e4 o4 e5 o5] and [e2 o2 e3 o3 | e6 o6 e7 o7] -> columns 0..7 and 8..15
        const __m256 a = _mm256_unpacklo_ps(pick[2 * r], pick[2 * r + 1]), b = _mm256_unpackhi_ps(pick[2 * r], pick[2 * r + 1]);
        _mm256_storeu_ps(rows[r], _mm256_permute2f128_ps(a, b, 0x20));
        _mm256_storeu_ps(rows[r] + 8, _mm256_permute2f128_ps(a, b, 0x31));
      }
    }
  }
  return true;
}
#endif

// One plane through the direct-write 2x2 path where it applies; false where it does not, or
// (part of the plane written) when an arg-max lies outside its window.
template <typename T>
bool maxpool_2x2_plane_backward(T* dx, const T* dy, const int64_t* am, const T* relu_out, const Pool2dShape& s) {
  bool done = false;
#if defined(NATVERK_HAVE_X86_KERNELS)
  if constexpr (std::is_same_v<T, float>) {
    if (s.Wo >= 8 && simd_level() == SimdLevel::AVX512)
      done = maxpool_2x2_plane_backward_avx512(dx, dy, am, relu_out, s);
    else if (s.Wo >= 8 && simd_level() == SimdLevel::AVX2)
      done = maxpool_2x2_plane_backward_avx2(dx, dy, am, relu_out, s);
  }
#endif
  if (!done) return false;
  // what no window covers: odd W's last column, odd H's last row
  if (2 * s.Wo < s.W)
    for (int64_t h = 0; h < 2 * s.Ho; ++h) dx[h * s.W + s.W - 1] = T(0);
  if (2 * s.Ho < s.H) std::memset(dx + 2 * s.Ho * s.W, 0, sizeof(T) * static_cast<size_t>((s.H - 2 * s.Ho) * s.W));
  return true;
}

template <typename T>
bool maxpool2d_backward(T* dX, const T* dY, const int64_t* argmax, const Pool2dShape& s, const T* relu_out) {
  const int64_t planes = s.N * s.C;
  const uint64_t plane = static_cast<uint64_t>(s.H * s.W);
  const int64_t outs = s.Ho * s.Wo;
  const bool two_by_two = s.kH == 2 && s.kW == 2 && s.sh == 2 && s.sw == 2 && s.ph == 0 && s.pw == 0;
  std::atomic<bool> all_inside{true};
  parallel_for(planes, grain_planes(s.H * s.W), [&](int64_t p0, int64_t p1, int) {
    bool inside = true;
    T masked[kPoolBackwardMaskChunk];
    for (int64_t p = p0; p < p1; ++p) {
      T* dx = dX + p * s.H * s.W;
      const T* dy = dY + p * outs;
      const int64_t* am = argmax + p * outs;
      const T* ry = relu_out ? relu_out + p * outs : nullptr;
      if (two_by_two && maxpool_2x2_plane_backward(dx, dy, am, ry, s)) continue;
      std::memset(dx, 0, sizeof(T) * static_cast<size_t>(s.H * s.W));
      for (int64_t c0 = 0; c0 < outs; c0 += kPoolBackwardMaskChunk) {
        const int64_t n = std::min(kPoolBackwardMaskChunk, outs - c0);
        const T* g = dy + c0;
        if (ry) {
          // the ReLU's mask in its own loop before the scatter: written inside the scatter,
          // the masked scatter took 0.39-0.49 ms on 64 x 64 x 14 x 14 against 0.30 for the
          // plain one (Intel Xeon, 1 thread)
          relu_backward_serial(masked, g, ry + c0, n);
          g = masked;
        }
        for (int64_t i = 0; i < n; ++i) {
          // checked here, in the parallel pass, rather than by a serial scan before it: an
          // index from outside (a hostile or stale argmax) must never write out of bounds
          const uint64_t a = static_cast<uint64_t>(am[c0 + i]);  // a negative index wraps to huge
          if (a >= plane) {
            inside = false;
            continue;
          }
          dx[a] += g[i];
        }
      }
    }
    if (!inside) all_inside.store(false, std::memory_order_relaxed);
  });
  return all_inside.load();
}

template <typename T>
void avgpool2d_forward(T* Y, const T* X, const Pool2dShape& s) {
  const int64_t planes = s.N * s.C;
  // kH * kW in double: pooling kernel sizes are free integers and the int64 product can
  // overflow; exact (so unchanged) for every product below 2^53.
  const T inv = T(1) / static_cast<T>(static_cast<double>(s.kH) * static_cast<double>(s.kW));
  parallel_for(planes, grain_planes(s.H * s.W), [&](int64_t p0, int64_t p1, int) {
    for (int64_t p = p0; p < p1; ++p) {
      const T* x = X + p * s.H * s.W;
      T* y = Y + p * s.Ho * s.Wo;
      for (int64_t oh = 0; oh < s.Ho; ++oh)
        for (int64_t ow = 0; ow < s.Wo; ++ow) {
          const int64_t h0 = oh * s.sh - s.ph, w0 = ow * s.sw - s.pw;
          const Span si = inside(h0, s.kH, s.H), sj = inside(w0, s.kW, s.W);
          T acc = T(0);
          for (int64_t i = si.lo; i < si.hi; ++i)
            for (int64_t j = sj.lo; j < sj.hi; ++j) acc += x[(h0 + i) * s.W + (w0 + j)];
          y[oh * s.Wo + ow] = acc * inv;
        }
    }
  });
}

template <typename T>
void avgpool2d_backward(T* dX, const T* dY, const Pool2dShape& s) {
  const int64_t planes = s.N * s.C;
  // kH * kW in double: pooling kernel sizes are free integers and the int64 product can
  // overflow; exact (so unchanged) for every product below 2^53.
  const T inv = T(1) / static_cast<T>(static_cast<double>(s.kH) * static_cast<double>(s.kW));
  parallel_for(planes, grain_planes(s.H * s.W), [&](int64_t p0, int64_t p1, int) {
    for (int64_t p = p0; p < p1; ++p) {
      T* dx = dX + p * s.H * s.W;
      std::memset(dx, 0, sizeof(T) * static_cast<size_t>(s.H * s.W));
      const T* dy = dY + p * s.Ho * s.Wo;
      for (int64_t oh = 0; oh < s.Ho; ++oh)
        for (int64_t ow = 0; ow < s.Wo; ++ow) {
          const T g = dy[oh * s.Wo + ow] * inv;
          const int64_t h0 = oh * s.sh - s.ph, w0 = ow * s.sw - s.pw;
          const Span si = inside(h0, s.kH, s.H), sj = inside(w0, s.kW, s.W);
          for (int64_t i = si.lo; i < si.hi; ++i)
            for (int64_t j = sj.lo; j < sj.hi; ++j) dx[(h0 + i) * s.W + (w0 + j)] += g;
        }
    }
  });
}

template <typename T>
void global_avgpool_forward(T* Y, const T* X, int64_t N, int64_t C, int64_t HW) {
  parallel_for(N * C, grain_planes(HW), [&](int64_t p0, int64_t p1, int) {
    for (int64_t p = p0; p < p1; ++p) {
      typename Acc<T>::type acc = 0;
      const T* x = X + p * HW;
      for (int64_t i = 0; i < HW; ++i) acc += x[i];
      Y[p] = static_cast<T>(acc / static_cast<double>(HW));
    }
  });
}

template <typename T>
void global_avgpool_backward(T* dX, const T* dY, int64_t N, int64_t C, int64_t HW) {
  parallel_for(N * C, grain_planes(HW), [&](int64_t p0, int64_t p1, int) {
    for (int64_t p = p0; p < p1; ++p) {
      const T g = static_cast<T>(static_cast<double>(dY[p]) / static_cast<double>(HW));
      T* dx = dX + p * HW;
      for (int64_t i = 0; i < HW; ++i) dx[i] = g;
    }
  });
}

#define NATVERK_INSTANTIATE(T)                                                            \
  template void maxpool2d_forward<T>(T*, int64_t*, const T*, const Pool2dShape&);        \
  template bool maxpool2d_backward<T>(T*, const T*, const int64_t*, const Pool2dShape&, const T*); \
  template void avgpool2d_forward<T>(T*, const T*, const Pool2dShape&);                  \
  template void avgpool2d_backward<T>(T*, const T*, const Pool2dShape&);                 \
  template void global_avgpool_forward<T>(T*, const T*, int64_t, int64_t, int64_t);      \
  template void global_avgpool_backward<T>(T*, const T*, int64_t, int64_t, int64_t);
NATVERK_INSTANTIATE(float)
NATVERK_INSTANTIATE(double)
#undef NATVERK_INSTANTIATE

}  // namespace natverk
