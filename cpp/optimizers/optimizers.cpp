// optimizers.cpp -- see optimizers.h for the update rules.
#include "optimizers/optimizers.h"

#include <cmath>
#include <cstring>
#include <stdexcept>

#include "common/cpu_features.h"
#include "common/elementwise.h"

namespace natverk {

namespace {

// The loops take their constants as one struct by value. Captured by reference they were T
// objects in memory, which a store to w[i] (also a T) might overwrite as far as the compiler
// could tell: it reloaded each one every iteration and left the loop scalar (Adam was 3/4 of
// a spiral-network step). By value they are locals, and the loop vectorises (with a run-time
// check that w, v, s, g do not overlap).
template <typename T> struct SgdK { T a, wd; };
template <typename T> struct MomentumK { T a, b1, c1, wd; };
template <typename T> struct RmspropK { T a, b2, c2, ep, wd; };
template <typename T> struct AdamK { T a, b1, c1, b2, c2, ep, wd, corr1, corr2; };

template <typename T>
__attribute__((always_inline)) inline void sgd_loop(SgdK<T> k, T* w, T*, T*, const T* g, int64_t b, int64_t e) {
  for (int64_t i = b; i < e; ++i) w[i] -= k.a * (g[i] + k.wd * w[i]);
}

template <typename T>
__attribute__((always_inline)) inline void momentum_loop(MomentumK<T> k, T* w, T* v, T*, const T* g, int64_t b,
                                                         int64_t e) {
  for (int64_t i = b; i < e; ++i) {
    const T gi = g[i] + k.wd * w[i];
    v[i] = k.b1 * v[i] + k.c1 * gi;
    w[i] -= k.a * v[i];
  }
}

template <typename T>
__attribute__((always_inline)) inline void rmsprop_loop(RmspropK<T> k, T* w, T*, T* s, const T* g, int64_t b,
                                                        int64_t e) {
  for (int64_t i = b; i < e; ++i) {
    const T gi = g[i] + k.wd * w[i];
    s[i] = k.b2 * s[i] + k.c2 * gi * gi;
    w[i] -= k.a * gi / (std::sqrt(s[i]) + k.ep);
  }
}

template <typename T>
__attribute__((always_inline)) inline void adam_loop(AdamK<T> k, T* w, T* v, T* s, const T* g, int64_t b, int64_t e) {
  for (int64_t i = b; i < e; ++i) {
    const T gi = g[i] + k.wd * w[i];
    v[i] = k.b1 * v[i] + k.c1 * gi;
    s[i] = k.b2 * s[i] + k.c2 * gi * gi;
    w[i] -= k.a * (v[i] / k.corr1) / (std::sqrt(s[i] / k.corr2) + k.ep);
  }
}

// One copy of each loop per SIMD level, chosen with simd_level() as the GEMM's. The baseline
// x86-64 copy works 4 floats at a time, and Adam's two divisions and square root a parameter
// are throughput-bound there (13 % of a spiral-network step with fit(), AVX-512 CPU). Division
// and square root are correctly rounded at any width; the copies are not given FMA, and this
// file is compiled with -ffp-contract=off (CMakeLists.txt) besides, so no copy fuses a
// multiply-add the others do not: every SIMD level gives the same bits
// (tests/test_optimizers.py; with FMA the AVX-512 copy fails it).
//
// One row of a gradient tile, C elements wide (C = 0: cols, known only at run time). With C fixed
// when compiling, and the __restrict pointers (the tile's gradient is the GEMM's own tile buffer
// and the parameter arrays are the caller's, so they never overlap), the row becomes straight-line
// vector code. With the width and the overlap known only at run time, each row of 16 floats ran
// the vectorised loop's overlap check, its setup and its remainder for two vectors of work: the
// fused SGD update took 1.2-1.5 cycles an element, 7 % of a step of (a) (perf, Zen 3, 1 thread).
template <typename T, typename K, void (*Loop)(K, T*, T*, T*, const T*, int64_t, int64_t), int C>
__attribute__((always_inline)) inline void tile_row(K k, T* __restrict w, T* __restrict v, T* __restrict s,
                                                    const T* __restrict g, int64_t cols) {
  Loop(k, w, v, s, g, 0, C > 0 ? C : cols);
}

// tile_<isa> is the same loop over the rows of one gradient tile (GemmTileUpdate::apply, issue 11's
// fused update), its constants in u.state: one call a tile, the loop inlined in it. Through a
// call per row, the calls cost about as much as the arithmetic of a 12 x 32 tile. The widths of
// the GEMM's whole tiles (8, 16 and 32 elements at the SIMD levels and dtypes) get a tile_row of
// their own width, a ragged last tile the run-time one. Either way each element is the same
// expression, so the bits do not change.
#define NATVERK_OPT_LOOPS(isa, attr)                                                               \
  template <typename T, typename K, void (*Loop)(K, T*, T*, T*, const T*, int64_t, int64_t)>     \
  attr void loop_##isa(K k, T* w, T* v, T* s, const T* g, int64_t b, int64_t e) {                \
    Loop(k, w, v, s, g, b, e);                                                                   \
  }                                                                                              \
  template <typename T, typename K, void (*Loop)(K, T*, T*, T*, const T*, int64_t, int64_t), int C> \
  attr void rows_##isa(K k, const GemmTileUpdate<T>& u, int64_t off, const T* g, int64_t ldg,    \
                       int64_t rows, int64_t cols) {                                             \
    for (int64_t r = 0; r < rows; ++r) {                                                         \
      const int64_t o = off + r * u.ld;                                                          \
      tile_row<T, K, Loop, C>(k, u.w + o, u.v ? u.v + o : nullptr, u.s ? u.s + o : nullptr,      \
                              g + r * ldg, cols);                                                \
    }                                                                                            \
  }                                                                                              \
  template <typename T, typename K, void (*Loop)(K, T*, T*, T*, const T*, int64_t, int64_t)>     \
  attr void tile_##isa(const GemmTileUpdate<T>& u, int64_t off, const T* g, int64_t ldg,         \
                       int64_t rows, int64_t cols) {                                             \
    K k;                                                                                         \
    std::memcpy(&k, u.state, sizeof(K));                                                         \
    switch (cols) {                                                                              \
      case 8: return rows_##isa<T, K, Loop, 8>(k, u, off, g, ldg, rows, cols);                   \
      case 16: return rows_##isa<T, K, Loop, 16>(k, u, off, g, ldg, rows, cols);                 \
      case 32: return rows_##isa<T, K, Loop, 32>(k, u, off, g, ldg, rows, cols);                 \
      default: return rows_##isa<T, K, Loop, 0>(k, u, off, g, ldg, rows, cols);                  \
    }                                                                                            \
  }
