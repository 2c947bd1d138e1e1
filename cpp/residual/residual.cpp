// residual.cpp -- see residual.h.
#include "residual/residual.h"

#include "common/elementwise.h"

namespace natverk {

template <typename T>
void add_forward(T* out, const T* a, const T* b, int64_t n) {
  parallel_elementwise(n, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) out[i] = a[i] + b[i];
  });
}

template void add_forward<float>(float*, const float*, const float*, int64_t);
template void add_forward<double>(double*, const double*, const double*, int64_t);

}  // namespace natverk
