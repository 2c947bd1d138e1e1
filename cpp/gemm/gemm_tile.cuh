// gemm_tile.cuh -- the tiled GEMM engine every CUDA matrix product runs on: gemm.cu,
// dense.cu and the implicit-GEMM convolutions of conv2d.cu (issue 15).
//
//   C[i, j] = sum_{p < K} A(i, p) B(p, j),   i < M, j < N
//
// A and B are not arrays but *loaders*, functors returning one element: A(i, p) for a
// strided matrix, or an element of the im2col matrix that a convolution never stores
// (implicit GEMM). The result goes to an *epilogue* functor, fin(i, j, value), which applies
// alpha/beta, a bias or an L2 term, so no kernel makes an extra pass over C.
//
// The classic shared-memory SGEMM (Volkov & Demmel, SC08; the CUTLASS "threadblock tile /
// thread tile" hierarchy): a block of 256 threads owns a BM x BN tile of C and walks K in
// steps of BK. Each step stages a BM x BK slice of A and a BK x BN slice of B in shared
// memory; each thread then does a TM x TN outer-product update from registers (float:
// 128 x 128 tiles, 8 x 8 per thread, 64 FMAs per 16 shared loads). The next slice is fetched
// from global memory into registers while the FMAs run (register double buffering). A
// thread's rows and columns are interleaved (ty + i * BM/TM), so a warp's shared-memory
// reads are broadcasts or consecutive words: no bank conflicts; the slices are padded by 4
// words so the transposing stores into As do not conflict either.
//
// Coalescing: template flags say which index is contiguous in memory for each operand
// (A along K or along M, B along K or along N); the loading threads walk that index.
//
// Split-K: a thin product (few C tiles, long K: the convolution's weight gradient) gives
// each of S blocks a K range; they write partial tiles to a workspace, and a second kernel
// adds the S partials in a fixed order, so the result is deterministic.
//
// Accumulation is in T (float in float, as every BLAS and the CPU GEMM; double in double).
#pragma once
#include <algorithm>
#include <cstdint>
#include <stdexcept>

#include "common/cuda_common.h"

