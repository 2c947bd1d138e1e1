// batchnorm.h -- batch normalisation, per channel of (N, C, S) data: S = H*W for
// BatchNorm2D on NCHW, S = 1 for BatchNorm1D on (N, F) (thesis appendix B.3,
// seed 001 §4.2.7-4.2.8, eq. 52-63). With M = N*S values per channel:
//
//   training:  mu = mean(x),  var = mean((x - mu)^2)  (biased, as in the forward pass)
//              x_hat = (x - mu) / sqrt(var + eps),    y = gamma x_hat + beta
//              running_mean = (1 - momentum) running_mean + momentum mu
//              running_var  = (1 - momentum) running_var  + momentum var * M / (M - 1)
//   evaluation: x_hat = (x - running_mean) / sqrt(running_var + eps)
//
// Backward (training; invstd = 1 / sqrt(var + eps)):
//   dbeta = sum dy,  dgamma = sum dy x_hat
//   dx = gamma invstd / M * (M dy - dbeta - x_hat dgamma)
// Backward (evaluation, statistics are constants): dx = dy gamma invstd.
//
// mean and invstd (C each) are written by the forward pass and read by the
// backward pass. Statistics are accumulated in double, in eight interleaved partial sums per
// channel (a fixed order: batchnorm.cpp). Channels run in parallel.
#pragma once
#include <cstdint>

namespace natverk {

template <typename T>
void batchnorm_forward_train(T* y, T* mean, T* invstd, T* running_mean, T* running_var,
                             const T* x, const T* gamma, const T* beta, int64_t N, int64_t C,
                             int64_t S, double eps, double momentum);

template <typename T>
void batchnorm_forward_eval(T* y, const T* x, const T* gamma, const T* beta,
                            const T* running_mean, const T* running_var, int64_t N, int64_t C,
                            int64_t S, double eps);

// Evaluation as a per-channel map, for a kernel that applies it where it writes its output (the
// convolution's evaluation epilogue, conv2d.h): scale[c] = gamma[c] / sqrt(running_var[c] + eps)
// and shift[c] = beta[c] - running_mean[c] scale[c] in double, and
// y[i] = T(x[i] scale + shift) for i < n, then with relu activation_forward's ReLU: the
// expressions batchnorm_forward_eval runs (one definition in batchnorm.cpp), so the same bits.
// y may be x.
template <typename T>
void batchnorm_eval_affine(double* scale, double* shift, const T* gamma, const T* beta,
                           const T* running_mean, const T* running_var, int64_t C, double eps);
template <typename T>
void batchnorm_eval_row(T* y, const T* x, int64_t n, double scale, double shift, bool relu);

// training=true: mean/invstd are the batch statistics saved by the forward pass;
// training=false: they are running_mean and 1/sqrt(running_var + eps).
template <typename T>
void batchnorm_backward(T* dx, T* dgamma, T* dbeta, const T* dy, const T* x, const T* mean,
                        const T* invstd, const T* gamma, int64_t N, int64_t C, int64_t S,
                        bool training);

}  // namespace natverk

// The CUDA twins (batchnorm.cu), on device pointers, queued on natverk::cuda::stream(): same
// formulas, statistics accumulated in double, deterministic (one block per channel, a fixed
// reduction tree; no atomics).
namespace natverk {
namespace cuda {
template <typename T>
void batchnorm_forward_train(T* y, T* mean, T* invstd, T* running_mean, T* running_var,
                             const T* x, const T* gamma, const T* beta, int64_t N, int64_t C,
                             int64_t S, double eps, double momentum);
template <typename T>
void batchnorm_forward_eval(T* y, const T* x, const T* gamma, const T* beta,
                            const T* running_mean, const T* running_var, int64_t N, int64_t C,
                            int64_t S, double eps);
// What the CPU binding computes on the host after an evaluation forward, for the backward:
// mean = running_mean, invstd = 1 / sqrt(running_var + eps) (in double, then cast).
template <typename T>
void batchnorm_eval_stats(T* mean, T* invstd, const T* running_mean, const T* running_var,
                          int64_t C, double eps);
template <typename T>
void batchnorm_backward(T* dx, T* dgamma, T* dbeta, const T* dy, const T* x, const T* mean,
                        const T* invstd, const T* gamma, int64_t N, int64_t C, int64_t S,
                        bool training);
}  // namespace cuda
}  // namespace natverk
