// elementwise.h -- helpers shared by the elementwise kernel families.
#pragma once
#include <cstdint>

#include "common/parallel.h"

namespace natverk {

// Elementwise loops are memory-bound: split only when each thread gets at
// least this many elements, or the wake-up costs more than it saves.
constexpr int64_t kElementwiseGrain = 1 << 15;

// Accumulator type for reductions: float sums in double (PyTorch's opmath idea),
// so a float32 loss or norm is as accurate as its inputs allow.
template <typename T> struct Acc { using type = double; };

// f(begin, end) over [0, n) in parallel chunks.
template <typename F>
inline void parallel_elementwise(int64_t n, F&& f) {
  parallel_for(n, kElementwiseGrain, [&](int64_t b, int64_t e, int) { f(b, e); });
}

}  // namespace natverk