namespace natverk {
namespace cuda {

template <typename T> struct TileConfig;
template <> struct TileConfig<float> { static constexpr int BM = 128, BN = 128, BK = 8, TM = 8, TN = 8; };
template <> struct TileConfig<double> { static constexpr int BM = 64, BN = 64, BK = 8, TM = 4, TN = 4; };
constexpr int kGemmThreads = 256;  // (BM / TM) * (BN / TN) for both configurations

// ----------------------------------------------------------------------------------------------
// The kernel. Partial (split-K) blocks call epi(i, j, acc, split); see launch_gemm.

template <typename T, bool kAlongKA, bool kAlongKB, class LA, class LB, class Epi>
__global__ void __launch_bounds__(kGemmThreads)
tiled_gemm_kernel(LA la, LB lb, Epi epi, int64_t M, int64_t N, int64_t K, int64_t k_chunk) {
  using C = TileConfig<T>;
  constexpr int BM = C::BM, BN = C::BN, BK = C::BK, TM = C::TM, TN = C::TN;
  constexpr int RM = BM / TM, RN = BN / TN;  // thread grid inside the block
  static_assert(RM * RN == kGemmThreads, "tile configuration must use 256 threads");
  constexpr int A_PER = BM * BK / kGemmThreads, B_PER = BK * BN / kGemmThreads;
  constexpr int PAD = 4;
  __shared__ T As[BK][BM + PAD];
  __shared__ T Bs[BK][BN + PAD];

  const int tid = threadIdx.x;
  const int tx = tid % RN, ty = tid / RN;
  // N tiles on grid x (up to 2^31 - 1: a convolution's N = batch x Ho x Wo is the long side),
  // M tiles on grid y (up to 65535).
  const int64_t m0 = static_cast<int64_t>(blockIdx.y) * BM;
  const int64_t n0 = static_cast<int64_t>(blockIdx.x) * BN;
  const int64_t kb = static_cast<int64_t>(blockIdx.z) * k_chunk;
  const int64_t ke = kb + k_chunk < K ? kb + k_chunk : K;

  // Which element of the slices thread tid moves as its e-th: (row/col r, depth c).
  auto a_pos = [&](int e, int& r, int& c) {
    const int idx = tid + e * kGemmThreads;
    if (kAlongKA) { r = idx / BK; c = idx % BK; } else { r = idx % BM; c = idx / BM; }
  };
  auto b_pos = [&](int e, int& d, int& c) {
    const int idx = tid + e * kGemmThreads;
    if (kAlongKB) { d = idx % BK; c = idx / BK; } else { d = idx / BN; c = idx % BN; }
  };

  T ra[A_PER], rb[B_PER];
  auto fetch = [&](int64_t p0) {
#pragma unroll
    for (int e = 0; e < A_PER; ++e) {
      int r, c;
      a_pos(e, r, c);
      const int64_t i = m0 + r, p = p0 + c;
      ra[e] = (i < M && p < ke) ? la(i, p) : T(0);
    }
#pragma unroll
    for (int e = 0; e < B_PER; ++e) {
      int d, c;
      b_pos(e, d, c);
      const int64_t j = n0 + c, p = p0 + d;
      rb[e] = (j < N && p < ke) ? lb(p, j) : T(0);
    }
  };
  auto stage = [&]() {
#pragma unroll
    for (int e = 0; e < A_PER; ++e) {
      int r, c;
      a_pos(e, r, c);
      As[c][r] = ra[e];
    }
#pragma unroll
    for (int e = 0; e < B_PER; ++e) {
      int d, c;
      b_pos(e, d, c);
      Bs[d][c] = rb[e];
    }
  };

  T acc[TM][TN];
#pragma unroll
  for (int i = 0; i < TM; ++i)
#pragma unroll
    for (int j = 0; j < TN; ++j) acc[i][j] = T(0);

  if (kb < ke) fetch(kb);
  for (int64_t p0 = kb; p0 < ke; p0 += BK) {
    stage();
    __syncthreads();
    if (p0 + BK < ke) fetch(p0 + BK);  // in flight while the FMAs below run
#pragma unroll
    for (int kk = 0; kk < BK; ++kk) {
      T a[TM], b[TN];
#pragma unroll
      for (int i = 0; i < TM; ++i) a[i] = As[kk][ty + i * RM];
#pragma unroll
      for (int j = 0; j < TN; ++j) b[j] = Bs[kk][tx + j * RN];
#pragma unroll
      for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] = fma(a[i], b[j], acc[i][j]);
    }
    __syncthreads();
  }

#pragma unroll
  for (int i = 0; i < TM; ++i) {
    const int64_t row = m0 + ty + i * RM;
    if (row >= M) continue;
#pragma unroll
    for (int j = 0; j < TN; ++j) {
      const int64_t col = n0 + tx + j * RN;
      if (col < N) epi(row, col, acc[i][j], static_cast<int64_t>(blockIdx.z));
    }
  }
}

// The epilogue of an unsplit product: hands the sum to fin.
template <typename T, class Fin>
struct DirectEpilogue {
  Fin fin;
  __device__ void operator()(int64_t i, int64_t j, T v, int64_t) const { fin(i, j, v); }
};

// Split-K: partial sums to ws[(split * M + i) * N + j].
template <typename T>
struct PartialEpilogue {
  T* ws;
  int64_t M, N;
  __device__ void operator()(int64_t i, int64_t j, T v, int64_t split) const { ws[(split * M + i) * N + j] = v; }
};

template <typename T, class Fin>
__global__ void splitk_reduce_kernel(Fin fin, const T* ws, int64_t M, int64_t N, int64_t splits) {
  const int64_t MN = M * N;
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < MN;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    T s = ws[idx];
    for (int64_t z = 1; z < splits; ++z) s += ws[z * MN + idx];  // fixed order: deterministic
    fin(idx / N, idx % N, s);
  }
}