NATVERK_OPT_LOOPS(generic, )
#if defined(NATVERK_HAVE_X86_KERNELS)
NATVERK_OPT_LOOPS(avx2, __attribute__((target("avx2"))))
NATVERK_OPT_LOOPS(avx512, __attribute__((target("avx512f,avx512dq,avx512vl,avx512bw,avx2"))))
#endif
#undef NATVERK_OPT_LOOPS

// Elements a thread must get before an update is split. SGD and momentum are a few
// multiply-adds an element, memory-bound like any elementwise loop (kElementwiseGrain). RMSprop
// and Adam divide and take a square root per element, which the divider serves one vector at a
// time: Adam took 1.1 ns an element at 25,000 floats on Zen 4 (AVX-512, 1 thread), so the
// spiral net's 250 x 100 weight, under kElementwiseGrain, was 27 us of a step on one thread
// while the other waited. From 4,096 elements a thread, fit() of that net on 2 threads went
// 410-464k -> 452-487k samples/s (four alternated runs of the old and new build). The split does
// not change the bits: each element is its own update (test_optimizers.py, 1 against 2 threads).
template <typename K> constexpr int64_t kUpdateGrain = kElementwiseGrain;
template <typename T> constexpr int64_t kUpdateGrain<RmspropK<T>> = kElementwiseGrain / 8;
template <typename T> constexpr int64_t kUpdateGrain<AdamK<T>> = kElementwiseGrain / 8;

