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
#include <cstdio>
#include <string>
#include <vector>

#include "bindings/array_pool.h"
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

// A list (or tuple) of arrays, e.g. the step plan's optimizer state v: the sequence itself. Its
// items go through as_array with a name like "v[2]".
inline py::sequence as_array_list(const py::handle& obj, const char* name) {
  if (!py::isinstance<py::list>(obj) && !py::isinstance<py::tuple>(obj))
    throw py::type_error(std::string(name) + " must be a list of NumPy arrays, got " + type_name(obj));
  return py::reinterpret_borrow<py::sequence>(obj);
}

// Messages are built from std::string and std::to_string / num_str, never through a
// std::ostringstream: in the CUDA build on the project's H200 machine the first message
// formatted through one (batch norm's "momentum must be in [0, 1]") killed the process with a
// segmentation fault, while the messages built from strings next to it were raised as usual.
// Why (the machine's libstdc++ stream or locale state) is not established.
// A shape as Python writes a tuple: (2, 3), (4,), (). Also the CUDA Tensors' (cuda/tensor.h).
inline std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "(";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + (s.size() == 1 ? ",)" : ")");
}

inline std::string shape_str(const py::array& a) {
  return shape_str(std::vector<int64_t>(a.shape(), a.shape() + a.ndim()));
}

