// tensor.h -- natverk._core.cuda.Tensor: a C-contiguous array in GPU memory, and the
// argument helpers the CUDA bindings share (the memory-safety checks: types, dtypes,
// shapes; the Python layer checks the user's arguments once, at the public boundary).
//
// A Tensor owns its memory through a shared_ptr whose deleter frees it in stream order, so
// a Python object that dies while a kernel still reads it cannot free memory early.
// Tensors are made from NumPy (to_device) or by the kernels; .numpy() copies back.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "bindings/checks.h"
#include "common/cuda_common.h"

namespace natverk {
namespace bind {
namespace cudab {

namespace py = pybind11;

enum class DType { float32, float64, int64, uint8 };

inline const char* dtype_name(DType d) {
  switch (d) {
    case DType::float32: return "float32";
    case DType::float64: return "float64";
    case DType::int64: return "int64";
    case DType::uint8: return "uint8";
  }
  return "?";
}

inline size_t dtype_size(DType d) {
  switch (d) {
    case DType::float32: return 4;
    case DType::float64: return 8;
    case DType::int64: return 8;
    case DType::uint8: return 1;
  }
  return 0;
}

template <typename T> constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::float32; }
template <> constexpr DType dtype_of<double>() { return DType::float64; }
template <> constexpr DType dtype_of<int64_t>() { return DType::int64; }
template <> constexpr DType dtype_of<uint8_t>() { return DType::uint8; }

struct Tensor {
  std::shared_ptr<void> data;  // null when numel == 0
  std::vector<int64_t> shape;
  DType dtype = DType::float32;
  int64_t numel = 0;

  size_t nbytes() const { return static_cast<size_t>(numel) * dtype_size(dtype); }
  int64_t ndim() const { return static_cast<int64_t>(shape.size()); }
  int64_t dim(int64_t i) const { return shape[static_cast<size_t>(i < 0 ? i + ndim() : i)]; }
  template <typename T> T* ptr() const { return static_cast<T*>(data.get()); }
};

// A new, uninitialised tensor on the device.
inline Tensor empty(std::vector<int64_t> shape, DType dtype) {
  Tensor t;
  t.dtype = dtype;
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) throw py::value_error("shape " + shape_str(shape) + " has a negative size");
    if (d != 0 && n > INT64_MAX / d) throw py::value_error("shape " + shape_str(shape) + " is too large");
    n *= d;
  }
  t.shape = std::move(shape);
  t.numel = n;
  if (n > 0) {
    if (static_cast<uint64_t>(n) > SIZE_MAX / dtype_size(dtype))
      throw py::value_error("shape " + shape_str(t.shape) + " is too large");
    void* p = natverk::cuda::device_alloc(t.nbytes());
    t.data = std::shared_ptr<void>(p, [](void* q) { natverk::cuda::device_free(q); });
  }
  return t;
}

template <typename T>
inline Tensor empty_as(std::vector<int64_t> shape) { return empty(std::move(shape), dtype_of<T>()); }

// The argument as a Tensor, or a TypeError that names it.
inline Tensor& as_tensor(const py::handle& obj, const char* name) {
  try {
    return obj.cast<Tensor&>();
  } catch (const py::cast_error&) {
    throw py::type_error(std::string(name) + " must be a natverk.cuda.Tensor (natverk.cuda.to_device(array)), got " +
                         type_name(obj));
  }
}

inline void require_float_tensor(const Tensor& t, const char* name) {
  if (t.dtype != DType::float32 && t.dtype != DType::float64)
    throw py::type_error(std::string(name) + " must be float32 or float64, got " + dtype_name(t.dtype));
}

template <typename T>
inline void require_tensor_dtype(const Tensor& t, const char* name, const char* like) {
  if (t.dtype != dtype_of<T>())
    throw py::type_error(std::string(name) + " must have the same dtype as " + like + " (" + dtype_name(dtype_of<T>()) +
                         "), got " + dtype_name(t.dtype));
}

inline void require_tensor_ndim(const Tensor& t, const char* name, int64_t ndim) {
  if (t.ndim() != ndim)
    throw py::value_error(std::string(name) + " must be " + std::to_string(ndim) + "-D, got shape " +
                          shape_str(t.shape));
}

inline void require_tensor_shape(const Tensor& t, const char* name, const std::vector<int64_t>& want) {
  if (t.shape != want)
    throw py::value_error(std::string(name) + " must have shape " + shape_str(want) + ", got " + shape_str(t.shape));
}

inline void require_same_tensor_shape(const Tensor& a, const char* na, const Tensor& b, const char* nb) {
  if (a.shape != b.shape)
    throw py::value_error(std::string(nb) + " must have the shape of " + na + " " + shape_str(a.shape) + ", got " +
                          shape_str(b.shape));
}

// f(float{}) or f(double{}) by the tensor's dtype; a TypeError naming it otherwise.
template <typename F>
auto dispatch_float_tensor(const Tensor& t, const char* name, F&& f) {
  require_float_tensor(t, name);
  if (t.dtype == DType::float64) return f(double{});
  return f(float{});
}

// Registers Tensor, to_device, empty/zeros and the device queries (module_cuda.cpp).
void bind_tensor(py::module_& m);

}  // namespace cudab
}  // namespace bind
}  // namespace natverk
