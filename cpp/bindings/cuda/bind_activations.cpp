// bind_activations.cpp -- natverk._core.cuda.activation_forward / activation_backward / softmax,
// the twins of the _core functions of the same names (cpp/bindings/bind_activations.cpp):
// same arguments, checks and messages, Tensors in place of arrays.
#include <string>

#include "activations/activations.h"
#include "bindings/cuda/tensor.h"

namespace natverk {
namespace bind {
namespace cudab {

void bind_activations(py::module_& m) {
  m.def(
      "activation_forward",
      [](const py::object& x_obj, const py::object& kind) {
        const Tensor& x = as_tensor(x_obj, "x");
        const Activation act = parse_activation(as_str(kind, "kind"));  // ValueError as on the CPU
        return dispatch_float_tensor(x, "x", [&](auto tag) {
          using T = decltype(tag);
          Tensor out = empty_as<T>(x.shape);
          natverk::cuda::activation_forward<T>(out.ptr<T>(), x.ptr<T>(), x.numel, act);
          return out;
        });
      },
      py::arg("x"), py::arg("kind"),
      "h = f(x) elementwise on the GPU; kind is 'relu', 'sigmoid', 'tanh' or 'linear'. NaN propagates.");

  m.def(
      "activation_backward",
      [](const py::object& dh_obj, const py::object& h_obj, const py::object& kind) {
        const Tensor& dh = as_tensor(dh_obj, "dh");
        const Tensor& h = as_tensor(h_obj, "h");
        const Activation act = parse_activation(as_str(kind, "kind"));
        return dispatch_float_tensor(dh, "dh", [&](auto tag) {
          using T = decltype(tag);
          require_tensor_dtype<T>(h, "h", "dh");
          if (dh.shape != h.shape)  // the CPU binding's message
            throw py::value_error("dh and h must have the same shape, got " + shape_str(dh.shape) + " and " +
                                  shape_str(h.shape));
          Tensor out = empty_as<T>(h.shape);
          natverk::cuda::activation_backward<T>(out.ptr<T>(), dh.ptr<T>(), h.ptr<T>(), h.numel, act);
          return out;
        });
      },
      py::arg("dh"), py::arg("h"), py::arg("kind"),
      "dz = dh * f'(z) on the GPU, computed from the activation's output h = f(z).");

  m.def(
      "softmax",
      [](const py::object& z_obj) {
        const Tensor& z = as_tensor(z_obj, "z");
        return dispatch_float_tensor(z, "z", [&](auto tag) {
          using T = decltype(tag);
          require_tensor_ndim(z, "z", 2);
          if (z.dim(1) == 0) throw py::value_error("z must have at least one column (class)");
          Tensor out = empty_as<T>(z.shape);
          natverk::cuda::softmax_forward<T>(out.ptr<T>(), z.ptr<T>(), z.dim(0), z.dim(1));
          return out;
        });
      },
      py::arg("z"), "Row-wise softmax of a 2-D Tensor on the GPU, stable (the row maximum is subtracted first).");
}

}  // namespace cudab
}  // namespace bind
}  // namespace natverk
