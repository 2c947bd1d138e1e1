// bind_conv2d.cpp -- conv2d_forward / conv2d_backward on NCHW arrays.
#include <stdexcept>

#include "bindings/checks.h"
#include "conv2d/conv2d.h"
#include "conv2d/conv_direct.h"
#include "conv2d/conv_pool.h"

namespace natverk {
namespace bind {

namespace {

using Pair = std::pair<int64_t, int64_t>;

Conv2dShape conv_shape(const py::array& X, const py::array& W, Pair stride, Pair padding,
                       Pair dilation, int64_t groups) {
  require_ndim(X, "x", 4);
  require_ndim(W, "weight", 4);
  try {
    return make_conv2d_shape(X.shape(0), X.shape(1), X.shape(2), X.shape(3), W.shape(0), W.shape(1),
                             W.shape(2), W.shape(3), stride.first, stride.second, padding.first,
                             padding.second, dilation.first, dilation.second, groups);
  } catch (const std::invalid_argument& e) {
    throw py::value_error(e.what());
  }
}

template <typename T>
const T* bias_ptr(const std::optional<py::array>& b, int64_t K) {
  if (!b) return nullptr;
  const py::array& arr = *b;
  require_dtype<T>(arr, "bias", "x");
  if (arr.ndim() != 1 || arr.shape(0) != K)
    throw py::value_error("bias must have shape (" + std::to_string(K) + ",), got " + shape_str(arr));
  return in_ptr<T>(arr, "bias");
}

// The arguments of the few-tap first-layer kernels (_conv2d_maxpool, _conv2d_direct): x, weight and
// an optional bias of one float dtype, stride and dilation 1, one group. applies says whether the
// kernel runs this shape here; the pointers are taken only then.
template <typename T>
struct FewTapCall {
  Conv2dShape s;
  bool applies;
  const T* x = nullptr;
  const T* w = nullptr;
  const T* b = nullptr;
};

template <typename T>
FewTapCall<T> few_tap_call(const py::array& x, const py::array& weight, const std::optional<py::array>& bias,
                           Pair padding, bool (*applies)(const Conv2dShape&)) {
  require_dtype<T>(weight, "weight", "x");
  FewTapCall<T> c{conv_shape(x, weight, Pair{1, 1}, padding, Pair{1, 1}, 1), false};
  c.applies = applies(c.s);
  if (c.applies) {
    c.x = in_ptr<T>(x, "x");
    c.w = in_ptr<T>(weight, "weight");
    c.b = bias_ptr<T>(bias, c.s.K);
  }
  return c;
}

}  // namespace

void bind_conv2d(py::module_& m) {
  m.def(
      "conv2d_forward",
      [](const py::object& x_obj, const py::object& weight_obj, const py::object& bias_obj,
         const py::object& stride_obj, const py::object& padding_obj, const py::object& dilation_obj,
         const py::object& groups_obj) -> py::array {
        const py::array x = as_array(x_obj, "x"), weight = as_array(weight_obj, "weight");
        const std::optional<py::array> bias = as_optional_array(bias_obj, "bias");
        const Pair stride = as_int64_pair(stride_obj, "stride"), padding = as_int64_pair(padding_obj, "padding"),
                   dilation = as_int64_pair(dilation_obj, "dilation");
        const int64_t groups = as_int64(groups_obj, "groups");
        return dispatch_float(x, "x", [&](auto tag) -> py::array {
          using T = decltype(tag);
          require_dtype<T>(weight, "weight", "x");
          const Conv2dShape s = conv_shape(x, weight, stride, padding, dilation, groups);
          const T* xp = in_ptr<T>(x, "x");
          const T* wp = in_ptr<T>(weight, "weight");
          const T* bp = bias_ptr<T>(bias, s.K);
          py::array_t<T> y = new_array<T>({s.N, s.K, s.Ho, s.Wo}, "the output");
          T* yp = y.mutable_data();
          {
            py::gil_scoped_release release;
            conv2d_forward<T>(yp, xp, wp, bp, s);
          }
          return y;
        });
      },
      py::arg("x"), py::arg("weight"), py::arg("bias") = py::none(), py::arg("stride") = Pair{1, 1},
      py::arg("padding") = Pair{0, 0}, py::arg("dilation") = Pair{1, 1}, py::arg("groups") = 1,
      "y = conv2d(x, weight) + bias for x (N, C, H, W), weight (K, C/groups, kH, kW), bias (K,) or None; "
      "stride/padding/dilation are (h, w) pairs. Returns (N, K, Ho, Wo).");

  m.def(
      "conv2d_backward",
      [](const py::object& dy_obj, const py::object& x_obj, const py::object& weight_obj,
         const py::object& stride_obj, const py::object& padding_obj, const py::object& dilation_obj,
         const py::object& groups_obj, const py::object& need_dx_obj, const py::object& need_dw_obj,
         const py::object& need_db_obj) -> py::tuple {
        const py::array dy = as_array(dy_obj, "dy"), x = as_array(x_obj, "x"),
                        weight = as_array(weight_obj, "weight");
        const Pair stride = as_int64_pair(stride_obj, "stride"), padding = as_int64_pair(padding_obj, "padding"),
                   dilation = as_int64_pair(dilation_obj, "dilation");
        const int64_t groups = as_int64(groups_obj, "groups");
        const bool need_dx = as_bool(need_dx_obj, "need_dx"), need_dw = as_bool(need_dw_obj, "need_dw"),
                   need_db = as_bool(need_db_obj, "need_db");
        return dispatch_float(x, "x", [&](auto tag) -> py::tuple {
          using T = decltype(tag);
          require_dtype<T>(weight, "weight", "x");
          require_dtype<T>(dy, "dy", "x");
          const Conv2dShape s = conv_shape(x, weight, stride, padding, dilation, groups);
          require_ndim(dy, "dy", 4);
          if (dy.shape(0) != s.N || dy.shape(1) != s.K || dy.shape(2) != s.Ho || dy.shape(3) != s.Wo)
            throw py::value_error("dy must have shape (" + std::to_string(s.N) + ", " + std::to_string(s.K) +
                                  ", " + std::to_string(s.Ho) + ", " + std::to_string(s.Wo) + "), got " +
                                  shape_str(dy));
          const T* dyp = in_ptr<T>(dy, "dy");
          const T* xp = in_ptr<T>(x, "x");
          const T* wp = in_ptr<T>(weight, "weight");
          py::object dx = py::none(), dw = py::none(), db = py::none();
          T *dxp = nullptr, *dwp = nullptr, *dbp = nullptr;
          if (need_dx) {
            py::array_t<T> a = new_array_like<T>(x);
            dxp = a.mutable_data();
            dx = a;
          }
          if (need_dw) {
            py::array_t<T> a = new_array_like<T>(weight);
            dwp = a.mutable_data();
            dw = a;
          }
          if (need_db) {
            py::array_t<T> a = new_array<T>({s.K}, "dbias");
            dbp = a.mutable_data();
            db = a;
          }
          {
            py::gil_scoped_release release;
            conv2d_backward<T>(dxp, dwp, dbp, dyp, xp, wp, s);
          }
          return py::make_tuple(dx, dw, db);
        });
      },
      py::arg("dy"), py::arg("x"), py::arg("weight"), py::arg("stride") = Pair{1, 1},
      py::arg("padding") = Pair{0, 0}, py::arg("dilation") = Pair{1, 1}, py::arg("groups") = 1,
      py::arg("need_dx") = true, py::arg("need_dw") = true, py::arg("need_db") = true,
      "(dx, dweight, dbias) of conv2d_forward given dy (N, K, Ho, Wo); summed over the batch. "
      "An output not asked for is None.");

  m.def(
      "set_conv_algo",
      [](const py::object& name_obj) {
        const std::string name = as_str(name_obj, "algorithm");
        try {
          set_conv_algo(parse_conv_algo(name));
        } catch (const std::invalid_argument& e) {
          throw py::value_error(e.what());
        }
      },
      py::arg("algorithm"),
      "Force a convolution algorithm for every call where it applies ('im2col', 'winograd2', "
      "'winograd4'), or 'auto' for the measured rule. Overrides NATVERK_CONV_ALGO.");
  m.def(
      "get_conv_algo", []() { return std::string(conv_algo_name(conv_algo())); },
      "The forced convolution algorithm, or 'auto'.");
  m.def(
      "conv2d_algorithm",
      [](const py::object& x_obj, const py::object& weight_obj, const py::object& stride_obj,
         const py::object& padding_obj, const py::object& dilation_obj, const py::object& groups_obj) {
        const py::array x = as_array(x_obj, "x"), weight = as_array(weight_obj, "weight");
        const Conv2dShape s = conv_shape(x, weight, as_int64_pair(stride_obj, "stride"),
                                         as_int64_pair(padding_obj, "padding"),
                                         as_int64_pair(dilation_obj, "dilation"), as_int64(groups_obj, "groups"));
        return std::string(conv_algo_name(conv2d_algorithm(s)));
      },
      py::arg("x"), py::arg("weight"), py::arg("stride") = Pair{1, 1}, py::arg("padding") = Pair{0, 0},
      py::arg("dilation") = Pair{1, 1}, py::arg("groups") = 1,
      "The algorithm conv2d_forward/conv2d_backward run for these arrays' shapes and this geometry.");
  m.def(
      "_conv2d_maxpool",
      [](const py::object& x_obj, const py::object& weight_obj, const py::object& bias_obj,
         const py::object& padding_obj, const py::object& relu_obj) -> py::object {
        const py::array x = as_array(x_obj, "x"), weight = as_array(weight_obj, "weight");
        const std::optional<py::array> bias = as_optional_array(bias_obj, "bias");
        const Pair padding = as_int64_pair(padding_obj, "padding");
        const bool relu = as_bool(relu_obj, "relu");
        return dispatch_float(x, "x", [&](auto tag) -> py::object {
          using T = decltype(tag);
          const FewTapCall<T> c = few_tap_call<T>(x, weight, bias, padding, &conv_maxpool_applies);
          if (!c.applies) return py::none();
          const Conv2dShape& s = c.s;
          py::array_t<T> y = new_array<T>({s.N, s.K, s.Ho / 2, s.Wo / 2}, "the output");
          py::array_t<int64_t> am = new_array<int64_t>({s.N, s.K, s.Ho / 2, s.Wo / 2}, "the argmax");
          T* yp = y.mutable_data();
          int64_t* ap = am.mutable_data();
          {
            py::gil_scoped_release release;
            conv2d_maxpool_forward<T>(yp, ap, c.x, c.w, c.b, s, relu);
          }
          return py::make_tuple(y, am);
        });
      },
      py::arg("x"), py::arg("weight"), py::arg("bias") = py::none(), py::arg("padding") = Pair{0, 0},
      py::arg("relu") = true,
      "Internal (the plan's fused first layer, conv_pool.h): (y, argmax) of y = maxpool2x2(conv2d(x, weight) + "
      "bias), then relu(y) with relu, in one pass, with the bits of conv2d_forward, maxpool2d_forward and "
      "activation_forward; stride and dilation 1. None where the fused kernel does not apply to this shape at "
      "this SIMD level.");
  m.def(
      "_conv2d_direct",
      [](const py::object& x_obj, const py::object& weight_obj, const py::object& bias_obj,
         const py::object& padding_obj) -> py::object {
        const py::array x = as_array(x_obj, "x"), weight = as_array(weight_obj, "weight");
        const std::optional<py::array> bias = as_optional_array(bias_obj, "bias");
        const Pair padding = as_int64_pair(padding_obj, "padding");
        return dispatch_float(x, "x", [&](auto tag) -> py::object {
          using T = decltype(tag);
          const FewTapCall<T> c = few_tap_call<T>(x, weight, bias, padding, &conv_direct_applies);
          if (!c.applies) return py::none();
          const Conv2dShape& s = c.s;
          py::array_t<T> y = new_array<T>({s.N, s.K, s.Ho, s.Wo}, "the output");
          T* yp = y.mutable_data();
          {
            py::gil_scoped_release release;
            conv2d_direct_forward<T>(yp, c.x, c.w, c.b, s, nullptr);
          }
          return y;
        });
      },
      py::arg("x"), py::arg("weight"), py::arg("bias") = py::none(), py::arg("padding") = Pair{0, 0},
      "Internal (conv_direct.h, the im2col algorithm's forward for at most 27 taps a channel): "
      "conv2d(x, weight) + bias by the direct kernel, with the bits of im2col + GEMM; stride and dilation 1. "
      "None where the direct kernel does not apply to this shape at this SIMD level.");
}

}  // namespace bind
}  // namespace natverk
