// parallel.cpp -- a small persistent thread pool (see parallel.h for the contract).
#include "common/parallel.h"

#include <algorithm>
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
      pending_ = chunks - 1;
      error_ = nullptr;
      ++generation_;
    }
    cv_work_.notify_all();
    run_chunk(0);
    std::unique_lock<std::mutex> lk(m_);
    cv_done_.wait(lk, [&] { return pending_ == 0; });
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
      std::unique_lock<std::mutex> lk(m_);
      cv_work_.wait(lk, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      const bool mine = index < job_.chunks;
      lk.unlock();
      if (!mine) continue;
      run_chunk(index);
      lk.lock();
      if (--pending_ == 0) cv_done_.notify_one();
    }
  }

  void start_workers(int count) {
    if (static_cast<int>(workers_.size()) == count) return;
    stop_workers();
    stop_ = false;
    for (int i = 1; i <= count; ++i) workers_.emplace_back(&Pool::worker, this, i);
  }

  void stop_workers() {
    {
      std::lock_guard<std::mutex> lk(m_);
      stop_ = true;
    }
    cv_work_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
    // Workers that start later must not mistake an old generation for new work.
    stop_ = false;
    generation_ = 0;
  }

  int threads_;
  std::vector<std::thread> workers_;
  std::mutex busy_;  // one parallel region at a time
  std::mutex m_;
  std::condition_variable cv_work_, cv_done_;
  Job job_;
  int pending_ = 0;
  uint64_t generation_ = 0;
  bool stop_ = false;
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
