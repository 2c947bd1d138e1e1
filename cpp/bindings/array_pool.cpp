// array_pool.cpp -- see array_pool.h for why and for the contract.
//
// Each block carries a 64-byte header in front of the pointer handed out, holding its size class,
// so pool_release needs nothing but the pointer (a NumPy base capsule holds only that).
// Size classes are whole 4 KiB pages: a loop over one batch shape asks for the same few sizes
// every step and finds them exactly. The free list is searched newest first (its blocks are the
// likeliest to be in cache) and trimmed oldest first.
#include "bindings/array_pool.h"

#include <cstdlib>
#include <mutex>
#include <new>

#if defined(__linux__)
#include <sys/mman.h>
#endif

// Under AddressSanitizer (.ci/sanitizers) a block waiting in the pool is poisoned, so a read or
// write through an array already freed is still reported, as it would be without the pool.
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define NATVERK_POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define NATVERK_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define NATVERK_POISON(p, n) ((void)(p), (void)(n))
#define NATVERK_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

namespace natverk {
namespace bind {
namespace {

constexpr size_t kHeader = 64;  // keeps the data 64-byte aligned
constexpr size_t kPage = 4096;
constexpr size_t kHugeBytes = size_t(4) << 20;
constexpr size_t kHugeAlign = size_t(2) << 20;

struct Block {
  char* base;
  size_t size;  // usable bytes (a multiple of kPage)
};

struct Pool {
  std::mutex mu;  // the GIL serialises callers today; the mutex keeps that an assumption-free fact
  std::vector<Block> free_blocks;
  size_t cached_bytes = 0;
  uint64_t hits = 0, misses = 0;
};

// Never destroyed: an array still alive at interpreter exit may release its block after every
// static object of this library is gone.
Pool& pool() {
  static Pool* p = new Pool();
  return *p;
}

size_t& header_size(char* base) { return *reinterpret_cast<size_t*>(base); }

}  // namespace

void* pool_acquire(size_t bytes) {
  const size_t size = (bytes + kPage - 1) / kPage * kPage;
  Pool& P = pool();
  {
    std::lock_guard<std::mutex> lock(P.mu);
    for (size_t i = P.free_blocks.size(); i-- > 0;) {
      if (P.free_blocks[i].size != size) continue;
      char* base = P.free_blocks[i].base;
      P.free_blocks.erase(P.free_blocks.begin() + static_cast<std::ptrdiff_t>(i));
      P.cached_bytes -= size;
      ++P.hits;
      NATVERK_UNPOISON(base + kHeader, size);
      return base + kHeader;
    }
    ++P.misses;
  }
  // A block of 4 MiB or more starts on a 2 MiB boundary and asks for transparent huge pages, as
  // NumPy does for its large arrays: where the kernel grants them only on request ("madvise",
  // the default of many distributions), 4 KiB pages cost a fault each on first touch, and the
  // MNIST CNN's inference at batch 1000 ran at 0.57x the speed it had with NumPy's allocator.
  const bool huge = size >= kHugeBytes;
  const size_t align = huge ? kHugeAlign : 64;
  const size_t total = (kHeader + size + align - 1) / align * align;  // aligned_alloc's rule
  char* base = static_cast<char*>(std::aligned_alloc(align, total));
  if (!base) throw std::bad_alloc();
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  if (huge) madvise(base, total, MADV_HUGEPAGE);  // advice only: failure changes nothing
#endif
  header_size(base) = size;
  return base + kHeader;
}

void pool_release(void* p) {
  if (!p) return;
  char* base = static_cast<char*>(p) - kHeader;
  const size_t size = header_size(base);
  Pool& P = pool();
  std::lock_guard<std::mutex> lock(P.mu);
  try {
    P.free_blocks.push_back(Block{base, size});
  } catch (...) {  // a capsule destructor must not throw: give the block back instead
    std::free(base);
    return;
  }
  NATVERK_POISON(base + kHeader, size);
  P.cached_bytes += size;
  size_t n_old = 0;
  while (P.cached_bytes > kMaxCachedBytes) {
    P.cached_bytes -= P.free_blocks[n_old].size;
    NATVERK_UNPOISON(P.free_blocks[n_old].base + kHeader, P.free_blocks[n_old].size);
    std::free(P.free_blocks[n_old].base);
    ++n_old;
  }
  P.free_blocks.erase(P.free_blocks.begin(), P.free_blocks.begin() + static_cast<std::ptrdiff_t>(n_old));
}

ArrayPoolStats array_pool_stats() {
  Pool& P = pool();
  std::lock_guard<std::mutex> lock(P.mu);
  return ArrayPoolStats{P.free_blocks.size(), P.cached_bytes, P.hits, P.misses};
}

void array_pool_clear() {
  Pool& P = pool();
  std::vector<Block> blocks;
  {
    std::lock_guard<std::mutex> lock(P.mu);
    blocks.swap(P.free_blocks);
    P.cached_bytes = 0;
  }
  for (const Block& b : blocks) {
    NATVERK_UNPOISON(b.base + kHeader, b.size);
    std::free(b.base);
  }
}

}  // namespace bind
}  // namespace natverk
