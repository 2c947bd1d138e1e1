// parallel.h -- the one thread pool every natverk kernel shares.
//
// Why our own pool and not OpenMP: the thread count must be settable at run
// time from Python (natverk.set_num_threads / NATVERK_NUM_THREADS) for every
// caller thread alike, work must be split deterministically (a kernel's result
// may not depend on which thread ran which chunk), and we must never fight
// NumPy's or PyTorch's pools: ours polls for at most 200 us after a region
// (the gap between the regions of one training step; NATVERK_SPIN_US) and then
// sleeps on a condition variable, instead of spinning.
//
// Contract: parallel_for(n, grain, fn, ctx) calls fn(ctx, begin, end, chunk)
// over disjoint [begin, end) ranges covering [0, n). Chunks are contiguous,
// at most num_threads() of them, each at least `grain` long (except when
// n < grain), so the split depends only on (n, grain, num_threads()).
// A nested call, or a call while another thread is using the pool, runs
// serially on the caller. The first exception thrown by fn is rethrown on
// the calling thread after every chunk has finished.
#pragma once
#include <cstdint>
#include <type_traits>

namespace natverk {

using RangeFn = void (*)(void* ctx, int64_t begin, int64_t end, int chunk);

int num_threads();
void set_num_threads(int n);  // n >= 1
int hardware_threads();

// Number of chunks parallel_for(n, grain, ...) will use.
int plan_chunks(int64_t n, int64_t grain);

void parallel_for(int64_t n, int64_t grain, RangeFn fn, void* ctx);

// Convenience wrapper for lambdas: f(begin, end, chunk).
template <typename F>
inline void parallel_for(int64_t n, int64_t grain, F&& f) {
  using Fn = typename std::remove_reference<F>::type;
  parallel_for(
      n, grain,
      [](void* ctx, int64_t b, int64_t e, int c) { (*static_cast<Fn*>(ctx))(b, e, c); },
      static_cast<void*>(&f));
}

}  // namespace natverk
