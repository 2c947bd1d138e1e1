// gemm.cu -- the CUDA twin of gemm.cpp: C = alpha op(A) op(B) + beta C with any strides,
// on the tiled engine of gemm_tile.cuh (see gemm.h for the contract: beta == 0 never reads
// C; NaN/Inf in A or B propagate, also when alpha == 0).
#include "common/cuda_common.h"
#include "gemm/gemm.h"
#include "gemm/gemm_tile.cuh"

namespace natverk {
namespace cuda {

namespace {
template <typename T>
struct GemmStore {
  T* C;
  int64_t ldc;
  T alpha, beta;
  __device__ void operator()(int64_t i, int64_t j, T v) const {
    T* c = C + i * ldc + j;
    *c = beta == T(0) ? alpha * v : alpha * v + beta * *c;
  }
};

template <typename T, bool AK, bool BK>
void run(T* C, int64_t ldc, const T* A, int64_t rsa, int64_t csa, const T* B, int64_t rsb, int64_t csb,
         int64_t m, int64_t n, int64_t k, T alpha, T beta) {
  launch_gemm<T, AK, BK>(StridedLoader<T>{A, rsa, csa}, StridedLoader<T>{B, rsb, csb},
                         GemmStore<T>{C, ldc, alpha, beta}, m, n, k);
}
}  // namespace

template <typename T>
void gemm(T* C, int64_t ldc, const T* A, int64_t rsa, int64_t csa, const T* B, int64_t rsb, int64_t csb,
          int64_t m, int64_t n, int64_t k, T alpha, T beta) {
  // The loading threads walk the operand's unit-stride index: A along K when its columns are
  // adjacent (row-major A, csa == 1), otherwise along M; B along N when csb == 1.
  const bool a_along_k = csa == 1 && rsa != 1;
  const bool b_along_k = !(csb == 1) && rsb == 1;
  if (a_along_k) {
    if (b_along_k) run<T, true, true>(C, ldc, A, rsa, csa, B, rsb, csb, m, n, k, alpha, beta);
    else run<T, true, false>(C, ldc, A, rsa, csa, B, rsb, csb, m, n, k, alpha, beta);
  } else {
    if (b_along_k) run<T, false, true>(C, ldc, A, rsa, csa, B, rsb, csb, m, n, k, alpha, beta);
    else run<T, false, false>(C, ldc, A, rsa, csa, B, rsb, csb, m, n, k, alpha, beta);
  }
}

template void gemm<float>(float*, int64_t, const float*, int64_t, int64_t, const float*, int64_t, int64_t,
                          int64_t, int64_t, int64_t, float, float);
template void gemm<double>(double*, int64_t, const double*, int64_t, int64_t, const double*, int64_t, int64_t,
                           int64_t, int64_t, int64_t, double, double);

}  // namespace cuda
}  // namespace natverk