// A double as a std::ostream writes it by default: %g, 6 significant digits.
inline std::string num_str(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

// ---------------------------------------------------------------------------------------------
// Scalar arguments (float, int, (h, w) pair, bool, str) are declared py::object as well and
// converted with the helpers below. pybind11's own casters fail overload resolution on None, a
// str, a float where an int belongs or an int beyond int64 (stride = 2**70): "incompatible
// function arguments" and a dump of the whole signature, naming no argument. Its bool caster
// is the opposite: it took None (and 2, and "no") as a flag without a word. Each helper raises
// TypeError (wrong kind of object) or ValueError (out of range) naming the argument.
//
// Accepted, as pybind11 accepted them: Python and NumPy real numbers (and 0-d arrays) for a
// float; Python and NumPy integers (anything with __index__) for an int; any sequence of two
// integers for a pair. Not accepted any more: bool where a number belongs, None or a non-bool
// for a flag, bytes for a str.

// A short repr of what the caller passed, for messages ("None", "1180591620717411303424").
inline std::string short_repr(const py::handle& obj) {
  std::string r;
  try {
    r = py::repr(obj).cast<std::string>();
  } catch (const py::error_already_set&) {
    return type_name(obj);
  }
  if (r.size() > 80) r = r.substr(0, 77) + "...";
  return r;
}

namespace detail {

// The dtype kind of a NumPy scalar or array ('f', 'i', 'u', 'b', 'c', ...); 0 for anything
// else. *ndim gets the array's rank (0 for a scalar).
inline char numpy_kind(const py::handle& obj, py::ssize_t* ndim) {
  *ndim = 0;
  if (py::isinstance<py::array>(obj)) {
    const auto a = py::reinterpret_borrow<py::array>(obj);
    *ndim = a.ndim();
    return a.dtype().kind();
  }
  const py::object generic = py::module_::import("numpy").attr("generic");
  const int is = PyObject_IsInstance(obj.ptr(), generic.ptr());
  if (is < 0) throw py::error_already_set();
  if (!is) return 0;
  return obj.attr("dtype").attr("kind").cast<std::string>()[0];
}

inline bool has_number_slot(const py::handle& obj, bool float_slot) {
  const PyNumberMethods* nb = Py_TYPE(obj.ptr())->tp_as_number;
  return nb != nullptr && (nb->nb_index != nullptr || (float_slot && nb->nb_float != nullptr));
}

// The integer value of obj (already known to be an integer), as a Python int.
inline py::int_ index_of(const py::handle& obj, const char* name) {
  PyObject* i = PyNumber_Index(obj.ptr());
  if (i == nullptr) {
    PyErr_Clear();
    throw py::type_error(std::string(name) + " must be an integer, got " + type_name(obj));
  }
  return py::reinterpret_steal<py::int_>(i);
}

// Python / NumPy integers (and 0-d integer arrays), not bool. A plain int never reaches the
// NumPy lookup.
inline bool is_integer(const py::handle& obj) {
  PyObject* p = obj.ptr();
  if (PyBool_Check(p)) return false;
  if (PyLong_Check(p)) return true;
  if (PyFloat_Check(p) || PyComplex_Check(p) || PyUnicode_Check(p)) return false;
  py::ssize_t ndim = 0;
  const char kind = numpy_kind(obj, &ndim);
  if (kind != 0) return ndim == 0 && (kind == 'i' || kind == 'u');
  return has_number_slot(obj, false);
}

}  // namespace detail

// A float argument: a Python float or int, a NumPy real scalar or 0-d array, or another object
// with __float__ (Fraction, Decimal). Not bool, None, str, complex or an array of values.
// An int too large for a double (10**400) is a ValueError.
inline double as_float(const py::handle& obj, const char* name) {
  PyObject* p = obj.ptr();
  if (PyFloat_Check(p)) return PyFloat_AS_DOUBLE(p);  // also numpy.float64
  if (PyLong_Check(p) && !PyBool_Check(p)) {
    const double v = PyLong_AsDouble(p);
    if (v == -1.0 && PyErr_Occurred()) {
      PyErr_Clear();
      throw py::value_error(std::string(name) + " = " + short_repr(obj) + " is too large for a float");
    }
    return v;
  }
  py::ssize_t ndim = 0;
  const char kind = detail::numpy_kind(obj, &ndim);
  const bool real = kind != 0 ? ndim == 0 && (kind == 'f' || kind == 'i' || kind == 'u')
                              : !PyBool_Check(p) && !PyComplex_Check(p) && !PyUnicode_Check(p) &&
                                    detail::has_number_slot(obj, true);
  if (!real) {
    std::string got = type_name(obj);
    if (kind != 0 && ndim > 0) got += " of shape " + shape_str(py::reinterpret_borrow<py::array>(obj));
    throw py::type_error(std::string(name) + " must be a real number, got " + got);
  }
  const double v = PyFloat_AsDouble(p);
  if (v == -1.0 && PyErr_Occurred()) {
    PyErr_Clear();
    throw py::value_error(std::string(name) + " = " + short_repr(obj) + " cannot be converted to a float");
  }
  return v;
}

// An int64 argument (groups, t, ...): a Python or NumPy integer. 1.0, True, None and ints
// outside int64 are rejected.
inline int64_t as_int64(const py::handle& obj, const char* name) {
  if (!detail::is_integer(obj))
    throw py::type_error(std::string(name) + " must be an integer, got " + type_name(obj));
  const py::int_ i = detail::index_of(obj, name);
  int overflow = 0;
  const long long v = PyLong_AsLongLongAndOverflow(i.ptr(), &overflow);
  if (overflow != 0)
    throw py::value_error(std::string(name) + " = " + short_repr(obj) +
                          " does not fit int64 (it must be between -2**63 and 2**63 - 1)");
  if (v == -1 && PyErr_Occurred()) throw py::error_already_set();
  return static_cast<int64_t>(v);
}

// A uint64 argument (a seed): 0 <= value < 2**64.
inline uint64_t as_uint64(const py::handle& obj, const char* name) {
  if (!detail::is_integer(obj))
    throw py::type_error(std::string(name) + " must be an integer, got " + type_name(obj));
  const py::int_ i = detail::index_of(obj, name);
  if (PyObject_RichCompareBool(i.ptr(), py::int_(0).ptr(), Py_LT) == 1)
    throw py::value_error(std::string(name) + " must be >= 0, got " + short_repr(obj));
  const unsigned long long v = PyLong_AsUnsignedLongLong(i.ptr());
  if (PyErr_Occurred()) {
    PyErr_Clear();
    throw py::value_error(std::string(name) + " = " + short_repr(obj) + " does not fit uint64 (it must be < 2**64)");
  }
  return static_cast<uint64_t>(v);
}

// An (h, w) pair of int64 (stride, padding, dilation, kernel_size): any sequence of two
// integers (tuple, list, 1-D integer array). Messages quote the whole pair.
inline std::pair<int64_t, int64_t> as_int64_pair(const py::handle& obj, const char* name) {
  PyObject* p = obj.ptr();
  const auto wrong = [&]() {
    return py::type_error(std::string(name) + " must be a pair (h, w) of integers, got " +
                          (PySequence_Check(p) && !PyUnicode_Check(p) && !PyBytes_Check(p) ? short_repr(obj)
                                                                                           : type_name(obj)));
  };
  if (!PySequence_Check(p) || PyUnicode_Check(p) || PyBytes_Check(p)) throw wrong();
  const py::ssize_t n = PySequence_Size(p);
  if (n < 0) {
    PyErr_Clear();
    throw wrong();
  }
  if (n != 2)
    throw py::value_error(std::string(name) + " must be a pair (h, w) of integers, got " + std::to_string(n) +
                          " values: " + short_repr(obj));
  int64_t v[2];
  for (py::ssize_t k = 0; k < 2; ++k) {
    PyObject* item = PySequence_GetItem(p, k);
    if (item == nullptr) {
      PyErr_Clear();
      throw wrong();
    }
    const py::object it = py::reinterpret_steal<py::object>(item);
    if (!detail::is_integer(it)) throw wrong();
    int overflow = 0;
    const long long x = PyLong_AsLongLongAndOverflow(detail::index_of(it, name).ptr(), &overflow);
    if (overflow != 0)
      throw py::value_error(std::string(name) + " " + short_repr(obj) +
                            " does not fit int64 (each value must be between -2**63 and 2**63 - 1)");
    v[k] = static_cast<int64_t>(x);
  }
  return {v[0], v[1]};
}

// A flag: True/False or numpy.bool_. None, ints and strings are rejected: need_dx=None used to
// mean False and "no" meant True.
inline bool as_bool(const py::handle& obj, const char* name) {
  if (PyBool_Check(obj.ptr())) return obj.ptr() == Py_True;
  py::ssize_t ndim = 0;
  if (!py::isinstance<py::array>(obj) && detail::numpy_kind(obj, &ndim) == 'b') return PyObject_IsTrue(obj.ptr()) == 1;
  throw py::type_error(std::string(name) + " must be True or False, got " + short_repr(obj));
}

// A str argument (an activation, a reduction, an optimizer name).
inline std::string as_str(const py::handle& obj, const char* name) {
  if (!PyUnicode_Check(obj.ptr()))
    throw py::type_error(std::string(name) + " must be a str, got " + type_name(obj));
  return obj.cast<std::string>();
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

// The flat index of the first NaN or +-Inf of n values, or -1: the finiteness check of
// _validation.as_inputs, which every MATLAB-style call runs on its X, and of the plan's batch X. x - x is 0 for a finite x
// and NaN for NaN and +-Inf, so a block is tested with one branch-free pass the compiler
// vectorises, and only a block that fails is walked again for the index. NumPy's
// isfinite(X).all() took two calls and a temporary bool array the size of X (47 MB for MNIST's
// training set in float32).
template <typename T>
inline int64_t first_non_finite(const T* p, int64_t n) {
  constexpr int64_t kBlock = 4096;
  for (int64_t b = 0; b < n; b += kBlock) {
    const int64_t e = b + kBlock < n ? b + kBlock : n;
    int bad = 0;
    for (int64_t i = b; i < e; ++i) bad |= (p[i] - p[i]) != T(0);
    if (bad)
      for (int64_t i = b; i < e; ++i)
        if (!std::isfinite(p[i])) return i;
  }
  return -1;
}

// Whether arrays a and b may share memory: whether the byte ranges their elements span overlap
// (numpy.may_share_memory's bounds test). False is exact; true may be a false alarm (rows of one
// buffer taken alternately), so a caller that must know asks numpy.shares_memory then, and only
// then: it solves for a common element and cost 1.5-2 us a call, 3 of the 5 us that
// _core.gemm(A, B, C) spent on a 1 x 1 product (Zen 3).
inline bool may_share_memory(const py::array& a, const py::array& b) {
  const auto extent = [](const py::array& x, uintptr_t& lo, uintptr_t& hi) {
    lo = hi = reinterpret_cast<uintptr_t>(x.data());
    if (x.size() == 0) return false;
    for (py::ssize_t d = 0; d < x.ndim(); ++d) {
      const py::ssize_t span = x.strides(d) * (x.shape(d) - 1);
      if (span < 0) lo -= static_cast<uintptr_t>(-span);
      else hi += static_cast<uintptr_t>(span);
    }
    hi += static_cast<uintptr_t>(x.itemsize());
    return true;
  };
  uintptr_t alo, ahi, blo, bhi;
  if (!extent(a, alo, ahi) || !extent(b, blo, bhi)) return false;  // an empty array shares nothing
  return alo < bhi && blo < ahi;
}

// numpy.shares_memory(a, b), asked only where the bounds overlap (may_share_memory above).
inline bool shares_memory(const py::array& a, const py::array& b) {
  return may_share_memory(a, b) && py::module_::import("numpy").attr("shares_memory")(a, b).cast<bool>();
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
    throw py::value_error(std::string(name) + " = " + num_str(v) + " overflows the arrays' dtype " +
                          py::str(py::dtype::of<T>()).cast<std::string>() + " (largest finite value " +
                          num_str(static_cast<double>(std::numeric_limits<T>::max())) + ")");
  }
  return v;
}

inline double require_in(double v, const char* name, double lo, double hi, bool hi_open) {
  require_finite(v, name);
  if (v < lo || (hi_open ? v >= hi : v > hi)) {
    throw py::value_error(std::string(name) + " must be in [" + num_str(lo) + ", " + num_str(hi) +
                          (hi_open ? ")" : "]") + ", got " + num_str(v));
  }
  return v;
}

// An optimizer's eps (> 0, checked already) as a divisor guard in dtype T: it must stay > 0 in
// T. 1e-50 is 0 as a float32, and Adam/RMSprop then divide 0 by sqrt(0) + 0 = NaN for every
// weight whose gradient and second moment are zero.
template <typename T>
inline void require_eps_in_dtype(double eps) {
  if (!(static_cast<T>(eps) > T(0))) {
    throw py::value_error("eps = " + num_str(eps) + " is 0 in the arrays' dtype " +
                          py::str(py::dtype::of<T>()).cast<std::string>() + " (smallest positive value " +
                          num_str(static_cast<double>(std::numeric_limits<T>::denorm_min())) + ")");
  }
}

// A new output array of dtype T. The element count and byte size are checked for int64
// overflow first (common/shape.h), so a shape multiplied together from several arguments
// (gemm's C is (rows of A, columns of B)) fails with a ValueError naming the output rather
// than wrapping around. What fits but exceeds memory raises MemoryError. Large outputs come
// from the array pool (array_pool.h).
template <typename T>
inline py::array_t<T> new_array(std::initializer_list<py::ssize_t> shape, const char* what) {
  int64_t n = 1;
  for (py::ssize_t d : shape) n = checked_mul(n, d, what);
  checked_bytes(n, sizeof(T), what);
  return pooled_array<T>(std::vector<py::ssize_t>(shape));
}

// Same shape as `like` (an existing array, so its size cannot overflow).
template <typename T>
inline py::array_t<T> new_array_like(const py::array& like) {
  return pooled_array<T>(std::vector<py::ssize_t>(like.shape(), like.shape() + like.ndim()));
}

}  // namespace bind
}  // namespace natverk
