// cuda_common.cu -- see cuda_common.h.
#include "common/cuda_common.h"

#include <mutex>
#include <stdexcept>

namespace natverk {
namespace cuda {

void throw_cuda_error(cudaError_t err, const char* what, const char* file, int line) {
  // Clear a sticky launch error so that the next call starts clean where it can.
  (void)cudaGetLastError();
  throw std::runtime_error(std::string("CUDA error ") + cudaGetErrorName(err) + " (" +
                           cudaGetErrorString(err) + ") in " + what + " at " + file + ":" +
                           std::to_string(line));
}

namespace {
struct DeviceState {
  int count = 0;
  std::string reason;
  cudaStream_t stream = nullptr;
};

DeviceState& state() {
  static DeviceState s;
  static std::once_flag once;
  std::call_once(once, [] {
    int n = 0;
    const cudaError_t err = cudaGetDeviceCount(&n);
    if (err != cudaSuccess) {
      (void)cudaGetLastError();
      s.count = 0;
      s.reason = std::string("the CUDA runtime found no usable GPU: ") + cudaGetErrorName(err) +
                 " (" + cudaGetErrorString(err) + ")";
    } else if (n == 0) {
      s.reason = "the CUDA runtime reports no GPU on this machine";
    } else {
      s.count = n;
    }
  });
  return s;
}
}  // namespace

int device_count() { return state().count; }

std::string unavailable_reason() { return state().reason; }

cudaStream_t stream() {
  DeviceState& s = state();
  static std::once_flag once;
  if (s.count == 0) throw std::runtime_error("natverk's CUDA backend is built, but " + s.reason);
  std::call_once(once, [&] { NV_CUDA_CHECK(cudaStreamCreateWithFlags(&s.stream, cudaStreamNonBlocking)); });
  return s.stream;
}

void synchronize() { NV_CUDA_CHECK(cudaStreamSynchronize(stream())); }

int sm_count() {
  static const int n = [] {
    int dev = 0, sms = 0;
    NV_CUDA_CHECK(cudaGetDevice(&dev));
    NV_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
    return sms;
  }();
  return n;
}

void* device_alloc(size_t bytes) {
  if (bytes == 0) return nullptr;
  void* p = nullptr;
  NV_CUDA_CHECK(cudaMallocAsync(&p, bytes, stream()));
  return p;
}

void device_free(void* p) noexcept {
  if (p == nullptr) return;
  // Freed in stream order, so memory a queued kernel still reads is not reused early.
  (void)cudaFreeAsync(p, state().stream);
}

}  // namespace cuda
}  // namespace natverk
