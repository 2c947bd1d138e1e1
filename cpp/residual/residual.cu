// residual.cu -- the CUDA twin of residual.cpp: out = a + b elementwise (see residual.h).
#include "common/cuda_common.h"
#include "residual/residual.h"

namespace natverk {
namespace cuda {

namespace {
template <typename T>
__global__ void add_kernel(T* __restrict__ out, const T* a, const T* b, int64_t n) {
  // out may alias a or b: each element is read before it is written, by one thread.
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    out[i] = a[i] + b[i];
}
}  // namespace

template <typename T>
void add_forward(T* out, const T* a, const T* b, int64_t n) {
  if (n <= 0) return;
  add_kernel<T><<<blocks_for(n), kBlock, 0, stream()>>>(out, a, b, n);
  NV_CUDA_LAUNCH_CHECK(add_kernel);
}

template void add_forward<float>(float*, const float*, const float*, int64_t);
template void add_forward<double>(double*, const double*, const double*, int64_t);

}  // namespace cuda
}  // namespace natverk
