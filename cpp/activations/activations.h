// activations.h -- elementwise activations and softmax (thesis §2.2, seed 001 §4.2.5).
//
//   relu(z) = max(0, z)           relu'    = [z > 0]       = [h > 0]
//   sigmoid(z) = 1 / (1 + e^-z)    sigmoid' = h (1 - h)
//   tanh(z)                        tanh'    = 1 - h^2
//   softmax(z)_k = e^(z_k - max z) / sum_j e^(z_j - max z)   (row-wise, stable)
//
// Backward passes are written in terms of the OUTPUT h (as the MATLAB
// back_propogation does), so a layer only has to keep h. dz overwrites; out
// may alias in, dz may alias dh. NaN propagates (relu(NaN) = NaN, unlike
// MATLAB's max(0, NaN) = 0, so a NaN never hides as a zero).
#pragma once
#include <cstdint>
#include <string>

namespace natverk {

enum class Activation { Identity, ReLU, Sigmoid, Tanh };

Activation parse_activation(const std::string& name);  // throws std::invalid_argument
const char* activation_name(Activation a);

// out[i] = f(in[i]), i < n
template <typename T>
void activation_forward(T* out, const T* in, int64_t n, Activation act);

// dz[i] = dh[i] * f'(z[i]) computed from h[i] = f(z[i])
template <typename T>
void activation_backward(T* dz, const T* dh, const T* h, int64_t n, Activation act);

// ReLU's backward over n elements, on the calling thread: dz[i] = h[i] > 0 ? dh[i] : 0.
// activation_backward runs it per chunk; the max-pool backward runs it on the pooled output
// of a ReLU fused into the pooling (pool2d.h). dh is loaded unconditionally, so the loop
// vectorises (a select).
template <typename T>
inline void relu_backward_serial(T* dz, const T* dh, const T* h, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const T g = dh[i];
    dz[i] = h[i] > T(0) ? g : T(0);
  }
}

// probs (rows x cols) = softmax of each row of z
template <typename T>
void softmax_forward(T* probs, const T* z, int64_t rows, int64_t cols);

}  // namespace natverk

// The CUDA twins (activations.cu): the same signatures on device pointers, queued on
// natverk::cuda::stream(); same aliasing rules (out may alias in, dz may alias dh).
namespace natverk {
namespace cuda {

template <typename T>
void activation_forward(T* out, const T* in, int64_t n, Activation act);

template <typename T>
void activation_backward(T* dz, const T* dh, const T* h, int64_t n, Activation act);

template <typename T>
void softmax_forward(T* probs, const T* z, int64_t rows, int64_t cols);

// softmax_forward, and with rowloss != nullptr also each row's weighted negative
// log-likelihood rowloss[r] = w[y_r] * (logsumexp(z_r) - z_r[y_r]) (w = 1 when class_weights
// is null) for softmax cross-entropy (losses.cu). A row whose label is outside 0..cols-1 gets
// 0 and is never indexed with it: the caller checks the labels and reports them.
template <typename T>
void softmax_rows(T* probs, const T* z, int64_t rows, int64_t cols, const int64_t* y,
                  const T* class_weights, double* rowloss);

}  // namespace cuda
}  // namespace natverk
