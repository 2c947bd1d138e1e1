// bind_dense.cpp -- natverk._core.cuda.dense_forward / dense_backward / bias_add / bias_grad,
// the twins of the _core functions on Tensors.
#include "bindings/cuda/tensor.h"
#include "activations/activations.h"
#include "dense/dense.h"

namespace natverk {
namespace bind {
namespace cudab {

namespace {
// b may be (n,) or the MATLAB-style (1, n), as on the CPU.
void require_bias(const Tensor& b, int64_t n, const char* name) {
  const bool ok = (b.ndim() == 1 && b.dim(0) == n) || (b.ndim() == 2 && b.dim(0) == 1 && b.dim(1) == n);
  if (!ok)
    throw py::value_error(std::string(name) + " must have shape (" + std::to_string(n) + ",) or (1, " +
                          std::to_string(n) + "), got " + shape_str(b.shape));
}
}  // namespace

void bind_dense(py::module_& m) {
  m.def(
      "dense_forward",
      [](const py::object& X_obj, const py::object& W_obj, const py::object& b_obj, const py::object& activation) {
        const Tensor& X = as_tensor(X_obj, "X");
        const Tensor& W = as_tensor(W_obj, "W");
        const Tensor& b = as_tensor(b_obj, "b");
        const Activation act = parse_activation(as_str(activation, "activation"));
        return dispatch_float_tensor(X, "X", [&](auto tag) {
          using T = decltype(tag);
          require_tensor_dtype<T>(W, "W", "X");
          require_tensor_dtype<T>(b, "b", "X");
          require_tensor_ndim(X, "X", 2);
          require_tensor_ndim(W, "W", 2);
          if (X.dim(1) != W.dim(0))
            throw py::value_error("X has " + std::to_string(X.dim(1)) + " columns but W has " +
                                  std::to_string(W.dim(0)) + " rows: X " + shape_str(X.shape) + ", W " +
                                  shape_str(W.shape));
          require_bias(b, W.dim(1), "b");
          Tensor H = empty_as<T>({X.dim(0), W.dim(1)});
          natverk::cuda::dense_forward<T>(H.ptr<T>(), X.ptr<T>(), W.ptr<T>(), b.ptr<T>(), X.dim(0), W.dim(0),
                                          W.dim(1), act);
          return H;
        });
      },
      py::arg("X"), py::arg("W"), py::arg("b"), py::arg("activation") = "linear",
      "H = f(X @ W + b) on the GPU; the twin of natverk._core.dense_forward.");
  m.def(
      "dense_backward",
      [](const py::object& dZ_obj, const py::object& X_obj, const py::object& W_obj, const py::object& lambda_obj,
         const py::object& need_dX_obj, const py::object& relu_mask_obj) {
        const Tensor& dZ = as_tensor(dZ_obj, "dZ");
        const Tensor& X = as_tensor(X_obj, "X");
        const Tensor& W = as_tensor(W_obj, "W");
        const double lambda_ = as_float(lambda_obj, "lambda_");
        const bool need_dX = as_bool(need_dX_obj, "need_dX");
        const bool relu_mask = as_bool(relu_mask_obj, "relu_mask");
        if (relu_mask && !need_dX) throw py::value_error("relu_mask=True masks dX: it needs need_dX=True");
        return dispatch_float_tensor(dZ, "dZ", [&](auto tag) {
          using T = decltype(tag);
          require_tensor_dtype<T>(X, "X", "dZ");
          require_tensor_dtype<T>(W, "W", "dZ");
          require_tensor_ndim(dZ, "dZ", 2);
          require_tensor_ndim(X, "X", 2);
          require_tensor_ndim(W, "W", 2);
          require_float_arg<T>(lambda_, "lambda_");
          if (X.dim(1) != W.dim(0) || dZ.dim(0) != X.dim(0) || dZ.dim(1) != W.dim(1))
            throw py::value_error("shapes do not chain: dZ " + shape_str(dZ.shape) + ", X " + shape_str(X.shape) +
                                  ", W " + shape_str(W.shape) + " (need dZ (m, n_out), X (m, n_in), W (n_in, n_out))");
          Tensor dW = empty_as<T>(W.shape);
          Tensor db = empty_as<T>({W.dim(1)});
          py::object dX_obj = py::none();
          T* dx = nullptr;
          if (need_dX) {
            Tensor dX = empty_as<T>(X.shape);
            dx = dX.ptr<T>();
            dX_obj = py::cast(std::move(dX));
          }
          natverk::cuda::dense_backward<T>(dx, dW.ptr<T>(), db.ptr<T>(), dZ.ptr<T>(), X.ptr<T>(), W.ptr<T>(),
                                           X.dim(0), W.dim(0), W.dim(1), static_cast<T>(lambda_));
          // the CPU twin masks in its GEMM's epilogue; here the ReLU's backward kernel runs after,
          // in place (dz may alias dh), with the same select and so the same bits
          if (relu_mask)
            natverk::cuda::activation_backward<T>(dx, dx, X.ptr<T>(), X.dim(0) * X.dim(1), natverk::Activation::ReLU);
          return py::make_tuple(dX_obj, std::move(dW), std::move(db));
        });
      },
      py::arg("dZ"), py::arg("X"), py::arg("W"), py::arg("lambda_") = 0.0, py::arg("need_dX") = true,
      py::arg("relu_mask") = false, "(dX, dW, db) on the GPU; the twin of natverk._core.dense_backward.");
  m.def(
      "bias_add",
      [](const py::object& Z_obj, const py::object& b_obj) {
        const Tensor& Z = as_tensor(Z_obj, "Z");
        const Tensor& b = as_tensor(b_obj, "b");
        dispatch_float_tensor(Z, "Z", [&](auto tag) {
          using T = decltype(tag);
          require_tensor_dtype<T>(b, "b", "Z");
          require_tensor_ndim(Z, "Z", 2);
          require_bias(b, Z.dim(1), "b");
          natverk::cuda::bias_add<T>(Z.ptr<T>(), b.ptr<T>(), Z.dim(0), Z.dim(1));
          return 0;
        });
        return Z_obj;
      },
      py::arg("Z"), py::arg("b"), "Z += b row by row, in place, on the GPU; returns Z.");
  m.def(
      "bias_grad",
      [](const py::object& dZ_obj) {
        const Tensor& dZ = as_tensor(dZ_obj, "dZ");
        return dispatch_float_tensor(dZ, "dZ", [&](auto tag) {
          using T = decltype(tag);
          require_tensor_ndim(dZ, "dZ", 2);
          Tensor db = empty_as<T>({dZ.dim(1)});
          natverk::cuda::bias_grad<T>(db.ptr<T>(), dZ.ptr<T>(), dZ.dim(0), dZ.dim(1));
          return db;
        });
      },
      py::arg("dZ"), "Column sums of dZ in double, on the GPU; the twin of natverk._core.bias_grad.");
}

}  // namespace cudab
}  // namespace bind
}  // namespace natverk
