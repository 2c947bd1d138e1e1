// optimizers.h -- in-place parameter updates (thesis §2.6, eq. 33-36; MATLAB
// gradient_descent_vanilla / _momentum / _adam). g is the gradient; with
// weight_decay > 0 the thesis' L2 gradient is added first: g <- g + wd * w.
//
//   vanilla:   w -= lr g
//   momentum:  v = beta v + (1 - beta) g;               w -= lr v
//   RMSprop:   s = beta2 s + (1 - beta2) g^2;           w -= lr g / (sqrt(s) + eps)
//   Adam:      v = beta1 v + (1 - beta1) g;  s = beta2 s + (1 - beta2) g^2
//              w -= lr (v / (1 - beta1^t)) / (sqrt(s / (1 - beta2^t)) + eps)
//
// w, v, s are updated in place; g is read only. t >= 1 counts Adam steps.
// NaN in g propagates into w (as in every framework); the Python layer
// checks gradients before calling when asked to.
#pragma once
#include <cstdint>

namespace natverk {

template <typename T>
void sgd_update(T* w, const T* g, int64_t n, double lr, double weight_decay);

template <typename T>
void momentum_update(T* w, T* v, const T* g, int64_t n, double lr, double beta,
                     double weight_decay);

template <typename T>
void rmsprop_update(T* w, T* s, const T* g, int64_t n, double lr, double beta2, double eps,
                    double weight_decay);

template <typename T>
void adam_update(T* w, T* v, T* s, const T* g, int64_t n, double lr, double beta1, double beta2,
                 int64_t t, double eps, double weight_decay);

}  // namespace natverk
