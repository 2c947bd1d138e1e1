// losses.cpp -- see losses.h for the formulas and conventions.
#include "losses/losses.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/elementwise.h"

namespace natverk {

void check_labels(const int64_t* y, int64_t m, int64_t K) {
  for (int64_t i = 0; i < m; ++i)
    if (y[i] < 0 || y[i] >= K)
      throw std::invalid_argument("y[" + std::to_string(i) + "] = " + std::to_string(y[i]) +
                                  " is not a class label in 0.." + std::to_string(K - 1));
}

namespace {

// Deterministic parallel sum: each chunk sums its range in order, then the
// per-chunk partials are added in chunk order. The split depends only on n
// and the thread count, so a result is reproducible for a given thread count.
template <typename F>
double parallel_sum(int64_t n, int64_t grain, F&& term_range) {
  const int chunks = plan_chunks(n, grain);
  if (chunks <= 1) return n > 0 ? term_range(0, n) : 0.0;
  std::vector<double> partial(static_cast<size_t>(chunks), 0.0);
  parallel_for_chunks(n, chunks, [&](int64_t b, int64_t e, int c) { partial[c] = term_range(b, e); });
  double s = 0;
  for (double p : partial) s += p;
  return s;
}

template <typename T>
double weight_total(const int64_t* y, const T* w, int64_t m) {
  if (!w) return static_cast<double>(m);
  double s = 0;
  for (int64_t i = 0; i < m; ++i) s += static_cast<double>(w[y[i]]);
  return s;
}

}  // namespace

template <typename T>
double softmax_cross_entropy_forward(T* probs, const T* z, const int64_t* y,
                                     const T* class_weights, int64_t m, int64_t K) {
  check_labels(y, m, K);
  const double wsum = weight_total(y, class_weights, m);
  if (!(wsum > 0)) throw std::invalid_argument("class_weights of the labels present sum to zero");
  const double total = parallel_sum(m, kElementwiseGrain / (K > 0 ? K : 1) + 1, [&](int64_t b, int64_t e) {
    double s = 0;
    for (int64_t r = b; r < e; ++r) {
      const T* zr = z + r * K;
      T* pr = probs + r * K;
      T mx = zr[0];
      for (int64_t j = 1; j < K; ++j) mx = zr[j] > mx ? zr[j] : mx;
      double sum = 0;
      for (int64_t j = 0; j < K; ++j) {
        pr[j] = std::exp(zr[j] - mx);
        sum += pr[j];
      }
      const T tsum = static_cast<T>(sum);
      for (int64_t j = 0; j < K; ++j) pr[j] /= tsum;
      // -log p_y = log(sum e^(z - max)) - (z_y - max)
      const double nll = std::log(sum) - static_cast<double>(zr[y[r]] - mx);
      s += (class_weights ? static_cast<double>(class_weights[y[r]]) : 1.0) * nll;
    }
    return s;
  });
  return total / wsum;
}

template <typename T>
void softmax_cross_entropy_backward(T* dz, const T* probs, const int64_t* y,
                                    const T* class_weights, int64_t m, int64_t K) {
  check_labels(y, m, K);
  const double wsum = weight_total(y, class_weights, m);
  if (!(wsum > 0)) throw std::invalid_argument("class_weights of the labels present sum to zero");
  parallel_for(m, kElementwiseGrain / (K > 0 ? K : 1) + 1, [&](int64_t b, int64_t e, int) {
    for (int64_t r = b; r < e; ++r) {
      const T scale = static_cast<T>((class_weights ? static_cast<double>(class_weights[y[r]]) : 1.0) / wsum);
      const T* pr = probs + r * K;
      T* dr = dz + r * K;
      for (int64_t j = 0; j < K; ++j) dr[j] = pr[j] * scale;
      dr[y[r]] = (pr[y[r]] - T(1)) * scale;
    }
  });
}

template <typename T>
double mse_forward(const T* pred, const T* target, int64_t m, int64_t n, bool mean) {
  const double s = parallel_sum(m * n, kElementwiseGrain, [&](int64_t b, int64_t e) {
    double acc = 0;
    for (int64_t i = b; i < e; ++i) {
      const double d = static_cast<double>(pred[i]) - static_cast<double>(target[i]);
      acc += d * d;
    }
    return acc;
  });
  return 0.5 * s / (mean ? static_cast<double>(m) : 1.0);
}

template <typename T>
void mse_backward(T* dpred, const T* pred, const T* target, int64_t m, int64_t n, bool mean) {
  const T scale = static_cast<T>(mean ? 1.0 / static_cast<double>(m) : 1.0);
  parallel_elementwise(m * n, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) dpred[i] = (pred[i] - target[i]) * scale;
  });
}