// How many K ranges a product of `tiles` C tiles and depth K is split into: enough blocks
// for two waves on every SM, each range at least 32 slices deep, and a workspace of at most
// 256 MiB.
inline int64_t choose_splits(int64_t tiles, int64_t K, int64_t MN, size_t elem, int bk) {
  const int64_t want_blocks = 2LL * sm_count();
  if (tiles >= want_blocks) return 1;
  int64_t s = (want_blocks + tiles - 1) / tiles;
  s = std::min<int64_t>(s, K / (32LL * bk));
  const int64_t cap = static_cast<int64_t>((256ull << 20) / (elem * static_cast<size_t>(std::max<int64_t>(MN, 1))));
  s = std::min<int64_t>(s, cap);
  return s < 1 ? 1 : s;
}

// C = A B through loaders and an epilogue: fin(i, j, sum) is called once per element of C,
// also when K == 0 (with sum 0). Queued on stream().
template <typename T, bool kAlongKA, bool kAlongKB, class LA, class LB, class Fin>
void launch_gemm(LA la, LB lb, Fin fin, int64_t M, int64_t N, int64_t K) {
  using C = TileConfig<T>;
  if (M <= 0 || N <= 0) return;
  const int64_t tiles_m = (M + C::BM - 1) / C::BM, tiles_n = (N + C::BN - 1) / C::BN;
  if (tiles_n > 0x7fffffffLL || tiles_m > 65535)
    throw std::invalid_argument("matrix product too large for one CUDA grid: " + std::to_string(M) + " x " +
                                std::to_string(N));
  int64_t splits = K > 0 ? choose_splits(tiles_m * tiles_n, K, M * N, sizeof(T), C::BK) : 1;
  if (splits == 1) {
    tiled_gemm_kernel<T, kAlongKA, kAlongKB><<<dim3(static_cast<unsigned>(tiles_n), static_cast<unsigned>(tiles_m), 1),
                                              kGemmThreads, 0, stream()>>>(la, lb, DirectEpilogue<T, Fin>{fin}, M, N,
                                                                          K, K > 0 ? K : 1);
    NV_CUDA_LAUNCH_CHECK(tiled_gemm_kernel);
    return;
  }
  // Equal K ranges, each a whole number of BK slices; the last may be shorter.
  int64_t chunk = (K + splits - 1) / splits;
  chunk = (chunk + C::BK - 1) / C::BK * C::BK;
  splits = (K + chunk - 1) / chunk;
  Workspace ws(static_cast<size_t>(splits * M * N) * sizeof(T));
  tiled_gemm_kernel<T, kAlongKA, kAlongKB><<<dim3(static_cast<unsigned>(tiles_n), static_cast<unsigned>(tiles_m),
                                                  static_cast<unsigned>(splits)),
                                             kGemmThreads, 0, stream()>>>(la, lb, PartialEpilogue<T>{ws.as<T>(), M, N},
                                                                         M, N, K, chunk);
  NV_CUDA_LAUNCH_CHECK(tiled_gemm_kernel);
  splitk_reduce_kernel<T><<<blocks_for(M * N), kBlock, 0, stream()>>>(fin, ws.as<T>(), M, N, splits);
  NV_CUDA_LAUNCH_CHECK(splitk_reduce_kernel);
}

// Loaders for strided matrices: element (r, c) at p[r * rs + c * cs].
template <typename T>
struct StridedLoader {
  const T* p;
  int64_t rs, cs;
  __device__ T operator()(int64_t r, int64_t c) const { return p[r * rs + c * cs]; }
};

}  // namespace cuda
}  // namespace natverk