// Run Loop over [0, n) in parallel chunks, in this SIMD level's copy.
template <typename T, typename K, void (*Loop)(K, T*, T*, T*, const T*, int64_t, int64_t)>
void run_update(K k, T* w, T* v, T* s, const T* g, int64_t n) {
  void (*f)(K, T*, T*, T*, const T*, int64_t, int64_t) = &loop_generic<T, K, Loop>;
#if defined(NATVERK_HAVE_X86_KERNELS)
  switch (simd_level()) {
    case SimdLevel::AVX512: f = &loop_avx512<T, K, Loop>; break;
    case SimdLevel::AVX2: f = &loop_avx2<T, K, Loop>; break;
    default: break;
  }
#endif
  parallel_for(n, kUpdateGrain<K>, [&](int64_t b, int64_t e, int) { f(k, w, v, s, g, b, e); });
}

template <typename T, typename K, void (*Loop)(K, T*, T*, T*, const T*, int64_t, int64_t)>
void set_tile_update(GemmTileUpdate<T>& u, const K& k) {
  static_assert(sizeof(K) <= sizeof(u.state), "GemmTileUpdate::state is too small for the constants");
  std::memcpy(u.state, &k, sizeof(K));
  u.apply = &tile_generic<T, K, Loop>;
#if defined(NATVERK_HAVE_X86_KERNELS)
  switch (simd_level()) {
    case SimdLevel::AVX512: u.apply = &tile_avx512<T, K, Loop>; break;
    case SimdLevel::AVX2: u.apply = &tile_avx2<T, K, Loop>; break;
    default: break;
  }
#endif
}

// The constants of each rule from the hyper-parameters, as every entry point below builds them:
// the casts to T happen here once, so the fused tile update (make_tile_update) and the
// whole-array updates compute with the same values.
template <typename T>
SgdK<T> sgd_k(double lr, double wd) {
  return {static_cast<T>(lr), static_cast<T>(wd)};
}
template <typename T>
MomentumK<T> momentum_k(double lr, double beta, double wd) {
  return {static_cast<T>(lr), static_cast<T>(beta), static_cast<T>(1.0 - beta), static_cast<T>(wd)};
}
template <typename T>
RmspropK<T> rmsprop_k(double lr, double beta2, double eps, double wd) {
  return {static_cast<T>(lr), static_cast<T>(beta2), static_cast<T>(1.0 - beta2), static_cast<T>(eps),
          static_cast<T>(wd)};
}
// Bias corrections in double: 1 - beta^t loses digits in float for small t.
template <typename T>
AdamK<T> adam_k(double lr, double beta1, double beta2, int64_t t, double eps, double wd) {
  return {static_cast<T>(lr),
          static_cast<T>(beta1),
          static_cast<T>(1.0 - beta1),
          static_cast<T>(beta2),
          static_cast<T>(1.0 - beta2),
          static_cast<T>(eps),
          static_cast<T>(wd),
          static_cast<T>(1.0 - std::pow(beta1, static_cast<double>(t))),
          static_cast<T>(1.0 - std::pow(beta2, static_cast<double>(t)))};
}

}  // namespace

template <typename T>
void sgd_update(T* w, const T* g, int64_t n, double lr, double weight_decay) {
  run_update<T, SgdK<T>, &sgd_loop<T>>(sgd_k<T>(lr, weight_decay), w, nullptr, nullptr, g, n);
}

template <typename T>
void momentum_update(T* w, T* v, const T* g, int64_t n, double lr, double beta,
                     double weight_decay) {
  run_update<T, MomentumK<T>, &momentum_loop<T>>(momentum_k<T>(lr, beta, weight_decay), w, v, nullptr, g, n);
}

template <typename T>
void rmsprop_update(T* w, T* s, const T* g, int64_t n, double lr, double beta2, double eps,
                    double weight_decay) {
  run_update<T, RmspropK<T>, &rmsprop_loop<T>>(rmsprop_k<T>(lr, beta2, eps, weight_decay), w, nullptr, s, g, n);
}

