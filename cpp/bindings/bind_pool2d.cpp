// bind_pool2d.cpp -- max / average / global average pooling on NCHW arrays.
#include <optional>
#include <stdexcept>

#include "bindings/checks.h"
#include "pool2d/pool2d.h"

namespace natverk {
namespace bind {

namespace {

using Pair = std::pair<int64_t, int64_t>;

Pool2dShape pool_shape(const py::array& X, Pair kernel, Pair stride, Pair padding) {
  require_ndim(X, "x", 4);
  try {
    return make_pool2d_shape(X.shape(0), X.shape(1), X.shape(2), X.shape(3), kernel.first,
                             kernel.second, stride.first, stride.second, padding.first,
                             padding.second);
  } catch (const std::invalid_argument& e) {
    throw py::value_error(e.what());
  }
}

void require_out_shape(const py::array& dy, const Pool2dShape& s) {
  require_ndim(dy, "dy", 4);
  if (dy.shape(0) != s.N || dy.shape(1) != s.C || dy.shape(2) != s.Ho || dy.shape(3) != s.Wo)
    throw py::value_error("dy must have shape (" + std::to_string(s.N) + ", " + std::to_string(s.C) + ", " +
                          std::to_string(s.Ho) + ", " + std::to_string(s.Wo) + "), got " + shape_str(dy));
}

}  // namespace

void bind_pool2d(py::module_& m) {
  m.def(
      "maxpool2d_forward",
      [](const py::object& x_obj, const py::object& kernel_obj, const py::object& stride_obj,
         const py::object& padding_obj) -> py::tuple {
        const py::array x = as_array(x_obj, "x");
        const Pair kernel = as_int64_pair(kernel_obj, "kernel_size"), stride = as_int64_pair(stride_obj, "stride"),
                   padding = as_int64_pair(padding_obj, "padding");
        return dispatch_float(x, "x", [&](auto tag) -> py::tuple {
          using T = decltype(tag);
          const Pool2dShape s = pool_shape(x, kernel, stride, padding);
          const T* xp = in_ptr<T>(x, "x");
          py::array_t<T> y = new_array<T>({s.N, s.C, s.Ho, s.Wo}, "the output");
          py::array_t<int64_t> am = new_array<int64_t>({s.N, s.C, s.Ho, s.Wo}, "the argmax output");
          T* yp = y.mutable_data();
          int64_t* ap = am.mutable_data();
          {
            py::gil_scoped_release release;
            maxpool2d_forward<T>(yp, ap, xp, s);
          }
          return py::make_tuple(y, am);
        });
      },
      py::arg("x"), py::arg("kernel_size"), py::arg("stride"), py::arg("padding") = Pair{0, 0},
      "(y, argmax): max over each window; argmax holds the flat index h*W + w of the winner.");

  m.def(
      "maxpool2d_backward",
      [](const py::object& dy_obj, const py::object& argmax_obj, const py::object& x_obj,
         const py::object& kernel_obj, const py::object& stride_obj, const py::object& padding_obj,
         const py::object& relu_obj) -> py::array {
        const py::array dy = as_array(dy_obj, "dy"), argmax = as_array(argmax_obj, "argmax"),
                        x_shape_like = as_array(x_obj, "x");
        const std::optional<py::array> relu_out = as_optional_array(relu_obj, "relu_output");
        const Pair kernel = as_int64_pair(kernel_obj, "kernel_size"), stride = as_int64_pair(stride_obj, "stride"),
                   padding = as_int64_pair(padding_obj, "padding");
        return dispatch_float(dy, "dy", [&](auto tag) -> py::array {
          using T = decltype(tag);
          const Pool2dShape s = pool_shape(x_shape_like, kernel, stride, padding);
          require_out_shape(dy, s);
          if (!same_dtype(argmax.dtype(), py::dtype::of<int64_t>()))
            throw py::type_error("argmax must be the int64 array maxpool2d_forward returned");
          require_same_shape(argmax, "argmax", dy, "dy");
          const T* dyp = in_ptr<T>(dy, "dy");
          const int64_t* ap = in_ptr<int64_t>(argmax, "argmax");
          const T* rp = nullptr;
          if (relu_out) {
            require_dtype<T>(*relu_out, "relu_output", "dy");
            require_same_shape(*relu_out, "relu_output", dy, "dy");
            rp = in_ptr<T>(*relu_out, "relu_output");
          }
          py::array_t<T> dx = new_array_like<T>(x_shape_like);
          T* dxp = dx.mutable_data();
          bool inside;
          {
            py::gil_scoped_release release;
            inside = maxpool2d_backward<T>(dxp, dyp, ap, s, rp);
          }
          if (!inside) throw py::value_error("argmax holds an index outside the input plane");
          return dx;
        });
      },
      py::arg("dy"), py::arg("argmax"), py::arg("x"), py::arg("kernel_size"), py::arg("stride"),
      py::arg("padding") = Pair{0, 0}, py::arg("relu_output") = py::none(),
      "dx: dy routed to each window's arg-max (overlapping windows add up). x gives the input shape.\n"
      "relu_output: the pooled output after a ReLU, for a ReLU before the max-pooling run on its\n"
      "pooled output instead (max commutes with ReLU); dy then counts only where relu_output > 0\n"
      "(the ReLU's backward, in the same pass).");

  m.def(
      "avgpool2d_forward",
      [](const py::object& x_obj, const py::object& kernel_obj, const py::object& stride_obj,
         const py::object& padding_obj) -> py::array {
        const py::array x = as_array(x_obj, "x");
        const Pair kernel = as_int64_pair(kernel_obj, "kernel_size"), stride = as_int64_pair(stride_obj, "stride"),
                   padding = as_int64_pair(padding_obj, "padding");
        return dispatch_float(x, "x", [&](auto tag) -> py::array {
          using T = decltype(tag);
          const Pool2dShape s = pool_shape(x, kernel, stride, padding);
          const T* xp = in_ptr<T>(x, "x");
          py::array_t<T> y = new_array<T>({s.N, s.C, s.Ho, s.Wo}, "the output");
          T* yp = y.mutable_data();
          {
            py::gil_scoped_release release;
            avgpool2d_forward<T>(yp, xp, s);
          }
          return y;
        });
      },
      py::arg("x"), py::arg("kernel_size"), py::arg("stride"), py::arg("padding") = Pair{0, 0},
      "Window means (zero padding counted in the divisor kH*kW).");

  m.def(
      "avgpool2d_backward",
      [](const py::object& dy_obj, const py::object& x_obj, const py::object& kernel_obj,
         const py::object& stride_obj, const py::object& padding_obj) -> py::array {
        const py::array dy = as_array(dy_obj, "dy"), x_shape_like = as_array(x_obj, "x");
        const Pair kernel = as_int64_pair(kernel_obj, "kernel_size"), stride = as_int64_pair(stride_obj, "stride"),
                   padding = as_int64_pair(padding_obj, "padding");
        return dispatch_float(dy, "dy", [&](auto tag) -> py::array {
          using T = decltype(tag);
          const Pool2dShape s = pool_shape(x_shape_like, kernel, stride, padding);
          require_out_shape(dy, s);
          const T* dyp = in_ptr<T>(dy, "dy");
          py::array_t<T> dx = new_array_like<T>(x_shape_like);
          T* dxp = dx.mutable_data();
          {
            py::gil_scoped_release release;
            avgpool2d_backward<T>(dxp, dyp, s);
          }
          return dx;
        });
      },
      py::arg("dy"), py::arg("x"), py::arg("kernel_size"), py::arg("stride"),
      py::arg("padding") = Pair{0, 0}, "dx of avgpool2d_forward; x gives the input shape.");

  m.def(
      "global_avgpool_forward",
      [](const py::object& x_obj) -> py::array {
        const py::array x = as_array(x_obj, "x");
        return dispatch_float(x, "x", [&](auto tag) -> py::array {
          using T = decltype(tag);
          require_ndim(x, "x", 4);
          require_nonempty(x, "x");
          const T* xp = in_ptr<T>(x, "x");
          const int64_t N = x.shape(0), C = x.shape(1), HW = x.shape(2) * x.shape(3);
          py::array_t<T> y = new_array<T>({x.shape(0), x.shape(1)}, "the output");
          T* yp = y.mutable_data();
          {
            py::gil_scoped_release release;
            global_avgpool_forward<T>(yp, xp, N, C, HW);
          }
          return y;
        });
      },
      py::arg("x"), "Mean over (H, W): (N, C, H, W) -> (N, C).");

  m.def(
      "global_avgpool_backward",
      [](const py::object& dy_obj, const py::object& x_obj) -> py::array {
        const py::array dy = as_array(dy_obj, "dy"), x_shape_like = as_array(x_obj, "x");
        return dispatch_float(dy, "dy", [&](auto tag) -> py::array {
          using T = decltype(tag);
          require_ndim(x_shape_like, "x", 4);
          require_nonempty(x_shape_like, "x");
          require_ndim(dy, "dy", 2);
          if (dy.shape(0) != x_shape_like.shape(0) || dy.shape(1) != x_shape_like.shape(1))
            throw py::value_error("dy must have shape (N, C) of x, got " + shape_str(dy));
          const T* dyp = in_ptr<T>(dy, "dy");
          const int64_t N = x_shape_like.shape(0), C = x_shape_like.shape(1);
          const int64_t HW = x_shape_like.shape(2) * x_shape_like.shape(3);
          py::array_t<T> dx = new_array_like<T>(x_shape_like);
          T* dxp = dx.mutable_data();
          {
            py::gil_scoped_release release;
            global_avgpool_backward<T>(dxp, dyp, N, C, HW);
          }
          return dx;
        });
      },
      py::arg("dy"), py::arg("x"), "dx = dy / (H W) spread over each plane; x gives the input shape.");
}

}  // namespace bind
}  // namespace natverk
