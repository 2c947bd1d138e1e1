// shape.h -- overflow-checked size arithmetic, shared by every kernel family and binding.
//
// Why: output sizes, element counts and workspace sizes are products and sums of int64
// values that come from Python. Array dimensions are bounded by memory that exists, but
// stride, padding, dilation and pooling kernel sizes are plain integers: any value up to
// 2^63 - 1 arrives. Signed overflow is undefined behaviour, and in practice it wraps: a
// padding of 2^63 - 2 made the padded width 2^64 + 1 == 1, the convolution "fitted", and the
// kernel returned an array of the wrong shape (or read outside the input). Every such
// computation goes through these helpers instead, which use the compiler's overflow
// builtins and throw std::invalid_argument (pybind11 turns it into ValueError) with a
// message naming the argument responsible.
//
// Header-only and free of pybind11, so kernels (cpp/<family>/) and bindings both use it.
#pragma once
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <utility>

namespace natverk {

inline std::string pair_str(int64_t h, int64_t w) {
  return "(" + std::to_string(h) + ", " + std::to_string(w) + ")";
}

// a + b; throws "<what> overflows int64 (a + b)". `what` is only read on failure.
inline int64_t checked_add(int64_t a, int64_t b, const char* what) {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r))
    throw std::invalid_argument(std::string(what) + " overflows int64 (" + std::to_string(a) +
                                " + " + std::to_string(b) + ")");
  return r;
}

// a * b; throws "<what> overflows int64 (a * b)".
inline int64_t checked_mul(int64_t a, int64_t b, const char* what) {
  int64_t r;
  if (__builtin_mul_overflow(a, b, &r))
    throw std::invalid_argument(std::string(what) + " overflows int64 (" + std::to_string(a) +
                                " * " + std::to_string(b) + ")");
  return r;
}

// Number of elements of an array of shape `dims` (each >= 0), e.g. N*C*H*W. Throws
// "<what> of shape (d0, d1, ...) has more elements than int64 can count".
inline int64_t checked_numel(std::initializer_list<int64_t> dims, const char* what) {
  int64_t n = 1;
  bool overflow = false;
  for (int64_t d : dims) overflow |= __builtin_mul_overflow(n, d, &n);
  if (overflow) {
    std::string shape = "(";
    bool first = true;
    for (int64_t d : dims) {
      shape += (first ? "" : ", ") + std::to_string(d);
      first = false;
    }
    throw std::invalid_argument(std::string(what) + " of shape " + shape + ")" +
                                " has more elements than int64 can count");
  }
  return n;
}

// Bytes of `count` elements of `elem` bytes each, as an allocation size. Also bounded by
// INT64_MAX (not SIZE_MAX): NumPy's limit, and what the kernels index with.
inline size_t checked_bytes(int64_t count, size_t elem, const char* what) {
  int64_t bytes;
  if (count < 0 || __builtin_mul_overflow(count, static_cast<int64_t>(elem), &bytes))
    throw std::invalid_argument(std::string(what) + " would need " + std::to_string(count) + " x " +
                                std::to_string(elem) + " bytes, more than int64 can count");
  return static_cast<size_t>(bytes);
}

// ----------------------------------------------------------------------------------------------
// Sliding-window output size (convolution and pooling), per axis:
//
//   effective kernel  e   = dilation * (kernel - 1) + 1
//   padded input      p   = in + 2 * pad
//   output            out = (p - e) / stride + 1            (thesis eq. 15 with dilation)
//
// e and p can overflow; once both fit and p >= e, out cannot (0 <= p - e < INT64_MAX).

enum class WindowFault { none, effective_kernel_overflows, padded_input_overflows, kernel_too_large };

struct WindowAxis {
  int64_t effective = 0, padded = 0, out = 0;
};

// One axis. Inputs must already be range-checked by the caller (in, kernel, stride,
// dilation >= 1; pad >= 0). Never throws: the 2-D wrapper below words the failure.
inline WindowFault conv_out_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad,
                                 int64_t dilation, WindowAxis* axis) noexcept {
  int64_t e, p;
  if (__builtin_mul_overflow(dilation, kernel - 1, &e) || __builtin_add_overflow(e, int64_t{1}, &e))
    return WindowFault::effective_kernel_overflows;
  if (__builtin_mul_overflow(pad, int64_t{2}, &p) || __builtin_add_overflow(in, p, &p))
    return WindowFault::padded_input_overflows;
  axis->effective = e;
  axis->padded = p;
  if (p < e) return WindowFault::kernel_too_large;
  axis->out = (p - e) / stride + 1;
  return WindowFault::none;
}

// A 2-D window's geometry as the caller passed it: (h, w) pairs. Pooling has dilation (1, 1).
struct Window2d {
  int64_t kh, kw;  // kernel
  int64_t sh, sw;  // stride
  int64_t ph, pw;  // zero padding
  int64_t dh, dw;  // dilation
};

// (Ho, Wo) of `g` sliding over an H x W input. Throws std::invalid_argument naming the
// argument at fault, with the whole pair as the caller wrote it, e.g.
//   "dilation (9223372036854775807, 1) makes the effective kernel size overflow int64 ..."
// `dilated` adds "with dilation" to the kernel-too-large message (convolution's wording).
inline std::pair<int64_t, int64_t> conv_out_size(int64_t H, int64_t W, const Window2d& g,
                                                 bool dilated) {
  WindowAxis a[2];
  const WindowFault f[2] = {conv_out_size(H, g.kh, g.sh, g.ph, g.dh, &a[0]),
                            conv_out_size(W, g.kw, g.sw, g.pw, g.dw, &a[1])};
  for (WindowFault fault : f) {
    if (fault == WindowFault::effective_kernel_overflows)
      throw std::invalid_argument("dilation " + pair_str(g.dh, g.dw) +
                                  " makes the effective kernel size overflow int64 (dilation * "
                                  "(kernel - 1) + 1 with kernel " + pair_str(g.kh, g.kw) + ")");
    if (fault == WindowFault::padded_input_overflows)
      throw std::invalid_argument("padding " + pair_str(g.ph, g.pw) +
                                  " makes the padded input size overflow int64 (input + 2 * padding "
                                  "with input " + pair_str(H, W) + ")");
  }
  if (f[0] != WindowFault::none || f[1] != WindowFault::none)
    throw std::invalid_argument("kernel (" + std::to_string(a[0].effective) + " x " +
                                std::to_string(a[1].effective) + (dilated ? " with dilation" : "") +
                                ") is larger than the padded input (" + std::to_string(a[0].padded) +
                                " x " + std::to_string(a[1].padded) + ")");
  return {a[0].out, a[1].out};
}

}  // namespace natverk
