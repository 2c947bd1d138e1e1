// gemm.cpp -- the threaded GEMM driver: applies beta, picks the micro-kernel
// for the current SIMD level, splits C between threads and hands each thread
// its own packing buffers.
//
// Threading: C is cut into one contiguous slab per thread, along m (in units of 4 rows, see
// run_parallel) when there are at least as many MR-row tiles as NR-column tiles, otherwise along n
// (the 64 x 784 x 500 shapes of a small MLP split along n). Each thread runs an
// independent blocked GEMM on its slab, so no synchronisation is needed inside
// and the result is identical for any thread count: every C element is
// computed by the same sequence of operations (the k loop is never split).
#include "gemm/gemm.h"

#include <atomic>
#include <cstring>
#include <stdexcept>

#include "common/cpu_features.h"
#include "common/parallel.h"
#include "common/scratch.h"
#include "gemm/gemm_internal.h"

namespace natverk {
namespace {

using namespace gemm_detail;

// Below this many multiply-adds a second thread costs more than it saves.
constexpr int64_t kMinWorkPerThread = 1 << 17;

// The smallest edge kernel's rows (gemm_kernel.inc, edge_rows): the unit of a split along m.
constexpr int64_t kRowUnit = 4;

std::atomic<int> g_b_in_place{static_cast<int>(GemmBInPlace::Auto)};

// Per-thread packing buffers, kept between calls (no per-call allocation).
thread_local Scratch t_scratch;

template <typename T>
struct Kernel {
  GemmBlocking blocking;
  void (*serial)(const GemmArgs<T>&, T*, T*);
};

template <typename T>
Kernel<T> select_kernel() {
  const bool f32 = sizeof(T) == 4;
  switch (simd_level()) {
#if defined(NATVERK_HAVE_X86_KERNELS)
    case SimdLevel::AVX512:
      return {f32 ? avx512::blocking_f32() : avx512::blocking_f64(), &avx512::gemm_serial};
    case SimdLevel::AVX2:
      return {f32 ? avx2::blocking_f32() : avx2::blocking_f64(), &avx2::gemm_serial};
#endif
    default:
      return {f32 ? generic::blocking_f32() : generic::blocking_f64(), &generic::gemm_serial};
  }
}

template <typename T>
void scale_rows(T* C, int64_t ldc, int64_t rows, int64_t cols, T beta) {
  for (int64_t i = 0; i < rows; ++i) {
    T* c = C + i * ldc;
    if (beta == T(0)) {
      std::memset(c, 0, sizeof(T) * static_cast<size_t>(cols));
    } else if (beta != T(1)) {
      for (int64_t j = 0; j < cols; ++j) c[j] *= beta;
    }
  }
}

// gemm_bias_act with k == 0: an empty sum, so C = f(bias) (C = f(0) without a bias), as filling C
// with the bias, gemm with beta = 1 and activation_forward gave it.
template <typename T>
void bias_act_rows(T* C, int64_t ldc, int64_t rows, int64_t cols, const T* bias, bool relu) {
  for (int64_t i = 0; i < rows; ++i) {
    T* c = C + i * ldc;
    for (int64_t j = 0; j < cols; ++j) {
      const T v = bias ? bias[j] : c[j];
      c[j] = relu && !(v > T(0) || v != v) ? T(0) : v;
    }
  }
}

// gemm_update: C = l2 w over this slab (dense_backward's lambda W, the same products), or exact
// zeros without l2 (dense_backward's beta = 0, whatever w holds).
template <typename T>
void fill_l2_w(const GemmArgs<T>& g) {
  const T l2 = g.upd->l2;
  for (int64_t i = 0; i < g.m; ++i) {
    T* c = g.C + i * g.ldc;
    const T* w = g.upd->w + (c - g.c_base);
    for (int64_t j = 0; j < g.n; ++j) c[j] = l2 != T(0) ? l2 * w[j] : T(0);
  }
}

template <typename T>
struct Job {
  Kernel<T> kern;
  GemmArgs<T> g;
  T beta;
  bool split_m;
  int64_t unit;  // rows (split_m) or columns per work unit
};

template <typename T>
void run_slab(void* ctx, int64_t begin, int64_t end, int /*chunk*/) {
  const Job<T>& job = *static_cast<const Job<T>*>(ctx);
  GemmArgs<T> g = job.g;
  const int64_t lo = begin * job.unit;
  if (job.split_m) {
    const int64_t hi = end * job.unit < g.m ? end * job.unit : g.m;
    g.A += lo * g.rsa;
    g.C += lo * g.ldc;
    g.m = hi - lo;
  } else {
    const int64_t hi = end * job.unit < g.n ? end * job.unit : g.n;
    g.B += lo * g.csb;
    g.C += lo;
    if (g.bias) g.bias += lo;
    g.n = hi - lo;
  }
  if (g.m <= 0 || g.n <= 0) return;
  // k == 0: op(A) op(B) is an empty sum, exactly 0, so C = beta C. alpha == 0 is NOT
  // short-cut here (reference BLAS does): 0 * NaN and 0 * Inf are NaN, and natverk's
  // contract is that NaN/Inf in A or B propagate whatever alpha is (tests/reference.py).
  // The micro-kernel computes alpha * acc, which is exactly that.
  if (g.k == 0) {
    if (g.upd) {  // gemm_update: G = l2 w (or 0), handed over row by row from C
      fill_l2_w(g);
      for (int64_t i = 0; i < g.m; ++i) g.upd->apply(*g.upd, i * g.ldc + (g.C - g.c_base), g.C + i * g.ldc, g.ldc, 1, g.n);
      return;
    }
    scale_rows(g.C, g.ldc, g.m, g.n, job.beta);
    if (g.bias || g.relu) bias_act_rows(g.C, g.ldc, g.m, g.n, g.bias, g.relu);
    return;
  }
  // beta == 0: the first k block overwrites C (BLAS semantics: NaN in the old C
  // does not propagate), so C is neither cleared nor read back.
  g.overwrite = job.beta == T(0);
  if (!g.overwrite) scale_rows(g.C, g.ldc, g.m, g.n, job.beta);

  const GemmBlocking& b = job.kern.blocking;
  // gemm_update with l2 over several k blocks: lambda W is filled into C first, as dense_backward
  // does, and the first block adds to it. In one k block the epilogue adds l2 w itself.
  if (g.upd && g.upd->l2 != T(0) && g.k > b.kc) {
    fill_l2_w(g);
    g.overwrite = false;
  }
  const int64_t mc = g.m < b.mc ? (g.m + b.mr - 1) / b.mr * b.mr : b.mc;
  const int64_t nc = g.n < b.nc ? (g.n + b.nr - 1) / b.nr * b.nr : b.nc;
  const int64_t kc = g.k < b.kc ? g.k : b.kc;
  const size_t a_elems = static_cast<size_t>(mc * kc);
  const size_t a_bytes = (a_elems * sizeof(T) + 63) / 64 * 64;
  char* base = static_cast<char*>(t_scratch.get(a_bytes + static_cast<size_t>(kc * nc) * sizeof(T)));
  job.kern.serial(g, reinterpret_cast<T*>(base), reinterpret_cast<T*>(base + a_bytes));
}

// Split C between the threads (see the top of this file) and run the job.
template <typename T>
void run_parallel(Job<T>& job) {
  const int64_t m = job.g.m, n = job.g.n, k = job.g.k;
  const int64_t tiles_m = (m + job.kern.blocking.mr - 1) / job.kern.blocking.mr;
  const int64_t tiles_n = (n + job.kern.blocking.nr - 1) / job.kern.blocking.nr;
  job.split_m = tiles_m >= tiles_n;
  job.g.b_in_place = gemm_b_in_place_active();
  // Rows are handed out kRowUnit at a time where the row tile is a multiple of it, so that two
  // threads get equal halves: a batch of 128 rows splits 64 + 64 (5 tiles of 12 and a 4-row edge
  // each), where whole 12-row tiles split 60 + 68, and 64 rows 32 + 32 instead of 36 + 28. The edge
  // kernels make a 4-row tile cost about a third of a full one (gemm_kernel.inc, edge_rows).
  // Zen 4, 2 threads, GFLOP/s, MR -> 4 rows a unit, three alternated runs: 128 x 250 x 100 AB
  // 142-146 -> 153-155, 250 x 128 x 100 A^T B 138-146 -> 144-158, 128 x 100 x 250 AB^T 148-157 ->
  // 152-171, 64 x 500 x 100 AB 130-141 -> 140-152; fit() of the spiral net (c) 388-437k -> 449-482k
  // samples/s, of (a) 66-76k -> 74-78k. The AVX2 tile (6 rows) keeps whole tiles: 4-row slabs would
  // leave 2-row edges, padded to 4.
  const int64_t mr = job.kern.blocking.mr;
  job.unit = job.split_m ? (mr % kRowUnit == 0 ? kRowUnit : mr) : job.kern.blocking.nr;
  const int64_t units = job.split_m ? (m + job.unit - 1) / job.unit : tiles_n;
  // Grain: enough tiles per thread that each does kMinWorkPerThread multiply-adds.
  const int64_t work_per_unit = job.unit * (job.split_m ? n : m) * (k > 0 ? k : 1);
  int64_t grain = kMinWorkPerThread / (work_per_unit > 0 ? work_per_unit : 1);
  if (grain < 1) grain = 1;
  parallel_for(units, grain, &run_slab<T>, &job);
}

}  // namespace

template <typename T>
void gemm(T* C, int64_t ldc, const T* A, int64_t rsa, int64_t csa, const T* B, int64_t rsb,
          int64_t csb, int64_t m, int64_t n, int64_t k, T alpha, T beta) {
  if (m <= 0 || n <= 0) return;
  Job<T> job{select_kernel<T>(), GemmArgs<T>{C, ldc, A, rsa, csa, B, rsb, csb, m, n, k, alpha, false},
             beta, true, 1};
  run_parallel(job);
}

namespace {
// The products with an epilogue (gemm.h): beta = 0, so the first k block overwrites C, and
// `set` names the epilogue in the GemmArgs.
// serial: on the calling thread, as gemm_serial (one work unit of every row).
template <typename T, typename Set>
void gemm_epilogue(T* C, int64_t ldc, const T* A, int64_t rsa, int64_t csa, const T* B, int64_t rsb,
                   int64_t csb, int64_t m, int64_t n, int64_t k, T alpha, bool serial, const Set& set) {
  if (m <= 0 || n <= 0) return;
  GemmArgs<T> g{C, ldc, A, rsa, csa, B, rsb, csb, m, n, k, alpha, false};
  set(g);
  Job<T> job{select_kernel<T>(), g, T(0), true, serial ? m : 1};
  if (!serial) return run_parallel(job);
  job.g.b_in_place = gemm_b_in_place_active();
  run_slab<T>(&job, 0, 1, 0);
}
}  // namespace

template <typename T>
void gemm_bias_act(T* C, int64_t ldc, const T* A, int64_t rsa, int64_t csa, const T* B, int64_t rsb,
                   int64_t csb, int64_t m, int64_t n, int64_t k, T alpha, const T* bias, bool relu, bool serial) {
  gemm_epilogue<T>(C, ldc, A, rsa, csa, B, rsb, csb, m, n, k, alpha, serial, [&](GemmArgs<T>& g) {
    g.bias = bias;
    g.relu = relu;
  });
}

template <typename T>
void gemm_relu_mask(T* C, int64_t ldc, const T* A, int64_t rsa, int64_t csa, const T* B, int64_t rsb,
                    int64_t csb, int64_t m, int64_t n, int64_t k, T alpha, const T* h, bool serial) {
  gemm_epilogue<T>(C, ldc, A, rsa, csa, B, rsb, csb, m, n, k, alpha, serial, [&](GemmArgs<T>& g) {
    g.mask = h;
    g.c_base = C;  // a tile's mask is at its offset from C
  });
}

template <typename T>
void gemm_update(T* C, int64_t ldc, const T* A, int64_t rsa, int64_t csa, const T* B, int64_t rsb,
                 int64_t csb, int64_t m, int64_t n, int64_t k, T alpha, const GemmTileUpdate<T>& u, bool serial) {
  if (m <= 0 || n <= 0) return;
  if (ldc != u.ld || !u.apply || !u.w) throw std::logic_error("gemm_update: C and the update's arrays must share a layout");
  gemm_epilogue<T>(C, ldc, A, rsa, csa, B, rsb, csb, m, n, k, alpha, serial, [&](GemmArgs<T>& g) {
    g.upd = &u;
    g.c_base = C;  // a tile's place in C is its place in w, v and s
  });
}

template <typename T>
void gemm_serial(T* C, int64_t ldc, const T* A, int64_t rsa, int64_t csa, const T* B, int64_t rsb,
                 int64_t csb, int64_t m, int64_t n, int64_t k, T alpha, T beta) {
  if (m <= 0 || n <= 0) return;
  // One work unit covering every row: run_slab is then exactly one thread's share of gemm().
  Job<T> job{select_kernel<T>(), GemmArgs<T>{C, ldc, A, rsa, csa, B, rsb, csb, m, n, k, alpha, false},
             beta, true, m};
  job.g.b_in_place = gemm_b_in_place_active();
  run_slab<T>(&job, 0, 1, 0);
}

template void gemm_serial<float>(float*, int64_t, const float*, int64_t, int64_t, const float*,
                                 int64_t, int64_t, int64_t, int64_t, int64_t, float, float);
template void gemm_serial<double>(double*, int64_t, const double*, int64_t, int64_t, const double*,
                                  int64_t, int64_t, int64_t, int64_t, int64_t, double, double);

template void gemm_bias_act<float>(float*, int64_t, const float*, int64_t, int64_t, const float*, int64_t,
                                   int64_t, int64_t, int64_t, int64_t, float, const float*, bool, bool);
template void gemm_bias_act<double>(double*, int64_t, const double*, int64_t, int64_t, const double*, int64_t,
                                    int64_t, int64_t, int64_t, int64_t, double, const double*, bool, bool);
template void gemm_relu_mask<float>(float*, int64_t, const float*, int64_t, int64_t, const float*, int64_t,
                                    int64_t, int64_t, int64_t, int64_t, float, const float*, bool);
template void gemm_relu_mask<double>(double*, int64_t, const double*, int64_t, int64_t, const double*, int64_t,
                                     int64_t, int64_t, int64_t, int64_t, double, const double*, bool);
template void gemm_update<float>(float*, int64_t, const float*, int64_t, int64_t, const float*, int64_t,
                                 int64_t, int64_t, int64_t, int64_t, float, const GemmTileUpdate<float>&, bool);
template void gemm_update<double>(double*, int64_t, const double*, int64_t, int64_t, const double*, int64_t,
                                  int64_t, int64_t, int64_t, int64_t, double, const GemmTileUpdate<double>&, bool);
template void gemm<float>(float*, int64_t, const float*, int64_t, int64_t, const float*, int64_t,
                          int64_t, int64_t, int64_t, int64_t, float, float);
template void gemm<double>(double*, int64_t, const double*, int64_t, int64_t, const double*,
                           int64_t, int64_t, int64_t, int64_t, int64_t, double, double);

void set_gemm_b_in_place(GemmBInPlace mode) { g_b_in_place.store(static_cast<int>(mode), std::memory_order_relaxed); }
GemmBInPlace gemm_b_in_place() { return static_cast<GemmBInPlace>(g_b_in_place.load(std::memory_order_relaxed)); }
bool gemm_b_in_place_active() {
  switch (gemm_b_in_place()) {
    case GemmBInPlace::Always: return true;
    case GemmBInPlace::Never: return false;
    default: return cpu_is_amd();
  }
}

GemmBlocking gemm_blocking_f32() { return select_kernel<float>().blocking; }
GemmBlocking gemm_blocking_f64() { return select_kernel<double>().blocking; }

}  // namespace natverk
