// optimizers.cpp -- see optimizers.h for the update rules.
#include "optimizers/optimizers.h"

#include <cmath>
#include <stdexcept>

#include "common/elementwise.h"

namespace natverk {

// kLocalConstants: every loop below copies its constants into locals first. Captured by
// reference they are T objects in memory, which a store to w[i] (also a T) might overwrite as
// far as the compiler can tell: it reloaded each one every iteration and left the loop scalar
// (Adam was 3/4 of a spiral-network step). Copied, the loop vectorises (with a run-time check
// that w, v, s, g do not overlap); every element sees the same operations in the same order,
// so the results are bit for bit those of the scalar loop.

template <typename T>
void sgd_update(T* w, const T* g, int64_t n, double lr, double weight_decay) {
  const T a = static_cast<T>(lr), wd = static_cast<T>(weight_decay);
  parallel_elementwise(n, [&](int64_t b, int64_t e) {
    const T a_ = a, wd_ = wd;  // locals: see kLocalConstants
    for (int64_t i = b; i < e; ++i) w[i] -= a_ * (g[i] + wd_ * w[i]);
  });
}

template <typename T>
void momentum_update(T* w, T* v, const T* g, int64_t n, double lr, double beta,
                     double weight_decay) {
  const T a = static_cast<T>(lr), b1 = static_cast<T>(beta), c1 = static_cast<T>(1.0 - beta);
  const T wd = static_cast<T>(weight_decay);
  parallel_elementwise(n, [&](int64_t b, int64_t e) {
    const T a_ = a, b1_ = b1, c1_ = c1, wd_ = wd;  // locals: see kLocalConstants
    for (int64_t i = b; i < e; ++i) {
      const T gi = g[i] + wd_ * w[i];
      v[i] = b1_ * v[i] + c1_ * gi;
      w[i] -= a_ * v[i];
    }
  });
}

template <typename T>
void rmsprop_update(T* w, T* s, const T* g, int64_t n, double lr, double beta2, double eps,
                    double weight_decay) {
  const T a = static_cast<T>(lr), b2 = static_cast<T>(beta2), c2 = static_cast<T>(1.0 - beta2);
  const T ep = static_cast<T>(eps), wd = static_cast<T>(weight_decay);
  parallel_elementwise(n, [&](int64_t b, int64_t e) {
    const T a_ = a, b2_ = b2, c2_ = c2, ep_ = ep, wd_ = wd;  // locals: see kLocalConstants
    for (int64_t i = b; i < e; ++i) {
      const T gi = g[i] + wd_ * w[i];
      s[i] = b2_ * s[i] + c2_ * gi * gi;
      w[i] -= a_ * gi / (std::sqrt(s[i]) + ep_);
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
    const T a_ = a, b1_ = b1, c1_ = c1, b2_ = b2, c2_ = c2;  // locals: see kLocalConstants
    const T ep_ = ep, wd_ = wd, corr1_ = corr1, corr2_ = corr2;
    for (int64_t i = b; i < e; ++i) {
      const T gi = g[i] + wd_ * w[i];
      v[i] = b1_ * v[i] + c1_ * gi;
      s[i] = b2_ * s[i] + c2_ * gi * gi;
      w[i] -= a_ * (v[i] / corr1_) / (std::sqrt(s[i] / corr2_) + ep_);
    }
  });
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

#define NATVERK_INSTANTIATE(T)                                                              \
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
