// gemm_internal.h -- what each SIMD translation unit (gemm_generic.cpp,
// gemm_avx2.cpp, gemm_avx512.cpp) exports to the threaded driver in gemm.cpp.
//
// Each ISA lives in its own namespace so that the same template code compiled
// with different -m flags never collides at link time (an AVX-512 copy of an
// inline function must not be picked for a CPU without AVX-512).
#pragma once
#include <cstdint>

#include "gemm/gemm.h"

namespace natverk {
namespace gemm_detail {

// One single-threaded GEMM on a sub-block: C += alpha * op(A) op(B).
// (beta has already been applied by the driver.)
template <typename T>
struct GemmArgs {
  T* C;
  int64_t ldc;
  const T* A;
  int64_t rsa, csa;
  const T* B;
  int64_t rsb, csb;
  int64_t m, n, k;
  T alpha;
  // beta == 0: C's old contents are ignored, so the first k block stores its
  // tile instead of adding to it (saves clearing C and reading it back).
  bool overwrite;
  // gemm_bias_act (gemm.h): bias (n) added in the first k block in place of C, ReLU after the last
  const T* bias = nullptr;
  bool relu = false;
  // B's whole panels may be read in place when m fits one MC block (gemm.h, GemmBInPlace)
  bool b_in_place = false;
  // gemm_update (gemm.h): the last k block hands its tiles to upd->apply instead of storing
  // them; c_base is the whole C's first element (a tile's place is its offset from it)
  const GemmTileUpdate<T>* upd = nullptr;
  const T* c_base = nullptr;
  // gemm_relu_mask (gemm.h): after the last k block, C = mask > 0 ? C : 0, mask laid out as the
  // whole C (a tile's mask is at the tile's offset from c_base)
  const T* mask = nullptr;
};

#define NATVERK_DECLARE_GEMM_ISA(ns)                                                      \
  namespace ns {                                                                          \
  GemmBlocking blocking_f32();                                                            \
  GemmBlocking blocking_f64();                                                            \
  /* apack: mc*kc elements, bpack: kc*nc elements, both 64-byte aligned */                \
  void gemm_serial(const GemmArgs<float>& g, float* apack, float* bpack);                 \
  void gemm_serial(const GemmArgs<double>& g, double* apack, double* bpack);              \
  }

NATVERK_DECLARE_GEMM_ISA(generic)
NATVERK_DECLARE_GEMM_ISA(avx2)
NATVERK_DECLARE_GEMM_ISA(avx512)

}  // namespace gemm_detail
}  // namespace natverk
