// conv_direct.cpp -- conv_direct.h's dispatch: which shapes and SIMD levels take the direct kernel.
#include "conv2d/conv_direct.h"

#include <cstdint>

#include "batchnorm/batchnorm.h"
#include "common/cpu_features.h"
#include "common/parallel.h"

namespace natverk {

bool conv_direct_applies(const Conv2dShape& s) {
#if defined(NATVERK_HAVE_X86_KERNELS)
  const SimdLevel level = simd_level();
  if (level != SimdLevel::AVX2 && level != SimdLevel::AVX512) return false;
  return s.groups == 1 && s.sh == 1 && s.sw == 1 && s.dh == 1 && s.dw == 1 &&
         s.C * s.kH * s.kW <= kConvDirectMaxTaps;
#else
  (void)s;
  return false;
#endif
}

template <typename T>
bool conv2d_direct_forward(T* Y, const T* X, const T* W, const T* b, const Conv2dShape& s,
                           const ConvEvalEpilogue* ep) {
  if (!conv_direct_applies(s)) return false;
#if defined(NATVERK_HAVE_X86_KERNELS)
  const conv_direct::ImageFn<T> f =
      simd_level() == SimdLevel::AVX512 ? conv_direct::avx512::image_fn<T>(s) : conv_direct::avx2::image_fn<T>(s);
  const int64_t HWo = s.Ho * s.Wo;
  parallel_for(s.N, 1, [&](int64_t n0, int64_t n1, int) {
    for (int64_t n = n0; n < n1; ++n) {
      f(Y, X, W, b, s, n);
      if (ep) {  // the image's output, K x HWo, is still in cache (as in im2col_forward)
        T* y = Y + n * s.K * HWo;
        for (int64_t k = 0; k < s.K; ++k)
          batchnorm_eval_row<T>(y + k * HWo, y + k * HWo, HWo, ep->scale[k], ep->shift[k], ep->relu);
      }
    }
  });
  return true;
#else
  (void)Y, (void)X, (void)W, (void)b, (void)ep;
  return false;
#endif
}

template bool conv2d_direct_forward<float>(float*, const float*, const float*, const float*, const Conv2dShape&,
                                           const ConvEvalEpilogue*);
template bool conv2d_direct_forward<double>(double*, const double*, const double*, const double*,
                                            const Conv2dShape&, const ConvEvalEpilogue*);

}  // namespace natverk
