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
// The default thread count is the number of CPUs this process may run on
// (sched_getaffinity, read when the pool is first used), not the machine's:
// under `taskset -c 0` or a container's cpuset, more threads than CPUs can only
// take turns. NATVERK_NUM_THREADS (1..1024) overrides it.
//
// On a shared machine (issue 14): when another process keeps a core busy, a
// worker that polls, or that runs a chunk, gets descheduled for a whole
// scheduler slice (milliseconds) while the caller waits for it. Two measured
// back-offs (detail::SpinBackoff, detail::SerialFallback below) make the pool
// get out of the way; see parallel.cpp for the measurements behind them.
// Neither changes a plan: chunks and their order of summation stay exactly as
// planned, so results keep their bits; only who runs the chunks changes.
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
//   fallback_ (detail::SerialFallback) is read and written only by the thread
//          holding busy_; spin_ (detail::SpinBackoff) is atomics, read and
//          written by any polling thread without a lock.
#pragma once
#include <atomic>
#include <cstdint>
#include <type_traits>

namespace natverk {

using RangeFn = void (*)(void* ctx, int64_t begin, int64_t end, int chunk);

int num_threads();
void set_num_threads(int n);  // n >= 1
int hardware_threads();  // the machine's logical CPUs
int usable_cpus();       // the CPUs this process may run on (sched_getaffinity); the default thread count

// Number of chunks for n items of at least `grain` each at the current
// thread count: at most num_threads(), at least 1 when n > 0, 0 when n <= 0.
int plan_chunks(int64_t n, int64_t grain);

// Run exactly `chunks` chunks of [0, n) (see the contract above). A kernel that
// sizes per-chunk buffers calls plan_chunks() once and passes the same count.
void parallel_for_chunks(int64_t n, int chunks, RangeFn fn, void* ctx);

// parallel_for_chunks(n, plan_chunks(n, grain), fn, ctx).
void parallel_for(int64_t n, int64_t grain, RangeFn fn, void* ctx);

namespace detail {

// The pool's two back-offs, as plain policies over times in nanoseconds (the
// pool passes the steady clock; tests/test_busy_threads.py drives them with
// made-up times).

// 1. Polling backs off when a polling thread was descheduled. One poll
// iteration (64 pauses and a clock read) takes about 2 us; a gap of kGapNs
// between two clock reads means the thread did not run meanwhile: something
// else wanted its CPU. Polling then only steals from that something (or from
// our own caller), so every thread of the pool sleeps at once instead of
// polling, for a back-off time that doubles with each such observation
// (kMinNs .. kMaxNs) and halves once the pool has polled that long in all
// without one (so a machine where polls are descheduled more often than once
// per back-off time keeps backing off). Atomics with relaxed order: a lost
// update only shifts a heuristic.
class SpinBackoff {
 public:
  static constexpr int64_t kGapNs = 50000;        // 50 us
  static constexpr int64_t kMinNs = 1000000;      // 1 ms
  static constexpr int64_t kMaxNs = 128000000;    // 128 ms

  bool may_spin(int64_t now) const { return now >= until_.load(std::memory_order_relaxed); }
  // A poll saw two clock reads `gap` ns apart; true when that means descheduled (and backs off).
  bool observe_gap(int64_t now, int64_t gap) {
    if (gap < kGapNs) return false;
    const int64_t len = length_.load(std::memory_order_relaxed);
    until_.store(now + len, std::memory_order_relaxed);
    length_.store(len >= kMaxNs / 2 ? kMaxNs : 2 * len, std::memory_order_relaxed);
    credit_.store(0, std::memory_order_relaxed);
    return true;
  }
  // A poll of `polled` ns ended (work came, or its time ran out) without a gap.
  void undisturbed(int64_t polled) {
    const int64_t len = length_.load(std::memory_order_relaxed);
    if (len <= kMinNs) return;
    if (credit_.fetch_add(polled, std::memory_order_relaxed) + polled < len) return;
    credit_.store(0, std::memory_order_relaxed);
    length_.store(len / 2 < kMinNs ? kMinNs : len / 2, std::memory_order_relaxed);
  }
  int64_t length() const { return length_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> until_{0};
  std::atomic<int64_t> length_{kMinNs};
  std::atomic<int64_t> credit_{0};  // ns polled without a gap since the last change of length_
};

// 2. The caller runs whole regions itself while the workers do not pay. For
// each region it ran in parallel, the caller knows the wall time (`actual`)
// and how long its own chunks took, hence about how long all the chunks would
// have taken on it alone (`serial`). Over a window of kWindowNs of such serial
// work (or at once when the window has already lost a whole window's time),
// if the parallel regions took longer in all than the caller alone would have
// (workers descheduled while holding a chunk, or too late to claim one), the
// next regions run serially on the caller, with no worker woken, for a
// back-off time that doubles with each losing window (kMinNs .. kMaxNs) and
// halves with each winning one. When it ends, the next window measures again,
// so the pool returns to its workers within kMaxNs of the machine becoming
// free. Used only by the thread that holds the pool (busy_), so plain fields.
class SerialFallback {
 public:
  static constexpr int64_t kWindowNs = 2000000;    // 2 ms of serial-equivalent work per verdict
  static constexpr int64_t kMinNs = 4000000;       // 4 ms
  static constexpr int64_t kMaxNs = 256000000;     // 256 ms

  bool serial(int64_t now) const { return now < until_; }
  // A parallel region ended at `now`; true when this verdict turned the pool serial.
  bool record(int64_t now, int64_t actual, int64_t serial) {
    work_ += serial;
    lost_ += actual - serial;
    // A verdict after a window's work, or at once when the window has already
    // lost more than a whole window (a worker descheduled for a slice).
    if (work_ < kWindowNs && lost_ < kWindowNs) return false;
    const bool lose = lost_ > 0;
    work_ = lost_ = 0;
    if (!lose) {
      length_ = length_ / 2 < kMinNs ? kMinNs : length_ / 2;
      return false;
    }
    until_ = now + length_;
    length_ = length_ >= kMaxNs / 2 ? kMaxNs : 2 * length_;
    return true;
  }
  int64_t length() const { return length_; }

 private:
  int64_t until_ = 0, length_ = kMinNs, work_ = 0, lost_ = 0;
};

}  // namespace detail

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
