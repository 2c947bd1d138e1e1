// dense.h -- the fully connected layer of the thesis' MATLAB network, rows are
// examples (thesis §2.1, seed 001 §4.2.1):
//
//   forward:   z = h_prev W + b,   h = f(z)
//   backward:  dW = h_prev^T dz + lambda W     (L2 term on EVERY layer: the
//              seed's back_propogation forgets it for W1)
//              db = sum over rows of dz
//              dh_prev = dz W^T
//
// Shapes: X/h_prev (m x n_in), W (n_in x n_out), b (n_out), H (m x n_out).
// All arrays C-contiguous. Outputs are overwritten, never accumulated.
#pragma once
#include <cstdint>

#include "activations/activations.h"
#include "gemm/gemm.h"

namespace natverk {

// H = f(X W + b) (H may not alias X; b may be null: no bias). The bias and a ReLU are the GEMM's
// epilogue (gemm_bias_act); a sigmoid or tanh runs in place on H after it. serial: the product
// on the calling thread (the plan's row split).
template <typename T>
void dense_forward(T* H, const T* X, const T* W, const T* b, int64_t m, int64_t n_in,
                   int64_t n_out, Activation act, bool serial = false);

// Z[i, :] += b  (m x n)
template <typename T>
void bias_add(T* Z, const T* b, int64_t m, int64_t n);

// db[j] = sum_i dZ[i, j]  (column sums, accumulated in double)
template <typename T>
void bias_grad(T* db, const T* dZ, int64_t m, int64_t n);

// Given dZ (m x n_out): dW (n_in x n_out), db (n_out) and, when dX is not
// null, dX (m x n_in). lambda adds the L2 gradient lambda * W to dW.
// relu_mask (null: none): X is the output of a ReLU, and dX is taken on through that ReLU's
// backward, dX = X > 0 ? dZ W^T : 0, in the GEMM that writes it (gemm.h, gemm_relu_mask): the
// bits of dense_backward and then activation_backward, in one pass over dX.
template <typename T>
void dense_backward(T* dX, T* dW, T* db, const T* dZ, const T* X, const T* W, int64_t m,
                    int64_t n_in, int64_t n_out, T lambda, bool relu_mask = false);

// dense_backward with the weight update fused into the dW GEMM (gemm.h, gemm_update): dX and db
// as there, dX first (it reads the W the step starts from), then each tile of
// dW = X^T dZ + lambda W goes to upd (an optimizer's make_tile_update on W) as it is computed,
// and W (upd.w) is updated in place. dW_scratch (n_in x n_out) holds partial sums when m spans several
// k blocks; it does not receive the gradient. W gets the bits dense_backward + the optimizer
// update give it. relu_mask as in dense_backward.
template <typename T>
void dense_backward_update(T* dX, T* db, const T* dZ, const T* X, const T* W, int64_t m, int64_t n_in,
                           int64_t n_out, T* dW_scratch, const GemmTileUpdate<T>& upd, bool relu_mask = false);

// The pieces of dense_backward for a caller that splits a batch's work itself (the plan's row
// split, plan.cpp), each on the calling thread with the bits dense_backward gives them:
// rows [0, m) of dX (with relu_mask as there) from those rows of dZ and X;
template <typename T>
void dense_input_gradient_serial(T* dX, const T* dZ, const T* X, const T* W, int64_t m, int64_t n_in,
                                 int64_t n_out, bool relu_mask);
// rows [i0, i1) of dW = X^T dZ + lambda W over all m rows of the batch;
template <typename T>
void dense_weight_gradient_serial(T* dW, const T* dZ, const T* X, const T* W, int64_t m, int64_t n_in,
                                  int64_t n_out, T lambda, int64_t i0, int64_t i1);
// db[j] for the columns j in [j0, j1) of dZ (m x n).
template <typename T>
void bias_grad_serial(T* db, const T* dZ, int64_t m, int64_t n, int64_t j0, int64_t j1);

}  // namespace natverk

// The CUDA twins (dense.cu): the same contracts on device pointers, queued on
// natverk::cuda::stream().
namespace natverk {
namespace cuda {
template <typename T>
void dense_forward(T* H, const T* X, const T* W, const T* b, int64_t m, int64_t n_in,
                   int64_t n_out, Activation act);
template <typename T>
void bias_add(T* Z, const T* b, int64_t m, int64_t n);
template <typename T>
void bias_grad(T* db, const T* dZ, int64_t m, int64_t n);
template <typename T>
void dense_backward(T* dX, T* dW, T* db, const T* dZ, const T* X, const T* W, int64_t m,
                    int64_t n_in, int64_t n_out, T lambda);
}  // namespace cuda
}  // namespace natverk
