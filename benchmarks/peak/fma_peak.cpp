// Machine FMA peak: GFLOP/s of a tight loop of independent vector FMA chains.
//
// Built by benchmarks/bench_peak.py with the system compiler:
//     g++ -O3 -march=native -std=c++17 -pthread fma_peak.cpp -o fma_peak
// Usage: fma_peak <float32|float64> <threads> <seconds per repeat> <repeats>
// Prints one line of JSON: {"dtype", "threads", "isa", "lanes", "chains",
// "gflops": [one figure per repeat]}. Each repeat starts all threads together,
// times until the last one finishes, and counts 2 flops per lane per FMA.
//
// Every thread runs CHAINS independent accumulators (acc = acc * m + a, with
// m just below 1 so the values stay near a / (1 - m) and never overflow or go
// denormal). CHAINS >= FMA latency x FMA ports (Zen 3 / Skylake: 4-5 cycles x
// 2 ports) keeps both pipes busy every cycle; the compiler keeps all chains in
// registers (AVX2 has 16, AVX-512 32).

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#if defined(__AVX512F__) || defined(__AVX2__) || defined(__FMA__)
#include <immintrin.h>
#endif

namespace {

#if defined(__AVX512F__)
constexpr int CHAINS = 24;
const char* ISA = "avx512";
struct F32 { using V = __m512; static constexpr int lanes = 16;
  static V set(float x) { return _mm512_set1_ps(x); }
  static V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static double sum(V v) { return _mm512_reduce_add_ps(v); } };
struct F64 { using V = __m512d; static constexpr int lanes = 8;
  static V set(double x) { return _mm512_set1_pd(x); }
  static V fma(V a, V b, V c) { return _mm512_fmadd_pd(a, b, c); }
  static double sum(V v) { return _mm512_reduce_add_pd(v); } };
#elif defined(__AVX2__) && defined(__FMA__)
constexpr int CHAINS = 12;
const char* ISA = "avx2+fma";
struct F32 { using V = __m256; static constexpr int lanes = 8;
  static V set(float x) { return _mm256_set1_ps(x); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static double sum(V v) { float t[8]; _mm256_storeu_ps(t, v); double s = 0; for (float x : t) s += x; return s; } };
struct F64 { using V = __m256d; static constexpr int lanes = 4;
  static V set(double x) { return _mm256_set1_pd(x); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_pd(a, b, c); }
  static double sum(V v) { double t[4]; _mm256_storeu_pd(t, v); return t[0] + t[1] + t[2] + t[3]; } };
#else
// No x86 FMA: GCC vector extensions (16 bytes); the compiler fuses a * b + c
// where the target has an FMA instruction (-ffp-contract=fast is GCC's default).
constexpr int CHAINS = 12;
const char* ISA = "generic-vec16";
typedef float vf4 __attribute__((vector_size(16)));
typedef double vd2 __attribute__((vector_size(16)));
struct F32 { using V = vf4; static constexpr int lanes = 4;
  static V set(float x) { return V{x, x, x, x}; }
  static V fma(V a, V b, V c) { return a * b + c; }
  static double sum(V v) { return double(v[0]) + v[1] + v[2] + v[3]; } };
struct F64 { using V = vd2; static constexpr int lanes = 2;
  static V set(double x) { return V{x, x}; }
  static V fma(V a, V b, V c) { return a * b + c; }
  static double sum(V v) { return v[0] + v[1]; } };
#endif

// One thread's work: `iters` rounds of CHAINS independent FMAs. The result is
// returned so the loop cannot be optimised away.
template <class T>
__attribute__((noinline)) double kernel(long iters, double seed) {
  using V = typename T::V;
  V acc[CHAINS];
  for (int c = 0; c < CHAINS; ++c) acc[c] = T::set(seed + 0.001 * c);
  const V m = T::set(0.999999), a = T::set(1e-6);
  for (long i = 0; i < iters; ++i) {
#pragma GCC unroll 32
    for (int c = 0; c < CHAINS; ++c) acc[c] = T::fma(acc[c], m, a);
  }
  double s = 0;
  for (int c = 0; c < CHAINS; ++c) s += T::sum(acc[c]);
  return s;
}

template <class T>
double run(int threads, long iters) {
  std::vector<std::thread> pool;
  std::vector<double> sink(threads);
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      ready.fetch_add(1);
      while (!go.load(std::memory_order_acquire)) {
      }
      sink[t] = kernel<T>(iters, 1.0 + t);
    });
  }
  while (ready.load() < threads) {
  }
  auto t0 = std::chrono::steady_clock::now();
  go.store(true, std::memory_order_release);
  for (auto& th : pool) th.join();
  double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  double check = 0;
  for (double x : sink) check += x;
  if (check != check) std::fprintf(stderr, "NaN\n");  // keeps sink alive
  return 2.0 * T::lanes * CHAINS * double(iters) * threads / dt / 1e9;
}

template <class T>
void bench(const char* dtype, int threads, double seconds, int repeats) {
  // Calibrate on one thread: iterations for about `seconds`.
  long iters = 1 << 16;
  for (;;) {
    auto t0 = std::chrono::steady_clock::now();
    volatile double s = kernel<T>(iters, 1.0);
    (void)s;
    double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (dt > 0.05 || iters > (1L << 40)) {
      iters = long(double(iters) * seconds / dt) + 1;
      break;
    }
    iters *= 4;
  }
  run<T>(threads, iters / 4 + 1);  // warm-up (clocks, thread start)
  std::printf("{\"dtype\": \"%s\", \"threads\": %d, \"isa\": \"%s\", \"lanes\": %d, \"chains\": %d, \"gflops\": [",
              dtype, threads, ISA, T::lanes, CHAINS);
  for (int r = 0; r < repeats; ++r) std::printf("%s%.3f", r ? ", " : "", run<T>(threads, iters));
  std::printf("]}\n");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: %s <float32|float64> <threads> <seconds per repeat> <repeats>\n", argv[0]);
    return 2;
  }
  const std::string dtype = argv[1];
  const int threads = std::atoi(argv[2]);
  const double seconds = std::atof(argv[3]);
  const int repeats = std::atoi(argv[4]);
  if (threads < 1 || seconds <= 0 || repeats < 1 || (dtype != "float32" && dtype != "float64")) {
    std::fprintf(stderr, "bad arguments\n");
    return 2;
  }
  if (dtype == "float32")
    bench<F32>("float32", threads, seconds, repeats);
  else
    bench<F64>("float64", threads, seconds, repeats);
  return 0;
}
