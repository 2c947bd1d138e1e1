// residual.h -- the elementwise sum of a residual connection, y = x + f(x)
// (He et al. 2016). Its backward is the identity on both branches, so the
// layer adds the two incoming gradients with this same kernel.
#pragma once
#include <cstdint>

namespace natverk {

// out[i] = a[i] + b[i], i < n; out may alias a or b.
template <typename T>
void add_forward(T* out, const T* a, const T* b, int64_t n);

}  // namespace natverk

// The CUDA twin (residual.cu), on device pointers, queued on natverk::cuda::stream().
namespace natverk {
namespace cuda {
template <typename T>
void add_forward(T* out, const T* a, const T* b, int64_t n);
}  // namespace cuda
}  // namespace natverk
