// checks.h -- input validation at the binding boundary, the only place that
// sees Python objects. Every failure is a Python exception whose message
// names the argument: TypeError for a wrong dtype, ValueError for a wrong
// shape, layout or value. Kernels behind this boundary trust their inputs.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

namespace natverk {
namespace bind {

namespace py = pybind11;

inline std::string shape_str(const py::array& a) {
  std::ostringstream os;
  os << "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) os << (i ? ", " : "") << a.shape(i);
  if (a.ndim() == 1) os << ",";
  os << ")";
  return os.str();
}

inline bool is_little_endian() {
  const uint16_t probe = 1;
  return *reinterpret_cast<const unsigned char*>(&probe) == 1;
}

inline std::string dtype_str(const py::array& a) { return py::str(a.dtype()).cast<std::string>(); }

// Same type number and native byte order. Not dtype identity: an array that went through
// pickle (a process pool, a Dask worker) carries an equal but distinct dtype object.
inline bool same_dtype(const py::dtype& have, const py::dtype& want) {
  if (have.is(want)) return true;
  const char order = have.byteorder();
  return have.num() == want.num() && (order == '=' || order == '|' || order == want.byteorder() ||
                                      (order == '<') == is_little_endian());
}

template <typename T>
inline bool has_dtype(const py::array& a) {
  return same_dtype(a.dtype(), py::dtype::of<T>());
}

// Calls f(T{}) with T = float or double after the dtype of `a`.
template <typename F>
auto dispatch_float(const py::array& a, const char* name, F&& f) {
  if (has_dtype<float>(a)) return f(float{});
  if (has_dtype<double>(a)) return f(double{});
  throw py::type_error(std::string(name) + " must be a float32 or float64 array, got dtype " +
                       dtype_str(a));
}

template <typename T>
inline void require_dtype(const py::array& a, const char* name, const char* like) {
  if (!has_dtype<T>(a))
    throw py::type_error(std::string(name) + " must have the same dtype as " + like + " (" +
                         py::str(py::dtype::of<T>()).cast<std::string>() + "), got " +
                         dtype_str(a));
}

inline void require_ndim(const py::array& a, const char* name, py::ssize_t ndim) {
  if (a.ndim() != ndim)
    throw py::value_error(std::string(name) + " must be " + std::to_string(ndim) +
                          "-D, got shape " + shape_str(a));
}

inline void require_contiguous(const py::array& a, const char* name) {
  if (!(a.flags() & py::array::c_style))
    throw py::value_error(std::string(name) +
                          " must be C-contiguous (use numpy.ascontiguousarray), got strides that "
                          "are not row-major");
}

inline void require_writeable(const py::array& a, const char* name) {
  if (!a.writeable()) throw py::value_error(std::string(name) + " is read-only but is updated in place");
}

inline void require_nonempty(const py::array& a, const char* name) {
  if (a.size() == 0) throw py::value_error(std::string(name) + " is empty, shape " + shape_str(a));
}

inline void require_same_shape(const py::array& a, const char* na, const py::array& b,
                               const char* nb) {
  bool same = a.ndim() == b.ndim();
  for (py::ssize_t i = 0; same && i < a.ndim(); ++i) same = a.shape(i) == b.shape(i);
  if (!same)
    throw py::value_error(std::string(na) + " and " + nb + " must have the same shape, got " +
                          shape_str(a) + " and " + shape_str(b));
}

// A C-contiguous float array of dtype T: validated, then its pointer.
template <typename T>
inline const T* in_ptr(const py::array& a, const char* name) {
  require_contiguous(a, name);
  return static_cast<const T*>(a.data());
}

template <typename T>
inline T* inout_ptr(py::array& a, const char* name) {
  require_contiguous(a, name);
  require_writeable(a, name);
  return static_cast<T*>(a.mutable_data());
}

// Integer labels as a contiguous int64 vector of length m (1-D, or a
// MATLAB-style 1 x m / m x 1 row or column).
inline py::array_t<int64_t, py::array::c_style> labels(const py::array& y, const char* name,
                                                       py::ssize_t m) {
  const char kind = y.dtype().kind();
  if (kind != 'i' && kind != 'u')
    throw py::type_error(std::string(name) + " must hold integer class labels, got dtype " +
                         dtype_str(y));
  const bool vector_like =
      y.ndim() == 1 || (y.ndim() == 2 && (y.shape(0) == 1 || y.shape(1) == 1));
  if (!vector_like || y.size() != m)
    throw py::value_error(std::string(name) + " must hold one label per row (" + std::to_string(m) +
                          "), got shape " + shape_str(y));
  return py::array_t<int64_t, py::array::c_style | py::array::forcecast>::ensure(y);
}

inline double require_finite(double v, const char* name) {
  if (!std::isfinite(v)) throw py::value_error(std::string(name) + " must be finite, got " + std::to_string(v));
  return v;
}

inline double require_in(double v, const char* name, double lo, double hi, bool hi_open) {
  require_finite(v, name);
  if (v < lo || (hi_open ? v >= hi : v > hi)) {
    std::ostringstream os;
    os << name << " must be in [" << lo << ", " << hi << (hi_open ? ")" : "]") << ", got " << v;
    throw py::value_error(os.str());
  }
  return v;
}

template <typename T>
inline py::array_t<T> new_array(std::vector<py::ssize_t> shape) {
  return py::array_t<T>(shape);
}

}  // namespace bind
}  // namespace natverk
