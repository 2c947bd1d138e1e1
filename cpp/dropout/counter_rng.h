// counter_rng.h -- the counter-based uniform of dropout (see dropout.h), in one place for the
// CPU kernel (dropout.cpp) and its CUDA twin (dropout.cu).
//
// u(seed, i) = (bits >> 11) * 2^-53 with bits = SplitMix64(SplitMix64(seed) ^ i * C)
// (Steele, Lea & Flood 2014): element i's decision depends only on (seed, i). The functions are
// inline and marked host+device so that both compilers build them from this very text: the
// GPU's masks are bit for bit the CPU's for the same seed. Everything here is exact integer
// arithmetic (uint64 wraps modulo 2^64 on both), and the final step is exact in double:
// bits >> 11 < 2^53 converts without rounding and the scaling by 2^-53 only changes the exponent.
#pragma once
#include <cstdint>

#ifndef NV_HOST_DEVICE
#if defined(__CUDACC__)
#define NV_HOST_DEVICE __host__ __device__
#else
#define NV_HOST_DEVICE
#endif
#endif

namespace natverk {

namespace counter_rng_detail {
// One SplitMix64 output step on state z (the golden-ratio increment, then the finaliser).
NV_HOST_DEVICE inline uint64_t splitmix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
}  // namespace counter_rng_detail

// The per-seed half of the hash, splitmix64(seed): the same for every counter, so a kernel
// computes it once (dropout.cu hoists it out of its element loop).
NV_HOST_DEVICE inline uint64_t counter_key(uint64_t seed) { return counter_rng_detail::splitmix64(seed); }

// counter_uniform(seed, counter) given key = counter_key(seed).
NV_HOST_DEVICE inline double counter_uniform_keyed(uint64_t key, uint64_t counter) {
  const uint64_t bits = counter_rng_detail::splitmix64(key ^ (counter * 0xD1B54A32D192ED03ull));
  return static_cast<double>(bits >> 11) * 0x1.0p-53;
}

// A uniform double in [0, 1) from (seed, counter); 53 random bits.
NV_HOST_DEVICE inline double counter_uniform(uint64_t seed, uint64_t counter) {
  // Two rounds: hash the seed, then mix in the counter, so nearby seeds and
  // nearby counters give unrelated streams.
  return counter_uniform_keyed(counter_key(seed), counter);
}

}  // namespace natverk
