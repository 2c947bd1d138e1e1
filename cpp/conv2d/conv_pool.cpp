// conv_pool.cpp -- conv_pool.h's dispatch: which shapes and SIMD levels take the fused kernel.
#include "conv2d/conv_pool.h"

#include <cstdint>

#include "common/cpu_features.h"
#include "common/parallel.h"

namespace natverk {

bool conv_maxpool_applies(const Conv2dShape& s) {
#if defined(NATVERK_HAVE_X86_KERNELS)
  const SimdLevel level = simd_level();
  if (level != SimdLevel::AVX2 && level != SimdLevel::AVX512) return false;
  // the plane's size: float's arg-max is computed in 32-bit lanes (conv_pool.inc, store_block)
  return s.groups == 1 && s.sh == 1 && s.sw == 1 && s.dh == 1 && s.dw == 1 && s.Ho >= 2 && s.Wo >= 2 &&
         s.Ho * s.Wo <= INT32_MAX && s.C * s.kH * s.kW <= kConvPoolMaxTaps && conv2d_algorithm(s) == ConvAlgo::Im2col;
#else
  (void)s;
  return false;
#endif
}

template <typename T>
bool conv2d_maxpool_forward(T* P, int64_t* argmax, const T* X, const T* W, const T* b, const Conv2dShape& s,
                            bool relu) {
  if (!conv_maxpool_applies(s)) return false;
#if defined(NATVERK_HAVE_X86_KERNELS)
  const conv_pool::ImagesFn<T> f =
      simd_level() == SimdLevel::AVX512 ? conv_pool::avx512::images_fn<T>(s) : conv_pool::avx2::images_fn<T>(s);
  parallel_for(s.N, 1, [&](int64_t n0, int64_t n1, int) { f(P, argmax, X, W, b, s, relu, n0, n1); });
  return true;
#else
  return false;
#endif
}

template bool conv2d_maxpool_forward<float>(float*, int64_t*, const float*, const float*, const float*,
                                            const Conv2dShape&, bool);
template bool conv2d_maxpool_forward<double>(double*, int64_t*, const double*, const double*, const double*,
                                             const Conv2dShape&, bool);

}  // namespace natverk
