// parallel.cpp -- a small persistent thread pool (see parallel.h for the contract).
#include "common/parallel.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace natverk {
namespace {

thread_local bool t_inside_pool = false;

// How long a worker waiting for work, or the caller waiting for the workers,
// polls before it sleeps on the condition variable. A training step of a small
// network is a string of parallel regions tens to a hundred microseconds apart
// (Python runs between the layers); waking a sleeping thread costs about as
// much again, which made 2 threads slower than 1 on the spiral net. Measured
// on the 2-core EPYC, training (c) at 2 threads, Sequential API, samples/s:
// 0 us 178k, 10 us 165k, 50 us 110k (it falls asleep in the gaps, then both
// sides wait), 200 us 239k; (a) 39k -> 44k. libgomp and OpenBLAS poll far
// longer. NATVERK_SPIN_US (0 ... 100000) overrides it, e.g. 0 to share the cores
// with another busy pool.
std::chrono::microseconds spin_time() {
  long us = 200;
  if (const char* env = std::getenv("NATVERK_SPIN_US")) {
    char* end = nullptr;
    const long v = std::strtol(env, &end, 10);
    if (end != env && *end == '\0' && v >= 0 && v <= 100000) us = v;
  }
  return std::chrono::microseconds(us);
}
const std::chrono::microseconds kSpin = spin_time();

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#else
  std::this_thread::yield();
#endif
}

// Poll `done` until it returns true or kSpin has passed; true if it did.
template <typename Pred>
bool spin_until(Pred done) {
  const auto deadline = std::chrono::steady_clock::now() + kSpin;
  for (;;) {
    for (int i = 0; i < 64; ++i) {
      if (done()) return true;
      cpu_relax();
    }
    if (std::chrono::steady_clock::now() >= deadline) return done();
  }
}

int initial_threads() {
  int hw = static_cast<int>(std::thread::hardware_concurrency());
  if (hw <= 0) hw = 1;
  if (const char* env = std::getenv("NATVERK_NUM_THREADS")) {
    char* end = nullptr;
    long v = std::strtol(env, &end, 10);
    if (end != env && *end == '\0' && v >= 1 && v <= 1024) return static_cast<int>(v);
  }
  return hw;
}

class Pool {
 public:
  Pool() : threads_(initial_threads()) {}
  ~Pool() { stop_workers(); }

  int threads() const { return threads_; }

  void set_threads(int n) {
    std::lock_guard<std::mutex> busy(busy_);
    stop_workers();
    threads_ = n;
  }

  void run(int64_t n, int64_t grain, RangeFn fn, void* ctx) {
    const int chunks = plan(n, grain);
    if (chunks <= 1 || t_inside_pool) {
      if (n > 0) fn(ctx, 0, n, 0);
      return;
    }
    std::unique_lock<std::mutex> busy(busy_, std::try_to_lock);
    if (!busy.owns_lock()) {  // another caller thread is using the pool
      fn(ctx, 0, n, 0);
      return;
    }
    start_workers(threads_ - 1);
    {
      std::lock_guard<std::mutex> lk(m_);
      job_ = Job{fn, ctx, n, chunks};
      pending_.store(chunks - 1, std::memory_order_relaxed);
      error_ = nullptr;
      // release: a worker that sees the new generation sees job_ too
      generation_.fetch_add(1, std::memory_order_release);
    }
    cv_work_.notify_all();
    run_chunk(0);
    const auto all_done = [&] { return pending_.load(std::memory_order_acquire) == 0; };
    if (!spin_until(all_done)) {
      std::unique_lock<std::mutex> lk(m_);
      cv_done_.wait(lk, all_done);
    }
    std::lock_guard<std::mutex> lk(m_);  // error_ is written under m_
    if (error_) std::rethrow_exception(error_);
  }

  int plan(int64_t n, int64_t grain) const {
    if (n <= 0) return 0;
    if (grain < 1) grain = 1;
    int64_t by_grain = n / grain;
    if (by_grain < 1) by_grain = 1;
    return static_cast<int>(std::min<int64_t>(threads_, by_grain));
  }

 private:
  struct Job {
    RangeFn fn = nullptr;
    void* ctx = nullptr;
    int64_t n = 0;
    int chunks = 0;
  };

  void run_chunk(int c) {
    const int64_t begin = job_.n * c / job_.chunks;
    const int64_t end = job_.n * (c + 1) / job_.chunks;
    bool saved = t_inside_pool;
    t_inside_pool = true;
    try {
      job_.fn(job_.ctx, begin, end, c);
    } catch (...) {
      std::lock_guard<std::mutex> lk(m_);
      if (!error_) error_ = std::current_exception();
    }
    t_inside_pool = saved;
  }

  void worker(int index) {  // index 1..threads-1 runs chunk `index`
    uint64_t seen = 0;
    for (;;) {
      const auto woken = [&] {
        return stop_.load(std::memory_order_acquire) ||
               generation_.load(std::memory_order_acquire) != seen;
      };
      if (!spin_until(woken)) {
        std::unique_lock<std::mutex> lk(m_);
        cv_work_.wait(lk, woken);
      }
      int chunks;
      {
        // The generation and its job together: a worker with no chunk in this
        // job is not waited for, so the caller may already be writing the next.
        std::lock_guard<std::mutex> lk(m_);
        if (stop_.load(std::memory_order_relaxed)) return;
        seen = generation_.load(std::memory_order_relaxed);
        chunks = job_.chunks;
      }
      if (index >= chunks) continue;
      run_chunk(index);  // job_ stays put until this chunk is counted off
      if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        // Under m_, so a caller that has just found pending_ != 0 and is about
        // to sleep cannot miss this notification.
        std::lock_guard<std::mutex> lk(m_);
        cv_done_.notify_one();
      }
    }
  }

  void start_workers(int count) {
    if (static_cast<int>(workers_.size()) == count) return;
    stop_workers();
    stop_.store(false);
    for (int i = 1; i <= count; ++i) workers_.emplace_back(&Pool::worker, this, i);
  }

  void stop_workers() {
    {
      std::lock_guard<std::mutex> lk(m_);
      stop_.store(true);
    }
    cv_work_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
    // Workers that start later must not mistake an old generation for new work.
    stop_.store(false);
    generation_.store(0);
  }

  int threads_;
  std::vector<std::thread> workers_;
  std::mutex busy_;  // one parallel region at a time
  std::mutex m_;
  std::condition_variable cv_work_, cv_done_;
  Job job_;
  std::atomic<int> pending_{0};
  std::atomic<uint64_t> generation_{0};
  std::atomic<bool> stop_{false};
  std::exception_ptr error_;
};

Pool& pool() {
  // Leaked on purpose: joining threads from a static destructor at interpreter
  // exit can deadlock; the OS reclaims them.
  static Pool* p = new Pool();
  return *p;
}

}  // namespace

int num_threads() { return pool().threads(); }

void set_num_threads(int n) {
  if (n < 1) throw std::invalid_argument("number of threads must be >= 1, got " + std::to_string(n));
  pool().set_threads(n);
}

int hardware_threads() {
  int hw = static_cast<int>(std::thread::hardware_concurrency());
  return hw > 0 ? hw : 1;
}

int plan_chunks(int64_t n, int64_t grain) { return pool().plan(n, grain); }

void parallel_for(int64_t n, int64_t grain, RangeFn fn, void* ctx) { pool().run(n, grain, fn, ctx); }

}  // namespace natverk
