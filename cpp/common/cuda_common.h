// cuda_common.h -- what every CUDA kernel family shares: the error check, the library's
// stream, stream-ordered device memory and the launch geometry (issue 15).
//
// Kernels follow ggml's shape (STYLE.md): kernel -> launcher (grid from a named block size)
// -> entry point with the CPU twin's signature in namespace natverk::cuda. Entry points take
// device pointers, never allocate behind the caller's back (workspace comes from here, on the
// same stream) and run on natverk's own stream, so a whole training step can later be
// captured into a CUDA graph (a capture cannot use the legacy default stream).
// Validation of shapes and dtypes happens once, in the bindings (cpp/bindings/cuda/).
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace natverk {
namespace cuda {

// Throws std::runtime_error "CUDA error <name> (<text>) in <what> at <file>:<line>".
[[noreturn]] void throw_cuda_error(cudaError_t err, const char* what, const char* file, int line);

#define NV_CUDA_CHECK(expr)                                                                  \
  do {                                                                                       \
    const cudaError_t nv_err_ = (expr);                                                      \
    if (nv_err_ != cudaSuccess) ::natverk::cuda::throw_cuda_error(nv_err_, #expr, __FILE__, __LINE__); \
  } while (0)

// After a <<<...>>> launch: a bad configuration is reported at once, not at the next sync.
#define NV_CUDA_LAUNCH_CHECK(kernel_name) NV_CUDA_CHECK(cudaPeekAtLastError())

// Number of visible GPUs; 0 (never an exception) without a driver or a device.
int device_count();
// Why device_count() is 0, in words ("" when a GPU is visible).
std::string unavailable_reason();
// The stream every natverk kernel runs on (created on first use, non-blocking).
cudaStream_t stream();
// Waits for everything queued on stream().
void synchronize();
// Streaming multiprocessors of the current GPU (sizes the split-K of thin GEMMs).
int sm_count();

// Stream-ordered device memory (cudaMallocAsync on stream(): a pool, so a per-call
// workspace costs no cudaMalloc). device_alloc(0) returns nullptr.
void* device_alloc(size_t bytes);
void device_free(void* p) noexcept;

// RAII workspace on stream().
class Workspace {
 public:
  explicit Workspace(size_t bytes) : p_(device_alloc(bytes)) {}
  ~Workspace() { device_free(p_); }
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;
  template <typename T> T* as() const { return static_cast<T*>(p_); }
 private:
  void* p_;
};

// Elementwise kernels: kBlock threads a block and grid-stride loops, so any n (int64) runs
// with at most kMaxBlocks blocks.
constexpr int kBlock = 256;
constexpr int64_t kMaxBlocks = 65535LL * 8;
inline unsigned blocks_for(int64_t n, int block = kBlock) {
  int64_t b = (n + block - 1) / block;
  if (b < 1) b = 1;
  if (b > kMaxBlocks) b = kMaxBlocks;
  return static_cast<unsigned>(b);
}

}  // namespace cuda
}  // namespace natverk
