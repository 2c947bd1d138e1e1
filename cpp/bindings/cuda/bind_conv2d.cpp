// bind_conv2d.cpp -- natverk._core.cuda.conv2d_forward / conv2d_backward, the twins of the
// _core functions on NCHW Tensors (the geometry is validated by the CPU's make_conv2d_shape).
#include <optional>
#include <stdexcept>

#include "bindings/cuda/tensor.h"
#include "conv2d/conv2d.h"

namespace natverk {
namespace bind {
namespace cudab {

namespace {
using Pair = std::pair<int64_t, int64_t>;

Conv2dShape conv_shape(const Tensor& X, const Tensor& W, Pair stride, Pair padding, Pair dilation, int64_t groups) {
  require_tensor_ndim(X, "x", 4);
  require_tensor_ndim(W, "weight", 4);
  try {
    return make_conv2d_shape(X.dim(0), X.dim(1), X.dim(2), X.dim(3), W.dim(0), W.dim(1), W.dim(2), W.dim(3),
                             stride.first, stride.second, padding.first, padding.second, dilation.first,
                             dilation.second, groups);
  } catch (const std::invalid_argument& e) {
    throw py::value_error(e.what());
  }
}
}  // namespace

void bind_conv2d(py::module_& m) {
  m.def(
      "conv2d_forward",
      [](const py::object& x_obj, const py::object& weight_obj, const py::object& bias_obj,
         const py::object& stride_obj, const py::object& padding_obj, const py::object& dilation_obj,
         const py::object& groups_obj) {
        const Tensor& x = as_tensor(x_obj, "x");
        const Tensor& weight = as_tensor(weight_obj, "weight");
        const Tensor* bias = bias_obj.is_none() ? nullptr : &as_tensor(bias_obj, "bias");
        const Pair stride = as_int64_pair(stride_obj, "stride"), padding = as_int64_pair(padding_obj, "padding"),
                   dilation = as_int64_pair(dilation_obj, "dilation");
        const int64_t groups = as_int64(groups_obj, "groups");
        return dispatch_float_tensor(x, "x", [&](auto tag) {
          using T = decltype(tag);
          require_tensor_dtype<T>(weight, "weight", "x");
          const Conv2dShape s = conv_shape(x, weight, stride, padding, dilation, groups);
          const T* bp = nullptr;
          if (bias) {
            require_tensor_dtype<T>(*bias, "bias", "x");
            require_tensor_shape(*bias, "bias", {s.K});
            bp = bias->ptr<T>();
          }
          Tensor y = empty_as<T>({s.N, s.K, s.Ho, s.Wo});
          natverk::cuda::conv2d_forward<T>(y.ptr<T>(), x.ptr<T>(), weight.ptr<T>(), bp, s);
          return y;
        });
      },
      py::arg("x"), py::arg("weight"), py::arg("bias") = py::none(), py::arg("stride") = Pair{1, 1},
      py::arg("padding") = Pair{0, 0}, py::arg("dilation") = Pair{1, 1}, py::arg("groups") = 1,
      "y = conv2d(x, weight) + bias on the GPU (implicit GEMM); the twin of natverk._core.conv2d_forward.");
  m.def(
      "conv2d_backward",
      [](const py::object& dy_obj, const py::object& x_obj, const py::object& weight_obj,
         const py::object& stride_obj, const py::object& padding_obj, const py::object& dilation_obj,
         const py::object& groups_obj, const py::object& need_dx_obj, const py::object& need_dw_obj,
         const py::object& need_db_obj) {
        const Tensor& dy = as_tensor(dy_obj, "dy");
        const Tensor& x = as_tensor(x_obj, "x");
        const Tensor& weight = as_tensor(weight_obj, "weight");
        const Pair stride = as_int64_pair(stride_obj, "stride"), padding = as_int64_pair(padding_obj, "padding"),
                   dilation = as_int64_pair(dilation_obj, "dilation");
        const int64_t groups = as_int64(groups_obj, "groups");
        const bool need_dx = as_bool(need_dx_obj, "need_dx"), need_dw = as_bool(need_dw_obj, "need_dw"),
                   need_db = as_bool(need_db_obj, "need_db");
        return dispatch_float_tensor(x, "x", [&](auto tag) {
          using T = decltype(tag);
          require_tensor_dtype<T>(weight, "weight", "x");
          require_tensor_dtype<T>(dy, "dy", "x");
          const Conv2dShape s = conv_shape(x, weight, stride, padding, dilation, groups);
          require_tensor_shape(dy, "dy", {s.N, s.K, s.Ho, s.Wo});
          py::object dx = py::none(), dw = py::none(), db = py::none();
          T *dxp = nullptr, *dwp = nullptr, *dbp = nullptr;
          if (need_dx) {
            Tensor t = empty_as<T>(x.shape);
            dxp = t.ptr<T>();
            dx = py::cast(std::move(t));
          }
          if (need_dw) {
            Tensor t = empty_as<T>(weight.shape);
            dwp = t.ptr<T>();
            dw = py::cast(std::move(t));
          }
          if (need_db) {
            Tensor t = empty_as<T>({s.K});
            dbp = t.ptr<T>();
            db = py::cast(std::move(t));
          }
          natverk::cuda::conv2d_backward<T>(dxp, dwp, dbp, dy.ptr<T>(), x.ptr<T>(), weight.ptr<T>(), s);
          return py::make_tuple(dx, dw, db);
        });
      },
      py::arg("dy"), py::arg("x"), py::arg("weight"), py::arg("stride") = Pair{1, 1},
      py::arg("padding") = Pair{0, 0}, py::arg("dilation") = Pair{1, 1}, py::arg("groups") = 1,
      py::arg("need_dx") = true, py::arg("need_dw") = true, py::arg("need_db") = true,
      "(dx, dweight, dbias) on the GPU; the twin of natverk._core.conv2d_backward.");
}

}  // namespace cudab
}  // namespace bind
}  // namespace natverk
