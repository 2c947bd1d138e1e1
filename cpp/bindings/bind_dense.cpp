// bind_dense.cpp -- the fully connected layer: forward, backward, bias helpers.
#include <cmath>

#include "bindings/checks.h"
#include "dense/dense.h"

namespace natverk {
namespace bind {

namespace {

// b may be (n,) or the MATLAB-style (1, n).
inline void require_bias(const py::array& b, py::ssize_t n, const char* name) {
  const bool ok = (b.ndim() == 1 && b.shape(0) == n) ||
                  (b.ndim() == 2 && b.shape(0) == 1 && b.shape(1) == n);
  if (!ok)
    throw py::value_error(std::string(name) + " must have shape (" + std::to_string(n) + ",) or (1, " +
                          std::to_string(n) + "), got " + shape_str(b));
}

// The valid case of python/natverk/_validation.py's network_layout, which every MATLAB-style call
// runs: (dtype, L) when `parameters` is a dict whose keys are strings, exactly L of them starting
// with "W" (W1..WL), each W_l a 2-D float32/float64 array chaining from W_{l-1}, each b_l an
// array of shape (n_l,) or (1, n_l), all of W1's dtype; None for anything else, and the Python
// check then says what is wrong. In Python the valid case cost 10 us a call on a 4-layer net
// whose Adam state makes 24 keys (Zen 3), a third of a tiny network's whole step.
py::object network_layout_fast(const py::handle& parameters) {
  PyObject* d = parameters.ptr();
  if (!PyDict_CheckExact(d)) return py::none();  // a Mapping or dict subclass may redefine lookups
  Py_ssize_t pos = 0;
  PyObject *key, *value;
  int64_t L = 0;
  while (PyDict_Next(d, &pos, &key, &value)) {
    if (!PyUnicode_CheckExact(key)) return py::none();
    if (PyUnicode_GET_LENGTH(key) > 0 && PyUnicode_READ_CHAR(key, 0) == 'W') ++L;
  }
  if (L == 0) return py::none();
  py::object dtype;
  py::ssize_t prev_out = -1;
  for (int64_t l = 1; l <= L; ++l) {
    const std::string idx = std::to_string(l);
    PyObject* W = PyDict_GetItemString(d, ("W" + idx).c_str());  // borrowed
    PyObject* b = PyDict_GetItemString(d, ("b" + idx).c_str());
    if (!W || !b || !py::isinstance<py::array>(W) || !py::isinstance<py::array>(b)) return py::none();
    const auto Wa = py::reinterpret_borrow<py::array>(W), ba = py::reinterpret_borrow<py::array>(b);
    if (l == 1) {
      if (!py::isinstance<py::array_t<float>>(W) && !py::isinstance<py::array_t<double>>(W)) return py::none();
      dtype = Wa.dtype();
    }
    if (!Wa.dtype().equal(dtype) || !ba.dtype().equal(dtype)) return py::none();
    if (Wa.ndim() != 2) return py::none();
    const py::ssize_t n_out = Wa.shape(1);
    const bool b_ok = (ba.ndim() == 1 && ba.shape(0) == n_out) ||
                      (ba.ndim() == 2 && ba.shape(0) == 1 && ba.shape(1) == n_out);
    if (!b_ok || (prev_out >= 0 && Wa.shape(0) != prev_out)) return py::none();
    prev_out = n_out;
  }
  return py::make_tuple(dtype, L);
}

}  // namespace

void bind_dense(py::module_& m) {
  m.def(
      "_first_non_finite",
      [](const py::array& X) -> int64_t {
        require_contiguous(X, "X");
        return dispatch_float(X, "X", [&](auto tag) -> int64_t {
          using T = decltype(tag);
          const T* p = static_cast<const T*>(X.data());
          const int64_t n = static_cast<int64_t>(X.size());
          if (n < (int64_t(1) << 16)) return first_non_finite(p, n);
          py::gil_scoped_release nogil;
          return first_non_finite(p, n);
        });
      },
      py::arg("X"),
      "The flat index of the first NaN or +-Inf in the C-contiguous float array X, or -1 when every "
      "value is finite (the check of natverk._validation.as_inputs).");
  m.def("_network_layout", &network_layout_fast, py::arg("parameters"),
        "(dtype, L) of a valid MATLAB-style parameter dict (W1..WL, b1..bL), else None: the fast "
        "path of natverk._validation.network_layout, which explains what is invalid.");
  m.def(
      "dense_forward",
      [](const py::object& X_obj, const py::object& W_obj, const py::object& b_obj,
         const py::object& activation) -> py::array {
        const py::array X = as_array(X_obj, "X"), W = as_array(W_obj, "W"), b = as_array(b_obj, "b");
        const Activation act = parse_activation(as_str(activation, "activation"));
        return dispatch_float(X, "X", [&](auto tag) -> py::array {
          using T = decltype(tag);
          require_dtype<T>(W, "W", "X");
          require_dtype<T>(b, "b", "X");
          require_ndim(X, "X", 2);
          require_ndim(W, "W", 2);
          if (X.shape(1) != W.shape(0))
            throw py::value_error("X has " + std::to_string(X.shape(1)) + " columns but W has " +
                                  std::to_string(W.shape(0)) + " rows: X " + shape_str(X) + ", W " +
                                  shape_str(W));
          require_bias(b, W.shape(1), "b");
          const T* x = in_ptr<T>(X, "X");
          const T* w = in_ptr<T>(W, "W");
          const T* bp = in_ptr<T>(b, "b");
          const int64_t rows = X.shape(0), n_in = W.shape(0), n_out = W.shape(1);
          py::array_t<T> H = new_array<T>({X.shape(0), W.shape(1)}, "the output H (rows of X x columns of W)");
          T* h = H.mutable_data();
          {
            py::gil_scoped_release release;
            dense_forward<T>(h, x, w, bp, rows, n_in, n_out, act);
          }
          return H;
        });
      },
      py::arg("X"), py::arg("W"), py::arg("b"), py::arg("activation") = "linear",
      "H = f(X @ W + b) for X (m x n_in), W (n_in x n_out), b (n_out,) or (1, n_out).");

  m.def(
      "dense_backward",
      [](const py::object& dZ_obj, const py::object& X_obj, const py::object& W_obj, const py::object& lambda_obj,
         const py::object& need_dX_obj, const py::object& relu_mask_obj) -> py::tuple {
        const py::array dZ = as_array(dZ_obj, "dZ"), X = as_array(X_obj, "X"), W = as_array(W_obj, "W");
        const double lambda_ = as_float(lambda_obj, "lambda_");
        const bool need_dX = as_bool(need_dX_obj, "need_dX");
        const bool relu_mask = as_bool(relu_mask_obj, "relu_mask");
        if (relu_mask && !need_dX) throw py::value_error("relu_mask=True masks dX: it needs need_dX=True");
        return dispatch_float(dZ, "dZ", [&](auto tag) -> py::tuple {
          using T = decltype(tag);
          require_dtype<T>(X, "X", "dZ");
          require_dtype<T>(W, "W", "dZ");
          require_ndim(dZ, "dZ", 2);
          require_ndim(X, "X", 2);
          require_ndim(W, "W", 2);
          require_float_arg<T>(lambda_, "lambda_");
          if (X.shape(1) != W.shape(0) || dZ.shape(0) != X.shape(0) || dZ.shape(1) != W.shape(1))
            throw py::value_error("shapes do not chain: dZ " + shape_str(dZ) + ", X " + shape_str(X) +
                                  ", W " + shape_str(W) + " (need dZ (m, n_out), X (m, n_in), W (n_in, n_out))");
          const T* dz = in_ptr<T>(dZ, "dZ");
          const T* x = in_ptr<T>(X, "X");
          const T* w = in_ptr<T>(W, "W");
          const int64_t rows = X.shape(0), n_in = W.shape(0), n_out = W.shape(1);
          py::array_t<T> dW = new_array_like<T>(W);
          py::array_t<T> db = new_array<T>({W.shape(1)}, "db");
          py::object dX_obj = py::none();
          T* dx = nullptr;
          if (need_dX) {
            py::array_t<T> dX = new_array_like<T>(X);
            dx = dX.mutable_data();
            dX_obj = dX;
          }
          T* dwp = dW.mutable_data();
          T* dbp = db.mutable_data();
          {
            py::gil_scoped_release release;
            dense_backward<T>(dx, dwp, dbp, dz, x, w, rows, n_in, n_out, static_cast<T>(lambda_), relu_mask);
          }
          return py::make_tuple(dX_obj, dW, db);
        });
      },
      py::arg("dZ"), py::arg("X"), py::arg("W"), py::arg("lambda_") = 0.0,
      py::arg("need_dX") = true, py::arg("relu_mask") = false,
      "(dX, dW, db) of z = X @ W + b given dZ: dW = X.T @ dZ + lambda_ * W, db = dZ.sum(0) "
      "(shape (n_out,)), dX = dZ @ W.T (None when need_dX is false). relu_mask=True: X is the "
      "output of a ReLU and dX is taken through its backward, where(X > 0, dZ @ W.T, 0), in the "
      "product's own pass (the bits of activation_backward(dX, X, 'relu')).");

  m.def(
      "bias_add",
      [](const py::object& Z_obj, const py::object& b_obj) -> py::array {
        py::array Z = as_array(Z_obj, "Z");
        const py::array b = as_array(b_obj, "b");
        return dispatch_float(Z, "Z", [&](auto tag) -> py::array {
          using T = decltype(tag);
          require_dtype<T>(b, "b", "Z");
          require_ndim(Z, "Z", 2);
          require_bias(b, Z.shape(1), "b");
          T* z = inout_ptr<T>(Z, "Z");
          const T* bp = in_ptr<T>(b, "b");
          const int64_t rows = Z.shape(0), cols = Z.shape(1);
          {
            py::gil_scoped_release release;
            bias_add<T>(z, bp, rows, cols);
          }
          return Z;
        });
      },
      py::arg("Z"), py::arg("b"), "Z += b row by row, in place; returns Z.");

  m.def(
      "bias_grad",
      [](const py::object& dZ_obj) -> py::array {
        const py::array dZ = as_array(dZ_obj, "dZ");
        return dispatch_float(dZ, "dZ", [&](auto tag) -> py::array {
          using T = decltype(tag);
          require_ndim(dZ, "dZ", 2);
          const T* dz = in_ptr<T>(dZ, "dZ");
          py::array_t<T> db = new_array<T>({dZ.shape(1)}, "db");
          T* dbp = db.mutable_data();
          const int64_t rows = dZ.shape(0), cols = dZ.shape(1);
          {
            py::gil_scoped_release release;
            bias_grad<T>(dbp, dz, rows, cols);
          }
          return db;
        });
      },
      py::arg("dZ"), "Column sums of dZ (the bias gradient), accumulated in double; shape (n,).");
}

}  // namespace bind
}  // namespace natverk
