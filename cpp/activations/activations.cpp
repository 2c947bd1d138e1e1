// activations.cpp -- see activations.h for the formulas.
#include "activations/activations.h"

#include <cmath>
#include <stdexcept>

#include "common/elementwise.h"

namespace natverk {

Activation parse_activation(const std::string& name) {
  if (name == "relu") return Activation::ReLU;
  if (name == "sigmoid") return Activation::Sigmoid;
  if (name == "tanh") return Activation::Tanh;
  if (name == "linear" || name == "identity" || name == "none") return Activation::Identity;
  throw std::invalid_argument("activation must be 'relu', 'sigmoid', 'tanh' or 'linear', got '" +
                              name + "'");
}

const char* activation_name(Activation a) {
  switch (a) {
    case Activation::ReLU: return "relu";
    case Activation::Sigmoid: return "sigmoid";
    case Activation::Tanh: return "tanh";
    default: return "linear";
  }
}

namespace {

// Stable for large |z|: never evaluates exp of a large positive number.
template <typename T>
inline T sigmoid(T z) {
  if (z >= T(0)) return T(1) / (T(1) + std::exp(-z));
  const T e = std::exp(z);
  return e / (T(1) + e);
}

}  // namespace

template <typename T>
void activation_forward(T* out, const T* in, int64_t n, Activation act) {
  parallel_elementwise(n, [&](int64_t b, int64_t e) {
    switch (act) {
      case Activation::ReLU:
        // (z > 0 || z != z): keep NaN, as np.maximum(0, z) does.
        // One unconditional load and a select: the form the compiler turns into SIMD blends.
        for (int64_t i = b; i < e; ++i) {
          const T z = in[i];
          out[i] = (z > T(0) || z != z) ? z : T(0);
        }
        break;
      case Activation::Sigmoid:
        for (int64_t i = b; i < e; ++i) out[i] = sigmoid(in[i]);
        break;
      case Activation::Tanh:
        for (int64_t i = b; i < e; ++i) out[i] = std::tanh(in[i]);
        break;
      case Activation::Identity:
        if (out != in)
          for (int64_t i = b; i < e; ++i) out[i] = in[i];
        break;
    }
  });
}

template <typename T>
void activation_backward(T* dz, const T* dh, const T* h, int64_t n, Activation act) {
  parallel_elementwise(n, [&](int64_t b, int64_t e) {
    switch (act) {
      case Activation::ReLU:
        relu_backward_serial(dz + b, dh + b, h + b, e - b);
        break;
      case Activation::Sigmoid:
        for (int64_t i = b; i < e; ++i) dz[i] = dh[i] * h[i] * (T(1) - h[i]);
        break;
      case Activation::Tanh:
        for (int64_t i = b; i < e; ++i) dz[i] = dh[i] * (T(1) - h[i] * h[i]);
        break;
      case Activation::Identity:
        if (dz != dh)
          for (int64_t i = b; i < e; ++i) dz[i] = dh[i];
        break;
    }
  });
}

template <typename T>
void softmax_forward(T* probs, const T* z, int64_t rows, int64_t cols) {
  parallel_for(rows, cols > 0 ? kElementwiseGrain / cols + 1 : rows, [&](int64_t b, int64_t e, int) {
    for (int64_t r = b; r < e; ++r) {
      const T* zr = z + r * cols;
      T* pr = probs + r * cols;
      T mx = zr[0];
      for (int64_t j = 1; j < cols; ++j) mx = zr[j] > mx ? zr[j] : mx;
      typename Acc<T>::type sum = 0;
      for (int64_t j = 0; j < cols; ++j) {
        pr[j] = std::exp(zr[j] - mx);
        sum += pr[j];
      }
      const T total = static_cast<T>(sum);
      for (int64_t j = 0; j < cols; ++j) pr[j] /= total;
    }
  });
}

#define NATVERK_INSTANTIATE(T)                                                         \
  template void activation_forward<T>(T*, const T*, int64_t, Activation);             \
  template void activation_backward<T>(T*, const T*, const T*, int64_t, Activation);  \
  template void softmax_forward<T>(T*, const T*, int64_t, int64_t);
NATVERK_INSTANTIATE(float)
NATVERK_INSTANTIATE(double)
#undef NATVERK_INSTANTIATE

}  // namespace natverk
