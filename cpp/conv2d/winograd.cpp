// winograd.cpp -- Winograd F(2x2,3x3) and F(4x4,3x3) convolution (see winograd.h): the
// weight transforms, the threads and the dW reduction around the data side of
// winograd_tiles.h.
//
// Work is split over images, one contiguous range per thread: a thread owns whole images,
// so the overlapping patches of backward-data never race, and backward-weights sums into
// a private dU per chunk, added in chunk order (the same bits for a given thread count,
// as conv2d.cpp's im2col path).
//
// Until 2026-12 the data side ran in the NCHW rows themselves, vectorised along a row of
// tiles ("phase-major" rows, strided row copies in and out of every block). On the Table 4
// MNIST CNN's 14- and 7-pixel images a row is 7 or 2 tiles, and those copies and the short
// transform loops took half the layers' time; the channel-vectorised tiles replaced them
// at every shape measured (benchmarks/README.md, "Winograd tiles vectorised over channels").
#include "conv2d/winograd.h"

#include <cstring>
#include <type_traits>

#include "conv2d/winograd_tiles.h"
#include "conv2d/winograd_weights.h"

#include "common/cpu_features.h"
#include "common/parallel.h"
#include "common/scratch.h"
#include "common/shape.h"
#include "gemm/gemm.h"

namespace natverk {

bool winograd_applies(const Conv2dShape& s) {
  return s.kH == 3 && s.kW == 3 && s.sh == 1 && s.sw == 1 && s.dh == 1 && s.dw == 1 &&
         s.groups == 1;
}

namespace {

// Each thread's workspace for the data side.
thread_local Scratch t_wino;
// The caller's transformed weights and dU partial sums: kept between calls, so a
// training step allocates nothing once its shapes have been seen.
thread_local Scratch t_wino_u, t_wino_du;

// The GEMM micro-kernel's rows at this SIMD level decide the block size (make_geom).
template <typename T, int M>
wino_tiles::Geom geom(const Conv2dShape& s, int lanes) {
  const GemmBlocking b = std::is_same_v<T, float> ? gemm_blocking_f32() : gemm_blocking_f64();
  return wino_tiles::make_geom<M>(s, lanes, b.mr);
}

template <typename T, int M>
wino_tiles::Fns<T, M> tile_fns() {
  switch (simd_level()) {
#if defined(NATVERK_HAVE_X86_KERNELS)
    case SimdLevel::AVX512: return wino_tiles::avx512::fns<T, M>();
    case SimdLevel::AVX2: return wino_tiles::avx2::fns<T, M>();
#endif
    default: return wino_tiles::generic::fns<T, M>();
  }
}

}  // namespace

template <typename T, int M>
void winograd_forward(T* Y, const T* X, const T* Wt, const T* b, const Conv2dShape& s, const ConvEvalEpilogue* ep) {
  constexpr int A = M + 2, A2 = A * A;
  const wino_tiles::Fns<T, M> f = tile_fns<T, M>();
  const wino_tiles::Geom g = geom<T, M>(s, f.lanes);
  // sized (and checked) on the caller, before the region
  const size_t bytes = checked_bytes(wino_tiles::work_elems<M>(g, true, false, false), sizeof(T),
                                     "the Winograd workspace");
  T* UT = static_cast<T*>(t_wino_u.get(checked_bytes(checked_mul(A2 * s.K, s.C, "the Winograd weights"),
                                                      sizeof(T), "the Winograd weights")));
  winograd_weights_in<T, M>(nullptr, UT, Wt, s.K, s.C);
  const wino_tiles::Job<T> job{&s, g, Y, nullptr, nullptr, X, nullptr, UT, b, ep};
  parallel_for(s.N, 1, [&](int64_t n0, int64_t n1, int) {
    f.fwd(job, static_cast<T*>(t_wino.get(bytes)), n0, n1);
  });
}

template <typename T, int M>
void winograd_backward(T* dX, T* dW, const T* dY, const T* X, const T* Wt, const Conv2dShape& s) {
  constexpr int A = M + 2, A2 = A * A;
  if (!dX && !dW) return;
  const int64_t C = s.C, K = s.K, ukc = A2 * K * C;
  T* U = nullptr;
  if (dX) {
    U = static_cast<T*>(t_wino_u.get(checked_bytes(ukc, sizeof(T), "the Winograd weights")));
    winograd_weights_in<T, M>(U, nullptr, Wt, K, C);
  }
  // dU partial sums, one per chunk, added in chunk order below
  const int chunks = plan_chunks(s.N, 1);
  T* dU = nullptr;
  if (dW) {
    const int64_t n = checked_mul(ukc, chunks, "the Winograd dW partial sums");
    dU = static_cast<T*>(t_wino_du.get(checked_bytes(n, sizeof(T), "the Winograd dW partial sums")));
    std::memset(dU, 0, sizeof(T) * static_cast<size_t>(n));
  }
  const wino_tiles::Fns<T, M> f = tile_fns<T, M>();
  const wino_tiles::Geom g = geom<T, M>(s, f.lanes);
  const size_t bytes = checked_bytes(wino_tiles::work_elems<M>(g, false, dW != nullptr, dX != nullptr),
                                     sizeof(T), "the Winograd workspace");
  const wino_tiles::Job<T> job{&s, g, nullptr, dX, dU, X, dY, U, nullptr, nullptr};
  parallel_for_chunks(s.N, chunks, [&](int64_t n0, int64_t n1, int chunk) {
    f.bwd(job, static_cast<T*>(t_wino.get(bytes)), n0, n1, chunk);
  });
  if (!dW) return;
  // dW[k,c] = G^T (sum over chunks of dU[k,c], in chunk order) G, in double; output
  // channels split between the threads, each element's arithmetic the same whoever runs it
  winograd_weights_out<T, M>(dW, dU, chunks, K, C);
}

template void winograd_forward<float, 2>(float*, const float*, const float*, const float*,
                                                  const Conv2dShape&, const ConvEvalEpilogue*);
template void winograd_forward<float, 4>(float*, const float*, const float*, const float*,
                                                  const Conv2dShape&, const ConvEvalEpilogue*);
template void winograd_forward<double, 2>(double*, const double*, const double*, const double*,
                                                  const Conv2dShape&, const ConvEvalEpilogue*);
template void winograd_forward<double, 4>(double*, const double*, const double*, const double*,
                                                  const Conv2dShape&, const ConvEvalEpilogue*);
template void winograd_backward<float, 2>(float*, float*, const float*, const float*, const float*, const Conv2dShape&);
template void winograd_backward<float, 4>(float*, float*, const float*, const float*, const float*, const Conv2dShape&);
template void winograd_backward<double, 2>(double*, double*, const double*, const double*, const double*, const Conv2dShape&);
template void winograd_backward<double, 4>(double*, double*, const double*, const double*, const double*, const Conv2dShape&);

}  // namespace natverk
