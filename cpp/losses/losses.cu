// losses.cu -- the CUDA twin of losses.cpp: softmax cross-entropy (with optional class
// weights), MSE, binary cross-entropy on probabilities and on logits, their gradients, and
// sum_of_squares for the L2 penalty. The formulas and conventions are those of losses.h; each
// term below is the CPU loop body, in the same order and in double (Acc) whatever T is.
//
// Layout: C-contiguous (m, n) or (m,) arrays; softmax cross-entropy takes (m, K) logits and m
// int64 labels.
//
// Reductions (every forward loss) are deterministic and atomic-free: pass 1 runs
// reduce_blocks(n) blocks (a number that depends only on n, never on the GPU), each thread
// folds a fixed grid-stride subset of the terms and each block folds its threads with a fixed
// shared-memory tree into one partial; pass 2, one block, folds the partials the same way. The
// same input therefore gives the same bits on every run. The sum is in double; its order differs
// from the CPU's chunked order only by rounding (a few ulps of the total).
//
// Argument checks that need the data (labels in 0..K-1, BCE inputs in [0, 1], the class weights
// of the present labels summing to > 0) ride in the same reduction: the accumulator carries the
// smallest offending index (min is exact, so also deterministic). The host reads the 32-byte
// result once (a forward loss has to synchronize for its value anyway) and throws the CPU's
// std::invalid_argument, with the CPU's message, when an index is set. Kernels never use a bad
// label as an index, so a bad call reads and writes nothing out of bounds; its outputs are
// discarded by the exception. The gradients that check (softmax cross-entropy, BCE) therefore
// synchronize once too: raising the CPU's error needs the host to know. Copying the labels to
// the host and calling check_labels instead would move m * 8 bytes per step and still
// synchronize; the flag moves 32 bytes.
//
// Thread mapping: gradients are elementwise, one element per thread in a grid-stride loop
// (memory-bound). Softmax cross-entropy's probabilities and per-row -log p_y come from
// activations.cu's row kernel (softmax_rows), so they match softmax() bit for bit.
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "activations/activations.h"
#include "common/cuda_common.h"
#include "losses/losses.h"

