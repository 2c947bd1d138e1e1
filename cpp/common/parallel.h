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
// Contract: a region is split into a fixed number of chunks, planned once
// from (n, grain, num_threads()) by plan_chunks(). Chunk c is the contiguous
// range [n*c/chunks, n*(c+1)/chunks), and parallel_for_chunks(n, chunks, fn, ctx)
// calls fn(ctx, begin, end, c) exactly once for every c in [0, chunks).
// Which thread runs a chunk is not fixed -- free workers and the caller claim
// chunks one at a time -- so a kernel whose chunks write disjoint outputs (or
// private partial sums added in chunk order afterwards) returns the same bits
// whatever else is running: a nested call, a second caller thread that finds
// the pool busy, or a pool resized since the plan all run the same chunks,
// serially on the caller where no worker is free. The first exception thrown
// by fn is rethrown on the calling thread after every chunk has finished.
//
// Lock discipline (the pool's state, parallel.cpp):
//   busy_  one region at a time owns the workers; set_num_threads() takes it
//          too, so a resize waits for the region in flight and applies from
//          the next one. Taken with try_lock by regions (a busy pool means
//          "run the chunks yourself"), never while holding m_.
//   m_     guards the posted job (fn, ctx, n, chunks), its generation and the
//          first error; the condition variables wait on it.
//   claim_ one atomic word, generation << 32 | next chunk: a worker claims a
//          chunk only of the generation it read the job for, so a late worker
//          can never run a chunk of a job whose caller has already returned.
//   threads_ is atomic: plan_chunks() reads it without a lock, and a plan made
//          with an older count is still run correctly, chunk for chunk.
#pragma once
#include <cstdint>
#include <type_traits>

namespace natverk {

using RangeFn = void (*)(void* ctx, int64_t begin, int64_t end, int chunk);

int num_threads();
void set_num_threads(int n);  // n >= 1
int hardware_threads();

// Number of chunks for n items of at least `grain` each at the current
// thread count: at most num_threads(), at least 1 when n > 0, 0 when n <= 0.
int plan_chunks(int64_t n, int64_t grain);

// Run exactly `chunks` chunks of [0, n) (see the contract above). A kernel that
// sizes per-chunk buffers calls plan_chunks() once and passes the same count.
void parallel_for_chunks(int64_t n, int chunks, RangeFn fn, void* ctx);

// parallel_for_chunks(n, plan_chunks(n, grain), fn, ctx).
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

template <typename F>
inline void parallel_for_chunks(int64_t n, int chunks, F&& f) {
  using Fn = typename std::remove_reference<F>::type;
  parallel_for_chunks(
      n, chunks,
      [](void* ctx, int64_t b, int64_t e, int c) { (*static_cast<Fn*>(ctx))(b, e, c); },
      static_cast<void*>(&f));
}

}  // namespace natverk
