// bind_pool2d.cpp -- natverk._core.cuda max / average / global average pooling, the twins of
// the _core functions in bindings/bind_pool2d.cpp: same names, arguments, defaults, checks and
// messages, with Tensors where _core takes arrays. The geometry is validated by the CPU's
// make_pool2d_shape, so both backends accept and reject exactly the same arguments.
#include <stdexcept>

#include "bindings/cuda/tensor.h"
#include "pool2d/pool2d.h"

namespace natverk {
namespace bind {
namespace cudab {

namespace {

using Pair = std::pair<int64_t, int64_t>;

Pool2dShape pool_shape(const Tensor& X, Pair kernel, Pair stride, Pair padding) {
  require_tensor_ndim(X, "x", 4);
  try {
    return make_pool2d_shape(X.dim(0), X.dim(1), X.dim(2), X.dim(3), kernel.first, kernel.second, stride.first,
                             stride.second, padding.first, padding.second);
  } catch (const std::invalid_argument& e) {
    throw py::value_error(e.what());
  }
}

void require_out_shape(const Tensor& dy, const Pool2dShape& s) {
  require_tensor_ndim(dy, "dy", 4);
  if (dy.dim(0) != s.N || dy.dim(1) != s.C || dy.dim(2) != s.Ho || dy.dim(3) != s.Wo)
    throw py::value_error("dy must have shape (" + std::to_string(s.N) + ", " + std::to_string(s.C) + ", " +
                          std::to_string(s.Ho) + ", " + std::to_string(s.Wo) + "), got " + shape_str(dy.shape));
}

void require_nonempty_tensor(const Tensor& t, const char* name) {
  if (t.numel == 0) throw py::value_error(std::string(name) + " is empty, shape " + shape_str(t.shape));
}

}  // namespace

void bind_pool2d(py::module_& m) {
  m.def(
      "maxpool2d_forward",
      [](const py::object& x_obj, const py::object& kernel_obj, const py::object& stride_obj,
         const py::object& padding_obj) -> py::tuple {
        const Tensor& x = as_tensor(x_obj, "x");
        const Pair kernel = as_int64_pair(kernel_obj, "kernel_size"), stride = as_int64_pair(stride_obj, "stride"),
                   padding = as_int64_pair(padding_obj, "padding");
        return dispatch_float_tensor(x, "x", [&](auto tag) -> py::tuple {
          using T = decltype(tag);
          const Pool2dShape s = pool_shape(x, kernel, stride, padding);
          Tensor y = empty_as<T>({s.N, s.C, s.Ho, s.Wo});
          Tensor am = empty_as<int64_t>({s.N, s.C, s.Ho, s.Wo});
          natverk::cuda::maxpool2d_forward<T>(y.ptr<T>(), am.ptr<int64_t>(), x.ptr<T>(), s);
          return py::make_tuple(y, am);
        });
      },
      py::arg("x"), py::arg("kernel_size"), py::arg("stride"), py::arg("padding") = Pair{0, 0},
      "(y, argmax) on the GPU: max over each window; argmax (int64) holds the flat index h*W + w of the winner.");

  m.def(
      "maxpool2d_backward",
      [](const py::object& dy_obj, const py::object& argmax_obj, const py::object& x_obj,
         const py::object& kernel_obj, const py::object& stride_obj, const py::object& padding_obj) -> Tensor {
        const Tensor& dy = as_tensor(dy_obj, "dy");
        const Tensor& argmax = as_tensor(argmax_obj, "argmax");
        const Tensor& x_shape_like = as_tensor(x_obj, "x");
        const Pair kernel = as_int64_pair(kernel_obj, "kernel_size"), stride = as_int64_pair(stride_obj, "stride"),
                   padding = as_int64_pair(padding_obj, "padding");
        return dispatch_float_tensor(dy, "dy", [&](auto tag) -> Tensor {
          using T = decltype(tag);
          const Pool2dShape s = pool_shape(x_shape_like, kernel, stride, padding);
          require_out_shape(dy, s);
          if (argmax.dtype != DType::int64)
            throw py::type_error("argmax must be the int64 Tensor maxpool2d_forward returned, got " +
                                 std::string(dtype_name(argmax.dtype)));
          require_same_tensor_shape(dy, "dy", argmax, "argmax");
          Tensor dx = empty_as<T>(x_shape_like.shape);
          bool inside;
          {
            // The entry waits for the stream (its answer is a host value): let Python run meanwhile.
            py::gil_scoped_release release;
            inside = natverk::cuda::maxpool2d_backward<T>(dx.ptr<T>(), dy.ptr<T>(), argmax.ptr<int64_t>(), s);
          }
          if (!inside)
            throw py::value_error("argmax holds an index outside the input plane or outside its pooling window");
          return dx;
        });
      },
      py::arg("dy"), py::arg("argmax"), py::arg("x"), py::arg("kernel_size"), py::arg("stride"),
      py::arg("padding") = Pair{0, 0},
      "dx on the GPU: dy routed to each window's arg-max (overlapping windows add up, deterministically). "
      "x gives the input shape.");

  m.def(
      "avgpool2d_forward",
      [](const py::object& x_obj, const py::object& kernel_obj, const py::object& stride_obj,
         const py::object& padding_obj) -> Tensor {
        const Tensor& x = as_tensor(x_obj, "x");
        const Pair kernel = as_int64_pair(kernel_obj, "kernel_size"), stride = as_int64_pair(stride_obj, "stride"),
                   padding = as_int64_pair(padding_obj, "padding");
        return dispatch_float_tensor(x, "x", [&](auto tag) -> Tensor {
          using T = decltype(tag);
          const Pool2dShape s = pool_shape(x, kernel, stride, padding);
          Tensor y = empty_as<T>({s.N, s.C, s.Ho, s.Wo});
          natverk::cuda::avgpool2d_forward<T>(y.ptr<T>(), x.ptr<T>(), s);
          return y;
        });
      },
      py::arg("x"), py::arg("kernel_size"), py::arg("stride"), py::arg("padding") = Pair{0, 0},
      "Window means on the GPU (zero padding counted in the divisor kH*kW).");

  m.def(
      "avgpool2d_backward",
      [](const py::object& dy_obj, const py::object& x_obj, const py::object& kernel_obj,
         const py::object& stride_obj, const py::object& padding_obj) -> Tensor {
        const Tensor& dy = as_tensor(dy_obj, "dy");
        const Tensor& x_shape_like = as_tensor(x_obj, "x");
        const Pair kernel = as_int64_pair(kernel_obj, "kernel_size"), stride = as_int64_pair(stride_obj, "stride"),
                   padding = as_int64_pair(padding_obj, "padding");
        return dispatch_float_tensor(dy, "dy", [&](auto tag) -> Tensor {
          using T = decltype(tag);
          const Pool2dShape s = pool_shape(x_shape_like, kernel, stride, padding);
          require_out_shape(dy, s);
          Tensor dx = empty_as<T>(x_shape_like.shape);
          natverk::cuda::avgpool2d_backward<T>(dx.ptr<T>(), dy.ptr<T>(), s);
          return dx;
        });
      },
      py::arg("dy"), py::arg("x"), py::arg("kernel_size"), py::arg("stride"), py::arg("padding") = Pair{0, 0},
      "dx of avgpool2d_forward on the GPU; x gives the input shape.");

  m.def(
      "global_avgpool_forward",
      [](const py::object& x_obj) -> Tensor {
        const Tensor& x = as_tensor(x_obj, "x");
        return dispatch_float_tensor(x, "x", [&](auto tag) -> Tensor {
          using T = decltype(tag);
          require_tensor_ndim(x, "x", 4);
          require_nonempty_tensor(x, "x");
          const int64_t N = x.dim(0), C = x.dim(1), HW = x.dim(2) * x.dim(3);
          Tensor y = empty_as<T>({N, C});
          natverk::cuda::global_avgpool_forward<T>(y.ptr<T>(), x.ptr<T>(), N, C, HW);
          return y;
        });
      },
      py::arg("x"), "Mean over (H, W) on the GPU: (N, C, H, W) -> (N, C).");

  m.def(
      "global_avgpool_backward",
      [](const py::object& dy_obj, const py::object& x_obj) -> Tensor {
        const Tensor& dy = as_tensor(dy_obj, "dy");
        const Tensor& x_shape_like = as_tensor(x_obj, "x");
        return dispatch_float_tensor(dy, "dy", [&](auto tag) -> Tensor {
          using T = decltype(tag);
          require_tensor_ndim(x_shape_like, "x", 4);
          require_nonempty_tensor(x_shape_like, "x");
          require_tensor_ndim(dy, "dy", 2);
          if (dy.dim(0) != x_shape_like.dim(0) || dy.dim(1) != x_shape_like.dim(1))
            throw py::value_error("dy must have shape (N, C) of x, got " + shape_str(dy.shape));
          const int64_t N = x_shape_like.dim(0), C = x_shape_like.dim(1);
          const int64_t HW = x_shape_like.dim(2) * x_shape_like.dim(3);
          Tensor dx = empty_as<T>(x_shape_like.shape);
          natverk::cuda::global_avgpool_backward<T>(dx.ptr<T>(), dy.ptr<T>(), N, C, HW);
          return dx;
        });
      },
      py::arg("dy"), py::arg("x"), "dx = dy / (H W) spread over each plane, on the GPU; x gives the input shape.");
}

}  // namespace cudab
}  // namespace bind
}  // namespace natverk
