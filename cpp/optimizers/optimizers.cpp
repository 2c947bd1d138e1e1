// optimizers.cpp -- see optimizers.h for the update rules.
#include "optimizers/optimizers.h"

#include <cmath>

#include "common/elementwise.h"

namespace natverk {

template <typename T>
void sgd_update(T* w, const T* g, int64_t n, double lr, double weight_decay) {
  const T a = static_cast<T>(lr), wd = static_cast<T>(weight_decay);
  parallel_elementwise(n, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) w[i] -= a * (g[i] + wd * w[i]);
  });
}

template <typename T>
void momentum_update(T* w, T* v, const T* g, int64_t n, double lr, double beta,
                     double weight_decay) {
  const T a = static_cast<T>(lr), b1 = static_cast<T>(beta), c1 = static_cast<T>(1.0 - beta);
  const T wd = static_cast<T>(weight_decay);
  parallel_elementwise(n, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const T gi = g[i] + wd * w[i];
      v[i] = b1 * v[i] + c1 * gi;
      w[i] -= a * v[i];
    }
  });
}

template <typename T>
void rmsprop_update(T* w, T* s, const T* g, int64_t n, double lr, double beta2, double eps,
                    double weight_decay) {
  const T a = static_cast<T>(lr), b2 = static_cast<T>(beta2), c2 = static_cast<T>(1.0 - beta2);
  const T ep = static_cast<T>(eps), wd = static_cast<T>(weight_decay);
  parallel_elementwise(n, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const T gi = g[i] + wd * w[i];
      s[i] = b2 * s[i] + c2 * gi * gi;
      w[i] -= a * gi / (std::sqrt(s[i]) + ep);
    }
  });
}

template <typename T>
void adam_update(T* w, T* v, T* s, const T* g, int64_t n, double lr, double beta1, double beta2,
                 int64_t t, double eps, double weight_decay) {
  const T a = static_cast<T>(lr), ep = static_cast<T>(eps), wd = static_cast<T>(weight_decay);
  const T b1 = static_cast<T>(beta1), c1 = static_cast<T>(1.0 - beta1);
  const T b2 = static_cast<T>(beta2), c2 = static_cast<T>(1.0 - beta2);
  // Bias corrections in double: 1 - beta^t loses digits in float for small t.
  const T corr1 = static_cast<T>(1.0 - std::pow(beta1, static_cast<double>(t)));
  const T corr2 = static_cast<T>(1.0 - std::pow(beta2, static_cast<double>(t)));
  parallel_elementwise(n, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const T gi = g[i] + wd * w[i];
      v[i] = b1 * v[i] + c1 * gi;
      s[i] = b2 * s[i] + c2 * gi * gi;
      w[i] -= a * (v[i] / corr1) / (std::sqrt(s[i] / corr2) + ep);
    }
  });
}

#define NATVERK_INSTANTIATE(T)                                                              \
  template void sgd_update<T>(T*, const T*, int64_t, double, double);                      \
  template void momentum_update<T>(T*, T*, const T*, int64_t, double, double, double);     \
  template void rmsprop_update<T>(T*, T*, const T*, int64_t, double, double, double, double); \
  template void adam_update<T>(T*, T*, T*, const T*, int64_t, double, double, double, int64_t, \
                               double, double);
NATVERK_INSTANTIATE(float)
NATVERK_INSTANTIATE(double)
#undef NATVERK_INSTANTIATE

}  // namespace natverk
