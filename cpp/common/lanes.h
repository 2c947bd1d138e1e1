// lanes.h -- per-channel sums over (n, c) rows in eight interleaved double lanes: batch norm's
// statistics and gradients (batchnorm.cpp) and a convolution's bias gradient (conv2d.cpp).
//
// Header-only and always_inline: each file compiles its loops once per SIMD level (a
// target("avx2") / target("avx512f") copy of the caller), and these inline into each copy.
#pragma once
#include <cstdint>
#include <cstring>

namespace natverk {

// Batch norm's channel sums were its hot part, and one double accumulator made each a chain of
// dependent additions (4 cycles each: 1.6 ms for one 64 x 32 x 28 x 28 pass). They run
// as kLanes interleaved partial sums instead -- element s of each (n, c) row goes to lane s % kLanes
// -- added pairwise at the end: a fixed order, so the result is the same for any thread count.
constexpr int kLanes = 8;

// The eight lanes are two 4-wide GCC vectors, lanes 0-3 in lo and 4-7 in hi, and the loops below
// load, convert and add eight elements at a time in them. Left to itself, GCC vectorised a loop
// over eight scalar lanes only while it held one sum: with the two sums of the backward pass it
// spilled the 16 accumulators to the stack and converted one float at a time (perf annotate,
// Zen 3: batchnorm_backward at 0.24 elements a cycle, 1.9 ms for 64 x 32 x 28 x 28).
// Vector-extension arithmetic is element-wise IEEE arithmetic, so every SIMD level (two xmm
// halves at SSE2, one ymm at AVX2 and AVX-512) adds the same values in the same order as the
// scalar lanes did: the same bits as before, at every level.
// The lambdas that compute on v4d are always_inline, so each SIMD level's copy inlines its own
// and no v4d crosses a call: GCC's note that returning a 32-byte vector without AVX changes the
// ABI does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"
typedef double v4d __attribute__((vector_size(32)));
typedef float v4f __attribute__((vector_size(16)));
#define NATVERK_INLINE_LAMBDA __attribute__((always_inline))

struct Lanes {
  v4d lo = {0, 0, 0, 0}, hi = {0, 0, 0, 0};
  void add(int l, double v) {
    if (l < 4) {
      lo[l] += v;
    } else {
      hi[l - 4] += v;
    }
  }
  double total() const {
    return ((lo[0] + lo[1]) + (lo[2] + lo[3])) + ((hi[0] + hi[1]) + (hi[2] + hi[3]));
  }
};

// p[0..3] and p[4..7] as doubles (memcpy: p need not be aligned).
template <typename T>
__attribute__((always_inline)) inline void load8(const T* p, v4d& lo, v4d& hi) {
  if constexpr (sizeof(T) == sizeof(float)) {
    v4f a, b;
    std::memcpy(&a, p, sizeof a);
    std::memcpy(&b, p + 4, sizeof b);
    lo = __builtin_convertvector(a, v4d);
    hi = __builtin_convertvector(b, v4d);
  } else {
    std::memcpy(&lo, p, sizeof lo);
    std::memcpy(&hi, p + 4, sizeof hi);
  }
}

// acc += f(p[s]) for s < S, element s into lane s % kLanes. f is generic: it is called with a
// v4d of four elements in the vector loop and with a double in the tail, and computes the same
// element-wise expression in both. pf (optional): the row to prefetch alongside, S long, the
// next one the caller will read (batchnorm.cpp).
template <typename T, typename F>
__attribute__((always_inline)) inline void accumulate(Lanes& acc, const T* p, int64_t S, F f,
                                                      const T* pf = nullptr) {
  int64_t s = 0;
  for (; s + kLanes <= S; s += kLanes) {
    if (pf) __builtin_prefetch(pf + s);
    v4d lo, hi;
    load8(p + s, lo, hi);
    acc.lo += f(lo);
    acc.hi += f(hi);
  }
  for (int l = 0; s < S; ++s, ++l) acc.add(l, f(static_cast<double>(p[s])));
}

// a += fa(g[s], p[s]) and b += fb(g[s], p[s]) in one pass over two rows: each lane sees the
// same additions in the same order as two accumulate() calls would give it. pfg, pfp
// (optional, both or neither): the next two rows, prefetched alongside.
template <typename T, typename FA, typename FB>
__attribute__((always_inline)) inline void accumulate2(Lanes& a, FA fa, Lanes& b, FB fb, const T* g,
                                                       const T* p, int64_t S, const T* pfg = nullptr,
                                                       const T* pfp = nullptr) {
  int64_t s = 0;
  for (; s + kLanes <= S; s += kLanes) {
    if (pfg) __builtin_prefetch(pfg + s), __builtin_prefetch(pfp + s);
    v4d glo, ghi, plo, phi;
    load8(g + s, glo, ghi);
    load8(p + s, plo, phi);
    a.lo += fa(glo, plo);
    a.hi += fa(ghi, phi);
    b.lo += fb(glo, plo);
    b.hi += fb(ghi, phi);
  }
  for (int l = 0; s < S; ++s, ++l) {
    const double gs = g[s], ps = p[s];
    a.add(l, fa(gs, ps));
    b.add(l, fb(gs, ps));
  }
}


}  // namespace natverk
