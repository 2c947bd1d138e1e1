// cpu_features.h -- which SIMD level the kernels run at, chosen at run time.
//
// The binary is portable: AVX2 and AVX-512 micro-kernels are compiled for
// their targets in their own translation units and only called when the CPU
// (and the OS, which must save the wider registers) supports them.
// NATVERK_SIMD=scalar|avx2|avx512 in the environment, or set_simd_level(),
// can lower the level (never raise it past what the CPU has): the tests use
// it to check every code path this machine can run.
#pragma once
#include <string>

namespace natverk {

enum class SimdLevel { Scalar = 0, AVX2 = 1, AVX512 = 2 };

SimdLevel best_simd_level();    // what this CPU supports and this build has
SimdLevel simd_level();         // what the kernels use now
void set_simd_level(SimdLevel level);  // throws std::invalid_argument above best
const char* simd_level_name(SimdLevel level);
SimdLevel parse_simd_level(const std::string& name);  // throws std::invalid_argument

// Whether the CPU is AMD's (cpuid's vendor string), for the few kernel choices that were measured
// to go opposite ways on AMD and Intel cores with the same SIMD level (gemm.h, GemmBInPlace).
bool cpu_is_amd();

}  // namespace natverk