namespace {
template <typename T>
void check_unit_interval(const T* x, int64_t n, const char* what) {
  for (int64_t i = 0; i < n; ++i)
    if (!(x[i] >= T(0) && x[i] <= T(1)))
      throw std::invalid_argument(std::string(what) + "[" + std::to_string(i) +
                                  "] is not in [0, 1] (binary cross-entropy needs probabilities)");
}
}  // namespace

template <typename T>
double bce_forward(const T* pred, const T* target, int64_t m, int64_t n, bool mean) {
  check_unit_interval(pred, m * n, "pred");
  check_unit_interval(target, m * n, "target");
  const double s = parallel_sum(m * n, kElementwiseGrain, [&](int64_t b, int64_t e) {
    double acc = 0;
    for (int64_t i = b; i < e; ++i) {
      const double p = pred[i], t = target[i];
      const double lp = std::max(std::log(p), -100.0);
      const double l1p = std::max(std::log1p(-p), -100.0);
      acc -= t * lp + (1.0 - t) * l1p;
    }
    return acc;
  });
  return s / (mean ? static_cast<double>(m) : 1.0);
}

template <typename T>
void bce_backward(T* dpred, const T* pred, const T* target, int64_t m, int64_t n, bool mean) {
  check_unit_interval(pred, m * n, "pred");
  check_unit_interval(target, m * n, "target");
  const double scale = mean ? 1.0 / static_cast<double>(m) : 1.0;
  parallel_elementwise(m * n, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const double p = pred[i], t = target[i];
      dpred[i] = static_cast<T>((p - t) / std::max(p * (1.0 - p), 1e-12) * scale);
    }
  });
}

template <typename T>
double bce_with_logits_forward(const T* z, const T* target, int64_t m, int64_t n, bool mean) {
  check_unit_interval(target, m * n, "target");
  const double s = parallel_sum(m * n, kElementwiseGrain, [&](int64_t b, int64_t e) {
    double acc = 0;
    for (int64_t i = b; i < e; ++i) {
      const double x = z[i], t = target[i];
      acc += std::max(x, 0.0) - x * t + std::log1p(std::exp(-std::fabs(x)));
    }
    return acc;
  });
  return s / (mean ? static_cast<double>(m) : 1.0);
}

template <typename T>
void bce_with_logits_backward(T* dz, const T* z, const T* target, int64_t m, int64_t n, bool mean) {
  check_unit_interval(target, m * n, "target");
  const double scale = mean ? 1.0 / static_cast<double>(m) : 1.0;
  parallel_elementwise(m * n, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const double x = z[i];
      const double sig = x >= 0 ? 1.0 / (1.0 + std::exp(-x)) : std::exp(x) / (1.0 + std::exp(x));
      dz[i] = static_cast<T>((sig - static_cast<double>(target[i])) * scale);
    }
  });
}

template <typename T>
double sum_of_squares(const T* w, int64_t n) {
  return parallel_sum(n, kElementwiseGrain, [&](int64_t b, int64_t e) {
    // Eight independent partial sums (added in a fixed order at the end): one running sum is
    // a chain of dependent adds, four cycles each; eight hide that latency and vectorise.
    double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t i = b;
    for (; i + 8 <= e; i += 8)
      for (int k = 0; k < 8; ++k) acc[k] += static_cast<double>(w[i + k]) * static_cast<double>(w[i + k]);
    double tail = 0;
    for (; i < e; ++i) tail += static_cast<double>(w[i]) * static_cast<double>(w[i]);
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])) + tail;
  });
}

#define NATVERK_INSTANTIATE(T)                                                                    \
  template double softmax_cross_entropy_forward<T>(T*, const T*, const int64_t*, const T*,         \
                                                   int64_t, int64_t);                             \
  template void softmax_cross_entropy_backward<T>(T*, const T*, const int64_t*, const T*, int64_t, \
                                                  int64_t);                                        \
  template double mse_forward<T>(const T*, const T*, int64_t, int64_t, bool);                      \
  template void mse_backward<T>(T*, const T*, const T*, int64_t, int64_t, bool);                   \
  template double bce_forward<T>(const T*, const T*, int64_t, int64_t, bool);                      \
  template void bce_backward<T>(T*, const T*, const T*, int64_t, int64_t, bool);                   \
  template double bce_with_logits_forward<T>(const T*, const T*, int64_t, int64_t, bool);          \
  template void bce_with_logits_backward<T>(T*, const T*, const T*, int64_t, int64_t, bool);       \
  template double sum_of_squares<T>(const T*, int64_t);
NATVERK_INSTANTIATE(float)
NATVERK_INSTANTIATE(double)
#undef NATVERK_INSTANTIATE

}  // namespace natverk
