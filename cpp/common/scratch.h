// scratch.h -- per-thread, 64-byte-aligned work buffers kept between calls.
//
// Kernels that need temporary space (GEMM packing, im2col columns) take it
// from here instead of allocating per call: each thread owns its buffers,
// which only ever grow.
#pragma once
#include <cstddef>
#include <cstdlib>
#include <new>

namespace natverk {

class Scratch {
 public:
  Scratch() = default;
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  ~Scratch() { std::free(ptr_); }

  // At least `bytes` bytes, 64-byte aligned; contents undefined.
  void* get(size_t bytes) {
    if (bytes > size_) {
      std::free(ptr_);
      ptr_ = nullptr;
      size_ = 0;
      const size_t rounded = (bytes + 63) / 64 * 64;
      ptr_ = std::aligned_alloc(64, rounded);
      if (!ptr_) throw std::bad_alloc();
      size_ = rounded;
    }
    return ptr_;
  }

 private:
  void* ptr_ = nullptr;
  size_t size_ = 0;
};

}  // namespace natverk
