// array_pool.h -- where the bindings' new output arrays get their memory.
//
// Why a pool: the MATLAB-style functions return fresh arrays every call, as the thesis' MATLAB
// code does (forward_propagation's h_l, back_propagation's dW_l, dz_l, ...). glibc serves a block
// above its mmap threshold (128 KiB at first) straight from the kernel and hands it back on free,
// so each step of the thesis' Main loop page-faulted all its large outputs in again, zero-filled:
// 26 % of back_propagation's time on the spiral net 2-250-100-50-4 at batch 128 (perf, Zen 3,
// float64; [kernel] exc_page_fault, clear_page_erms, ...). A block freed here waits for the next
// array of its size class instead, so a loop over same-shaped minibatches allocates nothing after
// its first step.
//
// Contract:
// - Arrays below kMinPooledBytes keep NumPy's own allocator (malloc reuses small blocks well), and
//   so do those above kMaxBlockBytes, which the pool would not keep.
// - Contents are undefined, as with numpy.empty: every kernel writes all of its outputs.
// - At most kMaxCachedBytes wait in the pool; past that the oldest block goes back to the system.
//   array_pool_clear() returns them all (natverk._core._array_pool_clear()). kMaxBlockBytes
//   admits the weight gradient of the largest benchmark layer (3072 x 5000 float32, 61 MB).
// - An array that outlives the module (a reference kept until interpreter exit) still returns
//   its block safely: the pool itself is never destroyed.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstddef>
#include <cstdint>
#include <new>
#include <string>
#include <vector>

namespace natverk {
namespace bind {

namespace py = pybind11;

constexpr size_t kMinPooledBytes = size_t(32) << 10;
constexpr size_t kMaxBlockBytes = size_t(64) << 20;
constexpr size_t kMaxCachedBytes = size_t(128) << 20;

// A 64-byte-aligned block of at least `bytes` (at most kMaxBlockBytes) bytes; release it with
// pool_release.
void* pool_acquire(size_t bytes);
void pool_release(void* p);

struct ArrayPoolStats {
  size_t cached_blocks, cached_bytes;  // waiting in the pool now
  uint64_t hits, misses;               // acquisitions served from the pool / from the system
};
ArrayPoolStats array_pool_stats();
void array_pool_clear();

// An uninitialised C-contiguous array of `shape` (whose byte size the caller has checked).
template <typename T>
py::array_t<T> pooled_array(std::vector<py::ssize_t> shape) {
  size_t n = 1;
  for (py::ssize_t d : shape) n *= static_cast<size_t>(d);
  const size_t bytes = n * sizeof(T);
  // Small arrays, and those too large to be kept, from NumPy's own allocator
  if (bytes < kMinPooledBytes || bytes > kMaxBlockBytes) return py::array_t<T>(std::move(shape));
  void* p = nullptr;
  try {
    p = pool_acquire(bytes);
  } catch (const std::bad_alloc&) {  // worded as NumPy's own MemoryError
    std::string dims;
    for (py::ssize_t d : shape) dims += (dims.empty() ? "" : ", ") + std::to_string(d);
    PyErr_SetString(PyExc_MemoryError, ("Unable to allocate " + std::to_string(bytes) +
                                        " bytes for an output array with shape (" + dims + ")").c_str());
    throw py::error_already_set();
  }
  py::capsule owner;
  try {
    owner = py::capsule(p, [](void* q) { pool_release(q); });
  } catch (...) {
    pool_release(p);
    throw;
  }
  return py::array_t<T>(std::move(shape), static_cast<T*>(p), owner);
}

}  // namespace bind
}  // namespace natverk
