// cpu_features.cpp -- run-time SIMD detection (see cpu_features.h).
#include "common/cpu_features.h"

#include <atomic>
#include <cstdlib>
#include <stdexcept>

namespace natverk {
namespace {

SimdLevel detect() {
#if defined(NATVERK_HAVE_X86_KERNELS) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  // libgcc's checks include the OS's XSAVE support (XCR0) for these states.
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("fma"))
    return SimdLevel::AVX512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return SimdLevel::AVX2;
#endif
  return SimdLevel::Scalar;
}

SimdLevel initial_level() {
  SimdLevel best = best_simd_level();
  if (const char* env = std::getenv("NATVERK_SIMD")) {
    try {
      SimdLevel asked = parse_simd_level(env);
      if (asked < best) return asked;
    } catch (const std::invalid_argument&) {
      // An unknown value is ignored rather than aborting the import.
    }
  }
  return best;
}

std::atomic<int>& current() {
  static std::atomic<int> level{static_cast<int>(initial_level())};
  return level;
}

}  // namespace

bool cpu_is_amd() {
#if defined(NATVERK_HAVE_X86_KERNELS) && (defined(__GNUC__) || defined(__clang__))
  static const bool amd = [] {
    __builtin_cpu_init();
    return __builtin_cpu_is("amd") != 0;
  }();
  return amd;
#else
  return false;
#endif
}

SimdLevel best_simd_level() {
  static const SimdLevel best = detect();
  return best;
}

SimdLevel simd_level() { return static_cast<SimdLevel>(current().load(std::memory_order_relaxed)); }

void set_simd_level(SimdLevel level) {
  if (level > best_simd_level())
    throw std::invalid_argument(std::string("SIMD level '") + simd_level_name(level) +
                                "' is not supported by this CPU/build (best: '" +
                                simd_level_name(best_simd_level()) + "')");
  current().store(static_cast<int>(level), std::memory_order_relaxed);
}

const char* simd_level_name(SimdLevel level) {
  switch (level) {
    case SimdLevel::AVX512: return "avx512";
    case SimdLevel::AVX2: return "avx2";
    default: return "scalar";
  }
}

SimdLevel parse_simd_level(const std::string& name) {
  if (name == "scalar") return SimdLevel::Scalar;
  if (name == "avx2") return SimdLevel::AVX2;
  if (name == "avx512") return SimdLevel::AVX512;
  throw std::invalid_argument("unknown SIMD level '" + name + "' (expected scalar, avx2 or avx512)");
}

}  // namespace natverk