template <typename T>
void adam_update(T* w, T* v, T* s, const T* g, int64_t n, double lr, double beta1, double beta2,
                 int64_t t, double eps, double weight_decay) {
  run_update<T, AdamK<T>, &adam_loop<T>>(adam_k<T>(lr, beta1, beta2, t, eps, weight_decay), w, v, s, g, n);
}

OptimizerKind parse_optimizer_kind(const std::string& name) {
  if (name == "sgd") return OptimizerKind::sgd;
  if (name == "momentum") return OptimizerKind::momentum;
  if (name == "rmsprop") return OptimizerKind::rmsprop;
  if (name == "adam") return OptimizerKind::adam;
  throw std::invalid_argument("optimizer must be 'sgd', 'momentum', 'rmsprop' or 'adam', got '" + name + "'");
}

const char* optimizer_kind_name(OptimizerKind kind) {
  switch (kind) {
    case OptimizerKind::sgd: return "sgd";
    case OptimizerKind::momentum: return "momentum";
    case OptimizerKind::rmsprop: return "rmsprop";
    default: return "adam";
  }
}

template <typename T>
void optimizer_update(OptimizerKind kind, T* w, T* v, T* s, const T* g, int64_t n,
                      const OptimizerHyper& hp, double weight_decay) {
  switch (kind) {
    case OptimizerKind::sgd: sgd_update<T>(w, g, n, hp.lr, weight_decay); break;
    case OptimizerKind::momentum: momentum_update<T>(w, v, g, n, hp.lr, hp.beta, weight_decay); break;
    case OptimizerKind::rmsprop: rmsprop_update<T>(w, s, g, n, hp.lr, hp.beta2, hp.eps, weight_decay); break;
    case OptimizerKind::adam:
      adam_update<T>(w, v, s, g, n, hp.lr, hp.beta1, hp.beta2, hp.t, hp.eps, weight_decay);
      break;
  }
}

template <typename T>
GemmTileUpdate<T> make_tile_update(OptimizerKind kind, T* w, T* v, T* s, int64_t ld, const OptimizerHyper& hp,
                                   double weight_decay, T l2) {
  GemmTileUpdate<T> u;
  u.w = w;
  u.v = optimizer_uses_v(kind) ? v : nullptr;
  u.s = optimizer_uses_s(kind) ? s : nullptr;
  u.ld = ld;
  u.l2 = l2;
  switch (kind) {
    case OptimizerKind::sgd: set_tile_update<T, SgdK<T>, &sgd_loop<T>>(u, sgd_k<T>(hp.lr, weight_decay)); break;
    case OptimizerKind::momentum:
      set_tile_update<T, MomentumK<T>, &momentum_loop<T>>(u, momentum_k<T>(hp.lr, hp.beta, weight_decay));
      break;
    case OptimizerKind::rmsprop:
      set_tile_update<T, RmspropK<T>, &rmsprop_loop<T>>(u, rmsprop_k<T>(hp.lr, hp.beta2, hp.eps, weight_decay));
      break;
    case OptimizerKind::adam:
      set_tile_update<T, AdamK<T>, &adam_loop<T>>(
          u, adam_k<T>(hp.lr, hp.beta1, hp.beta2, hp.t, hp.eps, weight_decay));
      break;
  }
  return u;
}

#define NATVERK_INSTANTIATE(T)                                                              \
  template GemmTileUpdate<T> make_tile_update<T>(OptimizerKind, T*, T*, T*, int64_t, const OptimizerHyper&, \
                                                 double, T);                                   \
  template void sgd_update<T>(T*, const T*, int64_t, double, double);                      \
  template void momentum_update<T>(T*, T*, const T*, int64_t, double, double, double);     \
  template void rmsprop_update<T>(T*, T*, const T*, int64_t, double, double, double, double); \
  template void adam_update<T>(T*, T*, T*, const T*, int64_t, double, double, double, int64_t, \
                               double, double);                                              \
  template void optimizer_update<T>(OptimizerKind, T*, T*, T*, const T*, int64_t,              \
                                    const OptimizerHyper&, double);
NATVERK_INSTANTIATE(float)
NATVERK_INSTANTIATE(double)
#undef NATVERK_INSTANTIATE

}  // namespace natverk
