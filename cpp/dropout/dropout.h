// dropout.h -- inverted dropout (thesis §2.4.2; seed 002): in training each
// element is kept with probability 1 - p and scaled by 1 / (1 - p), so the
// expected activation is unchanged and evaluation is the identity.
//
//   mask[i] = u(seed, i) >= p,   y = x * mask / (1 - p),   dx = dy * mask / (1 - p)
//
// u(seed, i) is a counter-based uniform in [0, 1): a SplitMix64 hash of
// (seed, i) (Steele, Lea & Flood 2014), so element i's decision depends only on
// the seed and its index -- reproducible, and independent of the thread count
// and of how the work is split.
#pragma once
#include <cstdint>

// counter_uniform(seed, counter): a uniform double in [0, 1) from (seed, counter), 53 random
// bits. Defined inline (host and device) in counter_rng.h, which the CUDA twin shares.
#include "dropout/counter_rng.h"

namespace natverk {

// The kernel seed of the Dropout layer's training call number `call` (python/natverk/layers/
// dropout.py, Dropout.call_seed): NumPy's SeedSequence([seed, call]).generate_state(2, uint32)
// as (state[0] << 32) | state[1]. SeedSequence is O'Neill's seed_seq hash with a pool of four
// 32-bit words (numpy/random/bit_generator.pyx); ported word for word so that the step plan
// (cpp/plan/) draws the very masks the Python layer draws, with no Python between batches.
uint64_t dropout_call_seed(uint64_t seed, uint64_t call);

template <typename T>
void dropout_forward(T* y, uint8_t* mask, const T* x, int64_t n, double p, uint64_t seed);

template <typename T>
void dropout_backward(T* dx, const T* dy, const uint8_t* mask, int64_t n, double p);

}  // namespace natverk

// The CUDA twin (dropout.cu), on device pointers, queued on natverk::cuda::stream(). The mask
// is bit for bit the CPU's for the same seed (both use counter_rng.h); y may alias x, dx dy.
namespace natverk {
namespace cuda {
template <typename T>
void dropout_forward(T* y, uint8_t* mask, const T* x, int64_t n, double p, uint64_t seed);

template <typename T>
void dropout_backward(T* dx, const T* dy, const uint8_t* mask, int64_t n, double p);
}  // namespace cuda
}  // namespace natverk
