// bind_dropout.cpp -- natverk._core.cuda.dropout_forward / dropout_backward, the twins of
// _core.dropout_forward / dropout_backward (cpp/bindings/bind_dropout.cpp): same arguments,
// defaults, validation and return structure, with Tensors for the arrays.
#include "bindings/cuda/tensor.h"
#include "dropout/dropout.h"

namespace natverk {
namespace bind {
namespace cudab {

void bind_dropout(py::module_& m) {
  m.def(
      "dropout_forward",
      [](const py::object& x_obj, const py::object& p_obj, const py::object& seed_obj) -> py::tuple {
        const Tensor& x = as_tensor(x_obj, "x");
        const double p = as_float(p_obj, "p");
        const uint64_t seed = as_uint64(seed_obj, "seed");
        require_in(p, "p", 0.0, 1.0, true);
        return dispatch_float_tensor(x, "x", [&](auto tag) -> py::tuple {
          using T = decltype(tag);
          require_float_arg<T>(p, "p");
          Tensor y = empty_as<T>(x.shape);
          Tensor mask = empty_as<uint8_t>(x.shape);
          natverk::cuda::dropout_forward<T>(y.ptr<T>(), mask.ptr<uint8_t>(), x.ptr<T>(), x.numel, p, seed);
          return py::make_tuple(y, mask);
        });
      },
      py::arg("x"), py::arg("p"), py::arg("seed"),
      "(y, mask) on the GPU: each element kept with probability 1 - p (mask 1, uint8) and scaled by "
      "1/(1-p); the decision for element i depends only on (seed, i), and the mask is bit for bit "
      "_core.dropout_forward's for the same seed.");

  m.def(
      "dropout_backward",
      [](const py::object& dy_obj, const py::object& mask_obj, const py::object& p_obj) -> Tensor {
        const Tensor& dy = as_tensor(dy_obj, "dy");
        const Tensor& mask = as_tensor(mask_obj, "mask");
        const double p = as_float(p_obj, "p");
        require_in(p, "p", 0.0, 1.0, true);
        return dispatch_float_tensor(dy, "dy", [&](auto tag) -> Tensor {
          using T = decltype(tag);
          require_float_arg<T>(p, "p");
          if (mask.dtype != DType::uint8)
            throw py::type_error("mask must be the uint8 Tensor dropout_forward returned, got " +
                                 std::string(dtype_name(mask.dtype)));
          require_same_tensor_shape(dy, "dy", mask, "mask");
          Tensor dx = empty_as<T>(dy.shape);
          natverk::cuda::dropout_backward<T>(dx.ptr<T>(), dy.ptr<T>(), mask.ptr<uint8_t>(), dy.numel, p);
          return dx;
        });
      },
      py::arg("dy"), py::arg("mask"), py::arg("p"), "dx = dy * mask / (1 - p), on the GPU.");
}

}  // namespace cudab
}  // namespace bind
}  // namespace natverk
