// batchnorm.cpp -- see batchnorm.h for the formulas.
#include "batchnorm/batchnorm.h"

#include <cmath>

#include "common/parallel.h"

namespace natverk {

template <typename T>
void batchnorm_forward_train(T* y, T* mean, T* invstd, T* running_mean, T* running_var,
                             const T* x, const T* gamma, const T* beta, int64_t N, int64_t C,
                             int64_t S, double eps, double momentum) {
  const double M = static_cast<double>(N * S);
  parallel_for(C, 1, [&](int64_t c0, int64_t c1, int) {
    for (int64_t c = c0; c < c1; ++c) {
      double sum = 0;
      for (int64_t n = 0; n < N; ++n) {
        const T* p = x + (n * C + c) * S;
        for (int64_t s = 0; s < S; ++s) sum += p[s];
      }
      const double mu = sum / M;
      double sq = 0;  // two-pass variance: no cancellation
      for (int64_t n = 0; n < N; ++n) {
        const T* p = x + (n * C + c) * S;
        for (int64_t s = 0; s < S; ++s) {
          const double d = p[s] - mu;
          sq += d * d;
        }
      }
      const double var = sq / M;
      const double is = 1.0 / std::sqrt(var + eps);
      mean[c] = static_cast<T>(mu);
      invstd[c] = static_cast<T>(is);
      if (running_mean) running_mean[c] = static_cast<T>((1 - momentum) * running_mean[c] + momentum * mu);
      if (running_var) {
        const double unbiased = M > 1 ? var * M / (M - 1) : var;
        running_var[c] = static_cast<T>((1 - momentum) * running_var[c] + momentum * unbiased);
      }
      const double scale = gamma[c] * is, shift = beta[c] - mu * scale;
      for (int64_t n = 0; n < N; ++n) {
        const T* p = x + (n * C + c) * S;
        T* q = y + (n * C + c) * S;
        for (int64_t s = 0; s < S; ++s) q[s] = static_cast<T>(p[s] * scale + shift);
      }
    }
  });
}

template <typename T>
void batchnorm_forward_eval(T* y, const T* x, const T* gamma, const T* beta,
                            const T* running_mean, const T* running_var, int64_t N, int64_t C,
                            int64_t S, double eps) {
  parallel_for(C, 1, [&](int64_t c0, int64_t c1, int) {
    for (int64_t c = c0; c < c1; ++c) {
      const double is = 1.0 / std::sqrt(static_cast<double>(running_var[c]) + eps);
      const double scale = gamma[c] * is, shift = beta[c] - running_mean[c] * scale;
      for (int64_t n = 0; n < N; ++n) {
        const T* p = x + (n * C + c) * S;
        T* q = y + (n * C + c) * S;
        for (int64_t s = 0; s < S; ++s) q[s] = static_cast<T>(p[s] * scale + shift);
      }
    }
  });
}

template <typename T>
void batchnorm_backward(T* dx, T* dgamma, T* dbeta, const T* dy, const T* x, const T* mean,
                        const T* invstd, const T* gamma, int64_t N, int64_t C, int64_t S,
                        bool training) {
  const double M = static_cast<double>(N * S);
  parallel_for(C, 1, [&](int64_t c0, int64_t c1, int) {
    for (int64_t c = c0; c < c1; ++c) {
      const double mu = mean[c], is = invstd[c];
      double sdy = 0, sdyx = 0;
      for (int64_t n = 0; n < N; ++n) {
        const T* p = x + (n * C + c) * S;
        const T* g = dy + (n * C + c) * S;
        for (int64_t s = 0; s < S; ++s) {
          sdy += g[s];
          sdyx += g[s] * ((p[s] - mu) * is);
        }
      }
      if (dbeta) dbeta[c] = static_cast<T>(sdy);
      if (dgamma) dgamma[c] = static_cast<T>(sdyx);
      if (!dx) continue;
      const double k = gamma[c] * is;
      for (int64_t n = 0; n < N; ++n) {
        const T* p = x + (n * C + c) * S;
        const T* g = dy + (n * C + c) * S;
        T* q = dx + (n * C + c) * S;
        if (training) {
          for (int64_t s = 0; s < S; ++s) {
            const double xh = (p[s] - mu) * is;
            q[s] = static_cast<T>(k / M * (M * g[s] - sdy - xh * sdyx));
          }
        } else {
          for (int64_t s = 0; s < S; ++s) q[s] = static_cast<T>(k * g[s]);
        }
      }
    }
  });
}

#define NATVERK_INSTANTIATE(T)                                                                    \
  template void batchnorm_forward_train<T>(T*, T*, T*, T*, T*, const T*, const T*, const T*,      \
                                           int64_t, int64_t, int64_t, double, double);            \
  template void batchnorm_forward_eval<T>(T*, const T*, const T*, const T*, const T*, const T*,   \
                                          int64_t, int64_t, int64_t, double);                     \
  template void batchnorm_backward<T>(T*, T*, T*, const T*, const T*, const T*, const T*,         \
                                      const T*, int64_t, int64_t, int64_t, bool);
NATVERK_INSTANTIATE(float)
NATVERK_INSTANTIATE(double)
#undef NATVERK_INSTANTIATE

}  // namespace natverk
