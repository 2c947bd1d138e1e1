// mlp_step.h -- one whole training step of the thesis' MATLAB network in one call:
// forward_propogation, back_propogation and the optimizer update (thesis §2.1-2.6,
// appendix C: Main's inner loop), with no Python between the layers.
//
// It calls exactly the kernels the step-by-step Python API calls, in the same order, so a
// fused step gives bit-identical weights to forward_propagation + back_propagation +
// gradient_descent_*:
//   forward:  psi = sum_l ||W_l||^2;  h_l = f(h_{l-1} W_l + b_l) (l < L);  z = h_{L-1} W_L + b_L
//             loss = mean softmax cross-entropy(z, y) + lambda/2 psi        (thesis eq. 27, 46)
//   backward: dz_L = (softmax(z) - onehot(y)) / m
//             dW_l = h_{l-1}^T dz_l + lambda W_l,  db_l = colsum(dz_l),
//             dz_{l-1} = (dz_l W_l^T) * f'(h_{l-1})
//   update:   every W_l then b_l, for l = 1..L, by the chosen optimizer (optimizers.h),
//             after all gradients exist (back-propagation reads the old weights).
// Work buffers live in a per-thread workspace reused across calls: a step allocates nothing
// once the first step of a given shape has run.
#pragma once
#include <cstdint>
#include <vector>

#include "activations/activations.h"

namespace natverk {

enum class MlpOptimizer { vanilla, momentum, rmsprop, adam };

struct MlpHyper {
  MlpOptimizer optimizer;
  double learning_rate, beta, beta1, beta2, eps, lambda;
  int64_t t;  // Adam's step count (>= 1), already incremented for this step
};

// Layer l (0-based) has W[l] (n[l] x n[l+1]) and b[l] (n[l+1]); state arrays shaped alike
// (null where the optimizer does not use them: v for momentum/Adam, s for RMSprop/Adam).
template <typename T>
struct MlpTensors {
  std::vector<T*> W, b, vW, vb, sW, sb;
  std::vector<int64_t> n;  // layer widths n[0..L]
};

// Returns the loss of the batch before the update (data loss + lambda/2 psi) and writes the
// data loss alone to *data_loss and psi to *psi (the balance principle uses both).
template <typename T>
double mlp_train_step(MlpTensors<T>& net, const T* X, const int64_t* y, int64_t m, Activation act,
                      const MlpHyper& hp, double* data_loss, double* psi);

}  // namespace natverk
