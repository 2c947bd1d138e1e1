// dropout.cpp -- see dropout.h.
#include "dropout/dropout.h"

#include "common/elementwise.h"

namespace natverk {

namespace {
inline uint64_t splitmix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
}  // namespace

double counter_uniform(uint64_t seed, uint64_t counter) {
  // Two rounds: hash the seed, then mix in the counter, so nearby seeds and
  // nearby counters give unrelated streams.
  const uint64_t bits = splitmix64(splitmix64(seed) ^ (counter * 0xD1B54A32D192ED03ull));
  return static_cast<double>(bits >> 11) * 0x1.0p-53;
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
