// dropout.cpp -- see dropout.h.
#include "dropout/dropout.h"

#include <initializer_list>

#include "common/elementwise.h"

namespace natverk {

// counter_uniform (the SplitMix64 counter hash) lives in counter_rng.h, shared with dropout.cu.

namespace {
// numpy/random/bit_generator.pyx: the constants and the two mixing functions of SeedSequence.
constexpr uint32_t kInitA = 0x43b0d7e5u, kMultA = 0x931e8875u;
constexpr uint32_t kInitB = 0x8b51f9ddu, kMultB = 0x58f38dedu;
constexpr uint32_t kMixMultL = 0xca01f9ddu, kMixMultR = 0x4973f715u;
constexpr int kXShift = 16;  // half the bits of a uint32
constexpr int kPoolSize = 4;

inline uint32_t hashmix(uint32_t value, uint32_t* hash_const) {
  value ^= *hash_const;
  *hash_const *= kMultA;
  value *= *hash_const;
  return value ^ (value >> kXShift);
}

inline uint32_t mix(uint32_t x, uint32_t y) {
  uint32_t r = kMixMultL * x - kMixMultR * y;
  return r ^ (r >> kXShift);
}
}  // namespace

uint64_t dropout_call_seed(uint64_t seed, uint64_t call) {
  // The entropy words: each integer as little-endian 32-bit words (0 is one word 0),
  // concatenated; two integers below 2^64 give at most four, the pool size.
  uint32_t entropy[4];
  int n = 0;
  for (uint64_t v : {seed, call}) {
    if (v == 0) entropy[n++] = 0;
    for (; v != 0; v >>= 32) entropy[n++] = static_cast<uint32_t>(v);
  }
  // mix_entropy: hash the words into the pool, then every pool word into every other.
  uint32_t hash_const = kInitA;
  uint32_t pool[kPoolSize];
  for (int i = 0; i < kPoolSize; ++i) pool[i] = hashmix(i < n ? entropy[i] : 0u, &hash_const);
  for (int src = 0; src < kPoolSize; ++src)
    for (int dst = 0; dst < kPoolSize; ++dst)
      if (src != dst) pool[dst] = mix(pool[dst], hashmix(pool[src], &hash_const));
  // generate_state(2): two words drawn from the pool in order.
  uint32_t out_const = kInitB, state[2];
  for (int i = 0; i < 2; ++i) {
    uint32_t v = pool[i] ^ out_const;
    out_const *= kMultB;
    v *= out_const;
    state[i] = v ^ (v >> kXShift);
  }
  return (static_cast<uint64_t>(state[0]) << 32) | state[1];
}

template <typename T>
void dropout_forward(T* y, uint8_t* mask, const T* x, int64_t n, double p, uint64_t seed) {
  const T scale = static_cast<T>(p < 1 ? 1.0 / (1.0 - p) : 0.0);
  parallel_elementwise(n, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const bool keep = counter_uniform(seed, static_cast<uint64_t>(i)) >= p;
      mask[i] = keep ? 1 : 0;
      y[i] = keep ? x[i] * scale : T(0);
    }
  });
}

template <typename T>
void dropout_backward(T* dx, const T* dy, const uint8_t* mask, int64_t n, double p) {
  const T scale = static_cast<T>(p < 1 ? 1.0 / (1.0 - p) : 0.0);
  parallel_elementwise(n, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) dx[i] = mask[i] ? dy[i] * scale : T(0);
  });
}

template void dropout_forward<float>(float*, uint8_t*, const float*, int64_t, double, uint64_t);
template void dropout_forward<double>(double*, uint8_t*, const double*, int64_t, double, uint64_t);
template void dropout_backward<float>(float*, const float*, const uint8_t*, int64_t, double);
template void dropout_backward<double>(double*, const double*, const uint8_t*, int64_t, double);

}  // namespace natverk
