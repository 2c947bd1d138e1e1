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
#include <string>

#include "gemm/gemm.h"

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

// ----------------------------------------------------------------------------------------------
// The one dispatch: optimizer by kind (the canonical names of python/natverk/optimizers/table.py).
// Every C++ caller that updates by name (the step plan, cpp/plan/) goes through here, so the
// choice of kernel and which state arrays it reads lives in one place.

enum class OptimizerKind { sgd, momentum, rmsprop, adam };

// Throws std::invalid_argument for anything but "sgd", "momentum", "rmsprop", "adam".
OptimizerKind parse_optimizer_kind(const std::string& name);
const char* optimizer_kind_name(OptimizerKind kind);
// Which state arrays the kind reads and writes: v (first moment), s (second moment).
inline bool optimizer_uses_v(OptimizerKind k) { return k == OptimizerKind::momentum || k == OptimizerKind::adam; }
inline bool optimizer_uses_s(OptimizerKind k) { return k == OptimizerKind::rmsprop || k == OptimizerKind::adam; }

// lr the learning rate; beta momentum's; beta1/beta2 Adam's moments (beta2 RMSprop's too);
// eps the divisor guard; t Adam's step count (>= 1), already incremented for this step.
struct OptimizerHyper {
  double lr, beta, beta1, beta2, eps;
  int64_t t;
};

// One in-place update of w (n elements) with gradient g by `kind`; v and s may be null where
// the kind does not use them. weight_decay adds the thesis' L2 gradient wd * w (eq. 9) first.
template <typename T>
void optimizer_update(OptimizerKind kind, T* w, T* v, T* s, const T* g, int64_t n,
                      const OptimizerHyper& hp, double weight_decay);

// The same update applied tile by tile as a GEMM produces the gradient (gemm.h, gemm_update):
// w, v, s are the parameter's arrays as rows of ld elements (v/s null where the kind does not use
// them), and each tile of g updates the elements at its place. Every element gets exactly the
// operations optimizer_update gives it (the same loop of the same SIMD level), so a plan step
// with the fused update gives the same bits as one without (tests/test_plan.py).
template <typename T>
GemmTileUpdate<T> make_tile_update(OptimizerKind kind, T* w, T* v, T* s, int64_t ld, const OptimizerHyper& hp,
                                   double weight_decay, T l2);

}  // namespace natverk

// The CUDA twins (optimizers.cu), on device pointers, queued on natverk::cuda::stream(): the
// same update rules, hyper-parameter casts and bias corrections, operation by operation.
namespace natverk {
namespace cuda {
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

// natverk::optimizer_update's dispatch on the GPU (the CUDA step plan calls this one).
template <typename T>
void optimizer_update(OptimizerKind kind, T* w, T* v, T* s, const T* g, int64_t n,
                      const OptimizerHyper& hp, double weight_decay);
}  // namespace cuda
}  // namespace natverk
