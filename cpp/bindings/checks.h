// checks.h -- input validation at the binding boundary, the only place that
// sees Python objects. Every failure is a Python exception whose message
// names the argument: TypeError for a wrong type or dtype, ValueError for a
// wrong shape, layout or value. Kernels behind this boundary trust their inputs.
//
// Array arguments are declared py::object and converted with as_array(), never
// by pybind11's py::array caster: a list or None there fails overload resolution
// with "incompatible function arguments" and a dump of the whole signature,
// which names no argument.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "common/shape.h"

namespace natverk {
namespace bind {

namespace py = pybind11;

// "list", "NoneType" -> "None", "numpy.float64", ...: what a caller passed, for messages.
inline std::string type_name(const py::handle& obj) {
  if (obj.is_none()) return "None";
  return Py_TYPE(obj.ptr())->tp_name;
}

// An array argument: a numpy.ndarray (or subclass), as pybind11's py::array accepted before.
// Deliberately no numpy.asarray conversion of lists: several kernels update an argument in
// place (w, v, s, Z, running_mean, ...), and a converted temporary would silently swallow
// the update; one rule for every argument is easier to remember than two.
inline py::array as_array(const py::handle& obj, const char* name) {
  if (!py::isinstance<py::array>(obj))
    throw py::type_error(std::string(name) + " must be a NumPy array, got " + type_name(obj));
  return py::reinterpret_borrow<py::array>(obj);
}

// An optional array argument: None is "not given" (std::nullopt).
inline std::optional<py::array> as_optional_array(const py::handle& obj, const char* name) {
  if (obj.is_none()) return std::nullopt;
  if (!py::isinstance<py::array>(obj))
    throw py::type_error(std::string(name) + " must be a NumPy array or None, got " + type_name(obj));
  return py::reinterpret_borrow<py::array>(obj);
}

// A list (or tuple) of arrays, e.g. mlp_train_step's weights: the sequence itself. Its items
// go through as_array with a name like "weights[2]".
inline py::sequence as_array_list(const py::handle& obj, const char* name) {
  if (!py::isinstance<py::list>(obj) && !py::isinstance<py::tuple>(obj))
    throw py::type_error(std::string(name) + " must be a list of NumPy arrays, got " + type_name(obj));
  return py::reinterpret_borrow<py::sequence>(obj);
}

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

// A float argument (a Python float, i.e. a double) that the kernel uses in the arrays' dtype T:
// a learning rate, lambda_, alpha/beta, eps, ... It must be finite, and so must be its value in T:
// lambda_ = 1e300 is a finite double but inf as a float32, and float32 kernels then returned inf
// gradients without a word. |v| above T's largest finite value is rejected outright (casting such
// a double to float is undefined behaviour in C++, inf on IEEE hardware). Use this for every float
// argument of a kernel whose arrays have dtype T; range checks (>= 0, < 1, ...) come on top.
template <typename T>
inline double require_float_arg(double v, const char* name) {
  require_finite(v, name);
  if (std::fabs(v) > static_cast<double>(std::numeric_limits<T>::max())) {
    std::ostringstream os;
    os << name << " = " << v << " overflows the arrays' dtype "
       << py::str(py::dtype::of<T>()).cast<std::string>() << " (largest finite value "
       << static_cast<double>(std::numeric_limits<T>::max()) << ")";
    throw py::value_error(os.str());
  }
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

// An optimizer's eps (> 0, checked already) as a divisor guard in dtype T: it must stay > 0 in
// T. 1e-50 is 0 as a float32, and Adam/RMSprop then divide 0 by sqrt(0) + 0 = NaN for every
// weight whose gradient and second moment are zero.
template <typename T>
inline void require_eps_in_dtype(double eps) {
  if (!(static_cast<T>(eps) > T(0))) {
    std::ostringstream os;
    os << "eps = " << eps << " is 0 in the arrays' dtype "
       << py::str(py::dtype::of<T>()).cast<std::string>() << " (smallest positive value "
       << static_cast<double>(std::numeric_limits<T>::denorm_min()) << ")";
    throw py::value_error(os.str());
  }
}

// A new output array of dtype T. The element count and byte size are checked for int64
// overflow first (common/shape.h), so a shape multiplied together from several arguments
// (gemm's C is (rows of A, columns of B)) fails with a ValueError naming the output rather
// than wrapping around. What fits but exceeds memory raises MemoryError from NumPy.
template <typename T>
inline py::array_t<T> new_array(std::initializer_list<py::ssize_t> shape, const char* what) {
  int64_t n = 1;
  for (py::ssize_t d : shape) n = checked_mul(n, d, what);
  checked_bytes(n, sizeof(T), what);
  return py::array_t<T>(std::vector<py::ssize_t>(shape));
}

// Same shape as `like` (an existing array, so its size cannot overflow).
template <typename T>
inline py::array_t<T> new_array_like(const py::array& like) {
  return py::array_t<T>(std::vector<py::ssize_t>(like.shape(), like.shape() + like.ndim()));
}

}  // namespace bind
}  // namespace natverk