namespace natverk {
namespace cuda {

namespace {

constexpr int64_t kNone = INT64_MAX;  // "no offending index"

// The reduction's accumulator: two double sums and two smallest bad indices. Plain data (no
// constructor) so that it can live in __shared__ memory.
struct Acc {
  double a;       // the loss sum (softmax CE: the weighted -log p_y)
  double b;       // softmax CE: the sum of the present labels' class weights
  int64_t bad0;   // softmax CE: first bad label; BCE: first pred outside [0, 1]
  int64_t bad1;   // BCE: first target outside [0, 1]
};

__host__ __device__ __forceinline__ Acc acc_zero() { return Acc{0.0, 0.0, kNone, kNone}; }

__device__ __forceinline__ Acc combine(const Acc& x, const Acc& y) {
  return Acc{x.a + y.a, x.b + y.b, x.bad0 < y.bad0 ? x.bad0 : y.bad0, x.bad1 < y.bad1 ? x.bad1 : y.bad1};
}

// Folds the block's per-thread accumulators (in sh) with a fixed tree; thread 0 gets the total.
__device__ __forceinline__ Acc block_fold(Acc v, Acc* sh) {
  sh[threadIdx.x] = v;
  __syncthreads();
  for (int s = kBlock / 2; s > 0; s >>= 1) {
    if (static_cast<int>(threadIdx.x) < s) sh[threadIdx.x] = combine(sh[threadIdx.x], sh[threadIdx.x + s]);
    __syncthreads();
  }
  return sh[0];
}

// Pass 1: block b folds terms i = b * kBlock + t + k * gridDim * kBlock into out[b].
template <typename F>
__global__ void __launch_bounds__(kBlock) reduce_partial_kernel(F f, int64_t n, Acc* out) {
  __shared__ Acc sh[kBlock];
  Acc v = acc_zero();
  for (int64_t i = blockIdx.x * static_cast<int64_t>(kBlock) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * kBlock)
    v = combine(v, f(i));
  v = block_fold(v, sh);
  if (threadIdx.x == 0) out[blockIdx.x] = v;
}

// Pass 2: one block folds the partials.
__global__ void __launch_bounds__(kBlock) reduce_final_kernel(const Acc* partial, int64_t count, Acc* out) {
  __shared__ Acc sh[kBlock];
  Acc v = acc_zero();
  for (int64_t i = threadIdx.x; i < count; i += kBlock) v = combine(v, partial[i]);
  v = block_fold(v, sh);
  if (threadIdx.x == 0) *out = v;
}

// Pass 1's block count: about 8 terms a thread, at most 1024 blocks (pass 2 then folds 4
// partials a thread). A function of n only, so the summation order is fixed for a given n.
constexpr int64_t kMaxPartials = 1024;
inline unsigned reduce_blocks(int64_t n) {
  const int64_t per_block = static_cast<int64_t>(kBlock) * 8;
  int64_t b = (n + per_block - 1) / per_block;
  if (b < 1) b = 1;
  if (b > kMaxPartials) b = kMaxPartials;
  return static_cast<unsigned>(b);
}

// Queues the reduction of f(0..n-1) into *result (device memory).
template <typename F>
void reduce(const F& f, int64_t n, Acc* result) {
  const unsigned blocks = reduce_blocks(n);
  if (blocks == 1) {
    reduce_partial_kernel<F><<<1, kBlock, 0, stream()>>>(f, n, result);
    NV_CUDA_LAUNCH_CHECK(reduce_partial_kernel);
    return;
  }
  Workspace partial(blocks * sizeof(Acc));
  reduce_partial_kernel<F><<<blocks, kBlock, 0, stream()>>>(f, n, partial.as<Acc>());
  NV_CUDA_LAUNCH_CHECK(reduce_partial_kernel);
  reduce_final_kernel<<<1, kBlock, 0, stream()>>>(partial.as<Acc>(), blocks, result);
  NV_CUDA_LAUNCH_CHECK(reduce_final_kernel);
}  // partial is freed in stream order, after reduce_final_kernel has read it

// Waits for the queued work and brings the result to the host.
Acc fetch(const Acc* result) {
  Acc h;
  NV_CUDA_CHECK(cudaMemcpyAsync(&h, result, sizeof(Acc), cudaMemcpyDeviceToHost, stream()));
  synchronize();
  return h;
}

// The CPU's messages (losses.cpp), thrown as the same std::invalid_argument (ValueError).
void throw_if_bad_label(const Acc& r, const int64_t* y, int64_t K) {
  if (r.bad0 == kNone) return;
  int64_t value = 0;
  NV_CUDA_CHECK(cudaMemcpyAsync(&value, y + r.bad0, sizeof(int64_t), cudaMemcpyDeviceToHost, stream()));
  synchronize();
  throw std::invalid_argument("y[" + std::to_string(r.bad0) + "] = " + std::to_string(value) +
                              " is not a class label in 0.." + std::to_string(K - 1));
}

void throw_if_not_unit(int64_t bad, const char* what) {
  if (bad == kNone) return;
  throw std::invalid_argument(std::string(what) + "[" + std::to_string(bad) +
                              "] is not in [0, 1] (binary cross-entropy needs probabilities)");
}

void throw_if_no_weight(const Acc& r) {
  if (!(r.b > 0)) throw std::invalid_argument("class_weights of the labels present sum to zero");
}

// A double product nvcc may not fuse with the add that follows (an FMA rounds once where the
// CPU build, compiled without -mfma, rounds twice): each term is rounded as on the CPU.
__device__ __forceinline__ double mul_rn(double a, double b) { return __dmul_rn(a, b); }

template <typename T>
__device__ __forceinline__ bool in_unit(T x) { return x >= T(0) && x <= T(1); }  // false for NaN

// ---------------------------------------------------------------------------------------------
// Reduction terms

// Softmax cross-entropy: label check, the label's class weight (1 without weights) and, in the
// forward, the row's weighted -log p_y from softmax_rows.
template <typename T>
struct CrossEntropyTerm {
  const int64_t* y;
  const T* class_weights;  // may be null
  const double* rowloss;   // null in the backward
  int64_t K;
  __device__ Acc operator()(int64_t i) const {
    Acc t = acc_zero();
    const int64_t c = y[i];
    if (c < 0 || c >= K) {
      t.bad0 = i;
      return t;
    }
    t.b = class_weights != nullptr ? static_cast<double>(class_weights[c]) : 1.0;
    if (rowloss != nullptr) t.a = rowloss[i];
    return t;
  }
};

template <typename T>
struct MseTerm {
  const T* pred;
  const T* target;
  __device__ Acc operator()(int64_t i) const {
    Acc t = acc_zero();
    const double d = static_cast<double>(pred[i]) - static_cast<double>(target[i]);
    t.a = mul_rn(d, d);
    return t;
  }
};

// BCE on probabilities; with value = false only the [0, 1] checks (the backward).
template <typename T>
struct BceTerm {
  const T* pred;
  const T* target;
  bool value;
  __device__ Acc operator()(int64_t i) const {
    Acc t = acc_zero();
    const T pi = pred[i], ti = target[i];
    const bool ok_p = in_unit(pi), ok_t = in_unit(ti);
    if (!ok_p) t.bad0 = i;
    if (!ok_t) t.bad1 = i;
    if (value && ok_p && ok_t) {
      const double p = pi, tt = ti;
      const double log_p = log(p), log_1mp = log1p(-p);
      const double lp = log_p < -100.0 ? -100.0 : log_p;  // std::max(log p, -100)
      const double l1p = log_1mp < -100.0 ? -100.0 : log_1mp;
      t.a = -(mul_rn(tt, lp) + mul_rn(1.0 - tt, l1p));  // acc -= ... on the CPU
    }
    return t;
  }
};

// BCE on logits: only the target is checked (bad1, reported as "target").
template <typename T>
struct BceLogitsTerm {
  const T* z;
  const T* target;
  bool value;
  __device__ Acc operator()(int64_t i) const {
    Acc t = acc_zero();
    const T ti = target[i];
    if (!in_unit(ti)) {
      t.bad1 = i;
      return t;
    }
    if (value) {
      const double x = z[i], tt = ti;
      const double pos = x < 0.0 ? 0.0 : x;  // std::max(x, 0.0): NaN stays NaN
      t.a = pos - mul_rn(x, tt) + log1p(exp(-fabs(x)));
    }
    return t;
  }
};

template <typename T>
struct SquareTerm {
  const T* w;
  __device__ Acc operator()(int64_t i) const {
    Acc t = acc_zero();
    const double v = static_cast<double>(w[i]);
    t.a = mul_rn(v, v);
    return t;
  }
};

// ---------------------------------------------------------------------------------------------
// Elementwise gradients: one element per thread, grid-stride.

template <typename F>
__global__ void for_each_kernel(F f, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    f(i);
}

template <typename F>
void for_each(const F& f, int64_t n) {
  if (n <= 0) return;
  for_each_kernel<F><<<blocks_for(n), kBlock, 0, stream()>>>(f, n);
  NV_CUDA_LAUNCH_CHECK(for_each_kernel);
}

// dz = w[y_r] (probs - onehot(y)) / sum w[y]; the weight total comes from the reduction's
// result on the device, so no host round trip sits between the two kernels.
template <typename T>
struct CrossEntropyGrad {
  T* dz;
  const T* probs;
  const int64_t* y;
  const T* class_weights;
  const Acc* total;
  int64_t K;
  __device__ void operator()(int64_t i) const {
    const int64_t r = i / K, j = i - r * K;
    const int64_t c = y[r];
    if (c < 0 || c >= K) {  // reported by the host; never an index
      dz[i] = T(0);
      return;
    }
    const T scale = static_cast<T>((class_weights != nullptr ? static_cast<double>(class_weights[c]) : 1.0) / total->b);
    dz[i] = (j == c ? probs[i] - T(1) : probs[i]) * scale;
  }
};

template <typename T>
struct MseGrad {
  T* d;
  const T* pred;
  const T* target;
  T scale;
  __device__ void operator()(int64_t i) const { d[i] = (pred[i] - target[i]) * scale; }
};

template <typename T>
struct BceGrad {
  T* d;
  const T* pred;
  const T* target;
  double scale;
  __device__ void operator()(int64_t i) const {
    const double p = pred[i], t = target[i];
    const double q = p * (1.0 - p);
    d[i] = static_cast<T>((p - t) / (q < 1e-12 ? 1e-12 : q) * scale);  // std::max(q, 1e-12)
  }
};

template <typename T>
struct BceLogitsGrad {
  T* d;
  const T* z;
  const T* target;
  double scale;
  __device__ void operator()(int64_t i) const {
    const double x = z[i];
    const double sig = x >= 0 ? 1.0 / (1.0 + exp(-x)) : exp(x) / (1.0 + exp(x));
    d[i] = static_cast<T>((sig - static_cast<double>(target[i])) * scale);
  }
};

__global__ void widen_labels_kernel(int64_t* out, const uint8_t* in, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    out[i] = static_cast<int64_t>(in[i]);
}

// The sum of a pair loss's count terms, after its [0, 1] checks (0 for no terms, as the CPU's
// parallel_sum). The caller applies the CPU's final expression to it.
template <typename F>
double checked_sum(const F& f, int64_t count) {
  if (count <= 0) return 0.0;
  Workspace result(sizeof(Acc));
  reduce(f, count, result.as<Acc>());
  const Acc r = fetch(result.as<Acc>());
  throw_if_not_unit(r.bad0, "pred");
  throw_if_not_unit(r.bad1, "target");
  return r.a;
}

}  // namespace

void check_labels(const int64_t* y, int64_t m, int64_t K) {
  if (m <= 0) return;
  Workspace result(sizeof(Acc));
  reduce(CrossEntropyTerm<float>{y, nullptr, nullptr, K}, m, result.as<Acc>());
  throw_if_bad_label(fetch(result.as<Acc>()), y, K);
}

void labels_to_int64(int64_t* out, const uint8_t* in, int64_t n) {
  if (n <= 0) return;
  widen_labels_kernel<<<blocks_for(n), kBlock, 0, stream()>>>(out, in, n);
  NV_CUDA_LAUNCH_CHECK(widen_labels_kernel);
}

template <typename T>
double softmax_cross_entropy_forward(T* probs, const T* z, const int64_t* y, const T* class_weights, int64_t m,
                                     int64_t K) {
  // One allocation: m per-row losses, then the reduction's result (offset m doubles: 8-aligned).
  Workspace ws(static_cast<size_t>(m > 0 ? m : 0) * sizeof(double) + sizeof(Acc));
  double* rowloss = ws.as<double>();
  Acc* result = reinterpret_cast<Acc*>(rowloss + (m > 0 ? m : 0));
  // rowloss is read only for rows with a valid label, which K <= 0 leaves none of.
  if (m > 0 && K > 0) softmax_rows<T>(probs, z, m, K, y, class_weights, rowloss);
  reduce(CrossEntropyTerm<T>{y, class_weights, rowloss, K}, m, result);
  const Acc r = fetch(result);
  throw_if_bad_label(r, y, K);
  throw_if_no_weight(r);
  return r.a / r.b;
}

template <typename T>
void softmax_cross_entropy_backward(T* dz, const T* probs, const int64_t* y, const T* class_weights, int64_t m,
                                    int64_t K) {
  Workspace result(sizeof(Acc));
  reduce(CrossEntropyTerm<T>{y, class_weights, nullptr, K}, m, result.as<Acc>());
  if (K > 0) for_each(CrossEntropyGrad<T>{dz, probs, y, class_weights, result.as<Acc>(), K}, m * K);
  // The CPU raises before writing dz; here dz is written and discarded with the exception.
  const Acc r = fetch(result.as<Acc>());
  throw_if_bad_label(r, y, K);
  throw_if_no_weight(r);
}

template <typename T>
double mse_forward(const T* pred, const T* target, int64_t m, int64_t n, bool mean) {
  const double s = checked_sum(MseTerm<T>{pred, target}, m * n);
  return 0.5 * s / (mean ? static_cast<double>(m) : 1.0);
}

template <typename T>
void mse_backward(T* dpred, const T* pred, const T* target, int64_t m, int64_t n, bool mean) {
  const T scale = static_cast<T>(mean ? 1.0 / static_cast<double>(m) : 1.0);
  for_each(MseGrad<T>{dpred, pred, target, scale}, m * n);
}

template <typename T>
double bce_forward(const T* pred, const T* target, int64_t m, int64_t n, bool mean) {
  const double s = checked_sum(BceTerm<T>{pred, target, true}, m * n);
  return s / (mean ? static_cast<double>(m) : 1.0);
}

template <typename T>
void bce_backward(T* dpred, const T* pred, const T* target, int64_t m, int64_t n, bool mean) {
  const double scale = mean ? 1.0 / static_cast<double>(m) : 1.0;
  if (m * n <= 0) return;
  Workspace result(sizeof(Acc));
  reduce(BceTerm<T>{pred, target, false}, m * n, result.as<Acc>());
  for_each(BceGrad<T>{dpred, pred, target, scale}, m * n);
  const Acc r = fetch(result.as<Acc>());
  throw_if_not_unit(r.bad0, "pred");
  throw_if_not_unit(r.bad1, "target");
}

template <typename T>
double bce_with_logits_forward(const T* z, const T* target, int64_t m, int64_t n, bool mean) {
  const double s = checked_sum(BceLogitsTerm<T>{z, target, true}, m * n);
  return s / (mean ? static_cast<double>(m) : 1.0);
}

template <typename T>
void bce_with_logits_backward(T* dz, const T* z, const T* target, int64_t m, int64_t n, bool mean) {
  const double scale = mean ? 1.0 / static_cast<double>(m) : 1.0;
  if (m * n <= 0) return;
  Workspace result(sizeof(Acc));
  reduce(BceLogitsTerm<T>{z, target, false}, m * n, result.as<Acc>());
  for_each(BceLogitsGrad<T>{dz, z, target, scale}, m * n);
  const Acc r = fetch(result.as<Acc>());
  throw_if_not_unit(r.bad1, "target");
}

template <typename T>
double sum_of_squares(const T* w, int64_t n) {
  if (n <= 0) return 0.0;
  Workspace result(sizeof(Acc));
  reduce(SquareTerm<T>{w}, n, result.as<Acc>());
  return fetch(result.as<Acc>()).a;
}

#define NATVERK_INSTANTIATE(T)                                                                    \
  template double softmax_cross_entropy_forward<T>(T*, const T*, const int64_t*, const T*,         \
                                                   int64_t, int64_t);                             \
  template void softmax_cross_entropy_backward<T>(T*, const T*, const int64_t*, const T*, int64_t, \
                                                  int64_t);                                        \
  template double mse_forward<T>(const T*, const T*, int64_t, int64_t, bool);                      \
  template void mse_backward<T>(T*, const T*, const T*, int64_t, int64_t, bool);                   \
  template double bce_forward<T>(const T*, const T*, int64_t, int64_t, bool);                      \
  template void bce_backward<T>(T*, const T*, const T*, int64_t, int64_t, bool);                   \
  template double bce_with_logits_forward<T>(const T*, const T*, int64_t, int64_t, bool);          \
  template void bce_with_logits_backward<T>(T*, const T*, const T*, int64_t, int64_t, bool);       \
  template double sum_of_squares<T>(const T*, int64_t);
NATVERK_INSTANTIATE(float)
NATVERK_INSTANTIATE(double)
#undef NATVERK_INSTANTIATE

}  // namespace cuda
}  // namespace natverk
