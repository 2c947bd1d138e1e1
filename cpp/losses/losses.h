// losses.h -- data losses and their gradients, plus the L2 penalty
// (thesis §2.3-2.4 and appendix B.2; MATLAB forward_propogation lines 28-35).
//
// Rows are examples (m of them). Each loss returns a double (accumulated in
// double whatever T is) and its gradient overwrites its output.
//
// softmax cross-entropy, labels y_i in 0..K-1, optional class weights w
// (the ISIC experiment's [1, 10]); with w absent every w = 1:
//   loss = sum_i w[y_i] * (logsumexp(z_i) - z_i[y_i]) / sum_i w[y_i]
//   dz_i = w[y_i] * (softmax(z_i) - onehot(y_i)) / sum_i w[y_i]
// (PyTorch's weighted mean; without weights this is the thesis' mean over m.)
// -log p is taken as logsumexp - z, so it stays finite where p underflows.
//
// MSE:  loss = 1/2 sum_ij (p_ij - t_ij)^2  (/ m when mean)   dp = (p - t) (/ m)
// BCE on probabilities p in [0, 1] (PyTorch BCELoss conventions: each log
//   clamped at -100; gradient (p - t) / max(p (1 - p), 1e-12)):
//   loss = -sum_ij [t log p + (1 - t) log(1 - p)]  (/ m when mean)
// BCE on logits z (stable):  loss = sum max(z, 0) - z t + log(1 + e^-|z|)
//   dz = sigmoid(z) - t  (/ m when mean)
// L2 penalty: lambda/2 * sum W^2 is lambda/2 * sum_of_squares(W).
#pragma once
#include <cstdint>

namespace natverk {

// Throws std::invalid_argument naming the first label outside 0..K-1.
void check_labels(const int64_t* y, int64_t m, int64_t K);

template <typename T>
double softmax_cross_entropy_forward(T* probs, const T* z, const int64_t* y,
                                     const T* class_weights, int64_t m, int64_t K);
template <typename T>
void softmax_cross_entropy_backward(T* dz, const T* probs, const int64_t* y,
                                    const T* class_weights, int64_t m, int64_t K);

template <typename T>
double mse_forward(const T* pred, const T* target, int64_t m, int64_t n, bool mean);
template <typename T>
void mse_backward(T* dpred, const T* pred, const T* target, int64_t m, int64_t n, bool mean);

template <typename T>
double bce_forward(const T* pred, const T* target, int64_t m, int64_t n, bool mean);
template <typename T>
void bce_backward(T* dpred, const T* pred, const T* target, int64_t m, int64_t n, bool mean);

template <typename T>
double bce_with_logits_forward(const T* z, const T* target, int64_t m, int64_t n, bool mean);
template <typename T>
void bce_with_logits_backward(T* dz, const T* z, const T* target, int64_t m, int64_t n, bool mean);

template <typename T>
double sum_of_squares(const T* w, int64_t n);

}  // namespace natverk

// The CUDA twins (losses.cu): the same signatures on device pointers (y included), queued on
// natverk::cuda::stream(). A forward returns its double after one synchronisation. The checks
// of the CPU kernels (labels in 0..K-1, BCE inputs in [0, 1], class weights of the present
// labels summing to > 0) run on the device inside the reduction and throw the CPU's
// std::invalid_argument; the gradients that check therefore synchronise once as well.
namespace natverk {
namespace cuda {

// Throws std::invalid_argument naming the first label outside 0..K-1 (synchronises).
void check_labels(const int64_t* y, int64_t m, int64_t K);
// out[i] = in[i]: uint8 class labels (a dataset's usual storage) widened for the kernels below.
void labels_to_int64(int64_t* out, const uint8_t* in, int64_t n);

template <typename T>
double softmax_cross_entropy_forward(T* probs, const T* z, const int64_t* y,
                                     const T* class_weights, int64_t m, int64_t K);
template <typename T>
void softmax_cross_entropy_backward(T* dz, const T* probs, const int64_t* y,
                                    const T* class_weights, int64_t m, int64_t K);

template <typename T>
double mse_forward(const T* pred, const T* target, int64_t m, int64_t n, bool mean);
template <typename T>
void mse_backward(T* dpred, const T* pred, const T* target, int64_t m, int64_t n, bool mean);

template <typename T>
double bce_forward(const T* pred, const T* target, int64_t m, int64_t n, bool mean);
template <typename T>
void bce_backward(T* dpred, const T* pred, const T* target, int64_t m, int64_t n, bool mean);

template <typename T>
double bce_with_logits_forward(const T* z, const T* target, int64_t m, int64_t n, bool mean);
template <typename T>
void bce_with_logits_backward(T* dz, const T* z, const T* target, int64_t m, int64_t n, bool mean);

template <typename T>
double sum_of_squares(const T* w, int64_t n);

}  // namespace cuda
}  // namespace natverk
