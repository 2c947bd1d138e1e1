// batchnorm.cpp -- see batchnorm.h for the formulas.
#include "batchnorm/batchnorm.h"

#include <cmath>
#include <cstring>

#include "common/cpu_features.h"
#include "common/lanes.h"
#include "common/parallel.h"

namespace natverk {

namespace {

// Each pass below is a loop over channels [c0, c1), written once (always_inline) and compiled
// once per SIMD level by NATVERK_BN_COPIES. The baseline x86-64 copy converts and adds two
// doubles at a time, and batch norm was 8 % of a VGG + BN (e) training step (AVX-512 CPU).
// The lanes of Lanes are fixed at kLanes whatever the vector width, no copy is given FMA, and
// this file is compiled with -ffp-contract=off (CMakeLists.txt): every SIMD level adds and
// multiplies the same values in the same order, so all give the same bits
// (tests/test_batchnorm_dropout.py).
template <typename T>
struct TrainArgs {
  T *y, *mean, *invstd, *running_mean, *running_var;
  const T *x, *gamma, *beta;
  int64_t N, C, S;
  double eps, momentum;
};

template <typename T>
struct EvalArgs {
  T* y;
  const T *x, *gamma, *beta, *running_mean, *running_var;
  int64_t N, C, S;
  double eps;
};

template <typename T>
struct BackwardArgs {
  T *dx, *dgamma, *dbeta;
  const T *dy, *x, *mean, *invstd, *gamma;
  int64_t N, C, S;
  bool training;
};

template <typename T>
__attribute__((always_inline)) inline void train_channels(const TrainArgs<T>& a, int64_t c0, int64_t c1) {
  T *y = a.y, *mean = a.mean, *invstd = a.invstd, *running_mean = a.running_mean, *running_var = a.running_var;
  const T *x = a.x, *gamma = a.gamma, *beta = a.beta;
  const int64_t N = a.N, C = a.C, S = a.S;
  const double eps = a.eps, momentum = a.momentum;
  const double M = static_cast<double>(N * S);
  // The first pass over a channel reads its N rows, S values each, C * S apart: for a 32 x 32
  // plane a new 4 KB page every row, where the hardware's stream prefetchers start again. So
  // each row's loop prefetches the next row (lanes.h, accumulate's pf), as the backward pass's
  // first loop does for both of its rows; the second and third passes find the channel in L2.
  // Measured on Zen 3, 1 thread, both cores busy with the A/B pair, ms: forward of 64 x 64 x
  // 32 x 32 6.1-7.0 -> 4.5-5.1, of 64 x 128 x 16 x 16 4.2-4.7 -> 3.0-3.6; backward 6.5-7.7 ->
  // 5.4-6.1 and 4.6-5.7 -> 3.6-4.7. Prefetches change no arithmetic: the same bits.
  {
    for (int64_t c = c0; c < c1; ++c) {
      Lanes sum;
      for (int64_t n = 0; n < N; ++n) {
        const T* p = x + (n * C + c) * S;
        accumulate(sum, p, S, [](auto v) NATVERK_INLINE_LAMBDA { return v; }, n + 1 < N ? p + C * S : nullptr);
      }
      const double mu = sum.total() / M;
      Lanes sq;  // two-pass variance: no cancellation
      for (int64_t n = 0; n < N; ++n) {
        const T* p = x + (n * C + c) * S;
        accumulate(sq, p, S, [mu](auto v) NATVERK_INLINE_LAMBDA {
          const auto d = v - mu;
          return d * d;
        });
      }
      const double var = sq.total() / M;
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
  }
}

// Evaluation's per-channel map y = x scale + shift (batchnorm_eval_affine), written once for
// batchnorm_forward_eval and for batchnorm_eval_row, the conv's evaluation epilogue.
template <typename T>
__attribute__((always_inline)) inline void eval_coefficients(double& scale, double& shift, T gamma, T beta, T mean,
                                                             T var, double eps) {
  const double is = 1.0 / std::sqrt(static_cast<double>(var) + eps);
  scale = gamma * is;
  shift = beta - mean * scale;
}

template <typename T>
__attribute__((always_inline)) inline void eval_span(T* q, const T* p, int64_t n, double scale, double shift) {
  for (int64_t s = 0; s < n; ++s) q[s] = static_cast<T>(p[s] * scale + shift);
}

template <typename T>
__attribute__((always_inline)) inline void eval_channels(const EvalArgs<T>& a, int64_t c0, int64_t c1) {
  T* y = a.y;
  const T *x = a.x, *gamma = a.gamma, *beta = a.beta, *running_mean = a.running_mean, *running_var = a.running_var;
  const int64_t N = a.N, C = a.C, S = a.S;
  const double eps = a.eps;
  {
    for (int64_t c = c0; c < c1; ++c) {
      double scale, shift;
      eval_coefficients<T>(scale, shift, gamma[c], beta[c], running_mean[c], running_var[c], eps);
      for (int64_t n = 0; n < N; ++n) eval_span(y + (n * C + c) * S, x + (n * C + c) * S, S, scale, shift);
    }
  }
}

// One row of the conv's evaluation epilogue: eval_span, then activation_forward's ReLU.
template <typename T>
struct RowArgs {
  T* y;
  const T* x;
  double scale, shift;
  bool relu;
};

template <typename T>
__attribute__((always_inline)) inline void eval_row(const RowArgs<T>& a, int64_t b, int64_t e) {
  eval_span(a.y + b, a.x + b, e - b, a.scale, a.shift);
  if (a.relu)
    for (int64_t s = b; s < e; ++s) {
      const T z = a.y[s];
      a.y[s] = (z > T(0) || z != z) ? z : T(0);
    }
}

template <typename T>
__attribute__((always_inline)) inline void backward_channels(const BackwardArgs<T>& a, int64_t c0, int64_t c1) {
  T *dx = a.dx, *dgamma = a.dgamma, *dbeta = a.dbeta;
  const T *dy = a.dy, *x = a.x, *mean = a.mean, *invstd = a.invstd, *gamma = a.gamma;
  const int64_t N = a.N, C = a.C, S = a.S;
  const bool training = a.training;
  const double M = static_cast<double>(N * S);
  {
    for (int64_t c = c0; c < c1; ++c) {
      const double mu = mean[c], is = invstd[c];
      Lanes lsdy, lsdyx;
      for (int64_t n = 0; n < N; ++n) {
        const T* p = x + (n * C + c) * S;
        const T* g = dy + (n * C + c) * S;
        accumulate2(
            lsdy, [](auto gv, auto) NATVERK_INLINE_LAMBDA { return gv; }, lsdyx,
            [mu, is](auto gv, auto pv) NATVERK_INLINE_LAMBDA { return gv * ((pv - mu) * is); }, g, p, S,
            n + 1 < N ? g + C * S : nullptr, n + 1 < N ? p + C * S : nullptr);
      }
      const double sdy = lsdy.total(), sdyx = lsdyx.total();
      if (dbeta) dbeta[c] = static_cast<T>(sdy);
      if (dgamma) dgamma[c] = static_cast<T>(sdyx);
      if (!dx) continue;
      const double k = gamma[c] * is;
      // k / M (M dy - sdy - x_hat sdyx) with x_hat = (x - mu) is, its constants taken out of
      // the loop: k dy - k sdy / M - (k is sdyx / M) (x - mu)
      const double c1 = k * sdy / M, c2 = k * is * sdyx / M;
      for (int64_t n = 0; n < N; ++n) {
        const T* p = x + (n * C + c) * S;
        const T* g = dy + (n * C + c) * S;
        T* q = dx + (n * C + c) * S;
        if (training) {
          for (int64_t s = 0; s < S; ++s) q[s] = static_cast<T>(k * g[s] - c1 - c2 * (p[s] - mu));
        } else {
          for (int64_t s = 0; s < S; ++s) q[s] = static_cast<T>(k * g[s]);
        }
      }
    }
  }
}

#define NATVERK_BN_COPIES(isa, attr)                                                   \
  template <typename A, void (*Body)(const A&, int64_t, int64_t)>                      \
  attr void channels_##isa(const A& a, int64_t c0, int64_t c1) {                       \
    Body(a, c0, c1);                                                                   \
  }
NATVERK_BN_COPIES(generic, )
#if defined(NATVERK_HAVE_X86_KERNELS)
NATVERK_BN_COPIES(avx2, __attribute__((target("avx2"))))
NATVERK_BN_COPIES(avx512, __attribute__((target("avx512f,avx512dq,avx512vl,avx512bw,avx2"))))
#endif
#undef NATVERK_BN_COPIES

// This SIMD level's copy of Body.
template <typename A, void (*Body)(const A&, int64_t, int64_t)>
auto level_copy() -> void (*)(const A&, int64_t, int64_t) {
#if defined(NATVERK_HAVE_X86_KERNELS)
  switch (simd_level()) {
    case SimdLevel::AVX512: return &channels_avx512<A, Body>;
    case SimdLevel::AVX2: return &channels_avx2<A, Body>;
    default: break;
  }
#endif
  return &channels_generic<A, Body>;
}

// Body over the C channels, split between the threads, in this SIMD level's copy.
template <typename A, void (*Body)(const A&, int64_t, int64_t)>
void run_channels(const A& a, int64_t C) {
  const auto f = level_copy<A, Body>();
  parallel_for(C, 1, [&](int64_t c0, int64_t c1, int) { f(a, c0, c1); });
}

}  // namespace

template <typename T>
void batchnorm_forward_train(T* y, T* mean, T* invstd, T* running_mean, T* running_var,
                             const T* x, const T* gamma, const T* beta, int64_t N, int64_t C,
                             int64_t S, double eps, double momentum) {
  const TrainArgs<T> a{y, mean, invstd, running_mean, running_var, x, gamma, beta, N, C, S, eps, momentum};
  run_channels<TrainArgs<T>, &train_channels<T>>(a, C);
}

template <typename T>
void batchnorm_forward_eval(T* y, const T* x, const T* gamma, const T* beta,
                            const T* running_mean, const T* running_var, int64_t N, int64_t C,
                            int64_t S, double eps) {
  const EvalArgs<T> a{y, x, gamma, beta, running_mean, running_var, N, C, S, eps};
  run_channels<EvalArgs<T>, &eval_channels<T>>(a, C);
}

template <typename T>
void batchnorm_eval_affine(double* scale, double* shift, const T* gamma, const T* beta, const T* running_mean,
                           const T* running_var, int64_t C, double eps) {
  for (int64_t c = 0; c < C; ++c)
    eval_coefficients<T>(scale[c], shift[c], gamma[c], beta[c], running_mean[c], running_var[c], eps);
}

template <typename T>
void batchnorm_eval_row(T* y, const T* x, int64_t n, double scale, double shift, bool relu) {
  const RowArgs<T> a{y, x, scale, shift, relu};
  level_copy<RowArgs<T>, &eval_row<T>>()(a, 0, n);  // one row, on the calling thread
}

template <typename T>
void batchnorm_backward(T* dx, T* dgamma, T* dbeta, const T* dy, const T* x, const T* mean,
                        const T* invstd, const T* gamma, int64_t N, int64_t C, int64_t S,
                        bool training) {
  const BackwardArgs<T> a{dx, dgamma, dbeta, dy, x, mean, invstd, gamma, N, C, S, training};
  run_channels<BackwardArgs<T>, &backward_channels<T>>(a, C);
}

#define NATVERK_INSTANTIATE(T)                                                                    \
  template void batchnorm_forward_train<T>(T*, T*, T*, T*, T*, const T*, const T*, const T*,      \
                                           int64_t, int64_t, int64_t, double, double);            \
  template void batchnorm_forward_eval<T>(T*, const T*, const T*, const T*, const T*, const T*,   \
                                          int64_t, int64_t, int64_t, double);                     \
  template void batchnorm_eval_affine<T>(double*, double*, const T*, const T*, const T*, const T*, int64_t, \
                                         double);                                                 \
  template void batchnorm_eval_row<T>(T*, const T*, int64_t, double, double, bool);               \
  template void batchnorm_backward<T>(T*, T*, T*, const T*, const T*, const T*, const T*,         \
                                      const T*, int64_t, int64_t, int64_t, bool);
NATVERK_INSTANTIATE(float)
NATVERK_INSTANTIATE(double)
#undef NATVERK_INSTANTIATE

}  // namespace natverk
