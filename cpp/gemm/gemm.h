// gemm.h -- general matrix multiply, the engine under every dense and conv layer.
//
//   C = alpha * op(A) op(B) + beta * C
//
// op(A) is m x k, op(B) is k x n, C is m x n, all row-major in the sense that
// element (i, j) of op(A) lives at A[i * rsa + j * csa]: any strides, so a
// transpose is just swapped strides and NumPy views need no copy. C must have
// unit column stride (row stride ldc >= n).
//
// BLAS semantics: beta == 0 overwrites C without reading it (NaN/Inf already
// in C do not leak in); NaN/Inf in A or B propagate per IEEE 754, also when
// alpha == 0 (0 * NaN = NaN: unlike reference BLAS, A and B are never skipped).
// float accumulates in float (as every BLAS does), double in double.
// Multithreaded through natverk::parallel_for; deterministic for a given
// thread count and SIMD level.
#pragma once
#include <cstdint>

namespace natverk {

template <typename T>
void gemm(T* C, int64_t ldc,
          const T* A, int64_t rsa, int64_t csa,
          const T* B, int64_t rsb, int64_t csb,
          int64_t m, int64_t n, int64_t k, T alpha, T beta);

// Row-major convenience: A is (m x k) or, with trans_a, stored (k x m) with
// leading dimension lda; likewise B.
template <typename T>
inline void gemm_rowmajor(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha,
                          const T* A, int64_t lda, const T* B, int64_t ldb, T beta, T* C,
                          int64_t ldc) {
  gemm<T>(C, ldc, A, trans_a ? 1 : lda, trans_a ? lda : 1, B, trans_b ? 1 : ldb,
          trans_b ? ldb : 1, m, n, k, alpha, beta);
}

// C = f(alpha * op(A) op(B) + bias): bias (n values, or null for none) added to every row,
// f the identity or, with relu, activation_forward's ReLU (NaN kept). C is written, never read.
// A dense layer's forward in one pass over C (thesis eq. 1, z = h W + b, h = f(z)): the bias
// enters where the first k block's sums are stored and the ReLU where the last block's are,
// so the bits are exactly those of filling C with the bias, gemm with beta = 1, then
// activation_forward, without their two extra passes over C (tests/test_dense.py).
template <typename T>
void gemm_bias_act(T* C, int64_t ldc,
                   const T* A, int64_t rsa, int64_t csa,
                   const T* B, int64_t rsb, int64_t csb,
                   int64_t m, int64_t n, int64_t k, T alpha, const T* bias, bool relu, bool serial = false);

// C = alpha * op(A) op(B), then C = h > 0 ? C : 0 element by element, h an m x n array laid out
// as C (rows ldc apart). C is written, never read. A dense layer's input gradient dX = dZ W^T
// followed by the backward of the ReLU that made its input h (thesis eq. 6, delta = f'(z) (.)
// (W delta'), with f' of the ReLU taken from its output h): the mask is applied where the last
// k block's sums are stored, so the bits are exactly those of gemm with beta = 0 and then
// activation_backward (relu_backward_serial), without the second pass over dX and its buffer
// (issue 11; tests/test_dense.py, tests/test_plan.py).
template <typename T>
void gemm_relu_mask(T* C, int64_t ldc,
                    const T* A, int64_t rsa, int64_t csa,
                    const T* B, int64_t rsb, int64_t csb,
                    int64_t m, int64_t n, int64_t k, T alpha, const T* h, bool serial = false);

// What gemm_update does with each finished tile of G instead of storing it: apply(u, off, g,
// ldg, rows, cols) gets the tile's rows x cols values (rows ldg apart) and its place, off =
// row * ld + column of its first element in the m x n result. w, v, s are arrays laid out as
// that result (rows ld apart) that apply may update there; w is also read for l2 (below).
// state holds the consumer's constants (an optimizer's, optimizers.h make_tile_update).
template <typename T>
struct GemmTileUpdate {
  void (*apply)(const GemmTileUpdate& u, int64_t off, const T* g, int64_t ldg, int64_t rows,
                int64_t cols) = nullptr;
  T* w = nullptr;
  T* v = nullptr;
  T* s = nullptr;
  int64_t ld = 0;
  T l2 = T(0);  // G includes l2 * w (the MATLAB placement of the L2 gradient, dense.h)
  alignas(8) unsigned char state[96] = {};
};

// G = alpha * op(A) op(B) + l2 * w, handed to u.apply tile by tile (each element exactly once,
// from the thread that computed it) and never stored as a whole: a dense layer's weight
// gradient dW = X^T dZ (+ lambda W) consumed by the optimizer's update while its tile is in
// registers (issue 11: the update pass read W and dW back from memory, 10-12 % of a small-MLP
// step). C (m x n, row stride ldc == u.ld) is scratch for the partial sums when k spans more
// than one k block; afterwards it holds nothing defined. Each element of G gets the bits
// dense_backward gives dW: lambda W filled in first, gemm with beta = 1 (beta = 0 when l2 == 0).
template <typename T>
void gemm_update(T* C, int64_t ldc,
                 const T* A, int64_t rsa, int64_t csa,
                 const T* B, int64_t rsb, int64_t csb,
                 int64_t m, int64_t n, int64_t k, T alpha, const GemmTileUpdate<T>& u, bool serial = false);

// serial (gemm_bias_act, gemm_relu_mask, gemm_update): on the calling thread only, as gemm_serial,
// for a caller that splits the work itself (the plan's row split, plan.cpp).
//
// gemm on the calling thread only, never through the pool: for kernels that already
// split their work at a coarser level (the Winograd convolution runs one small GEMM
// per transform point per tile block, where a pool region per call would cost more
// than the GEMM). Same semantics and the same bits as gemm() on one thread.
template <typename T>
void gemm_serial(T* C, int64_t ldc,
                 const T* A, int64_t rsa, int64_t csa,
                 const T* B, int64_t rsb, int64_t csb,
                 int64_t m, int64_t n, int64_t k, T alpha, T beta);

template <typename T>
inline void gemm_serial_rowmajor(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                                 T alpha, const T* A, int64_t lda, const T* B, int64_t ldb,
                                 T beta, T* C, int64_t ldc) {
  gemm_serial<T>(C, ldc, A, trans_a ? 1 : lda, trans_a ? lda : 1, B, trans_b ? 1 : ldb,
                 trans_b ? ldb : 1, m, n, k, alpha, beta);
}

// Whether the AVX-512 GEMM may read whole NR-wide panels of B in place, unpacked, when all of m
// fits one MC block (gemm_kernel.inc, direct_b). Either way every C element is the same FMA chain,
// so the bits do not depend on it; only the speed does, and that goes opposite ways by vendor
// (float32, 1 thread, GFLOP/s, packed -> in place): on an AMD Zen 4, 64 x 5000 x 1000 91 -> 102 and
// 64 x 784 x 500 96 -> 102; on an Intel Xeon (Ice Lake, family 6 model 106), 64 x 5000 x 1000
// 78-94 -> 51-55, 64 x 3072 x 5000 82-85 -> 61, 64 x 784 x 500 99-103 -> 92-96. In place, each
// row tile walks B's rows (a new line, often a new page, per k step); Zen 4 keeps up, the Intel
// core stalls on those loads (perf puts its samples on them) and prefetching them for every row
// tile did not help. Auto: in place on AMD only. The tests force Always and Never. In the AVX-512
// kernel a product whose m fits one row tile (m <= MR) reads B in place under every mode
// (gemm_kernel.inc, direct_b).
enum class GemmBInPlace { Auto = 0, Always = 1, Never = 2 };
void set_gemm_b_in_place(GemmBInPlace mode);
GemmBInPlace gemm_b_in_place();
bool gemm_b_in_place_active();  // what Auto resolves to on this CPU (Always: true, Never: false)

// The micro-kernel blocking the current SIMD level uses (for show_config/benchmarks).
struct GemmBlocking {
  int mr, nr, mc, kc, nc;
};
GemmBlocking gemm_blocking_f32();
GemmBlocking gemm_blocking_f64();

}  // namespace natverk

// The CUDA twin (gemm.cu, on the engine of gemm_tile.cuh): the same contract on device
// pointers, queued on natverk::cuda::stream().
namespace natverk {
namespace cuda {
template <typename T>
void gemm(T* C, int64_t ldc,
          const T* A, int64_t rsa, int64_t csa,
          const T* B, int64_t rsb, int64_t csb,
          int64_t m, int64_t n, int64_t k, T alpha, T beta);
}  // namespace cuda
}  // namespace natverk
