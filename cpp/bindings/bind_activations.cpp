// bind_activations.cpp -- elementwise activations and softmax.
#include "activations/activations.h"
#include "bindings/checks.h"

namespace natverk {
namespace bind {

void bind_activations(py::module_& m) {
  m.def(
      "activation_forward",
      [](const py::object& x_obj, const py::object& kind) -> py::array {
        const py::array x = as_array(x_obj, "x");
        const Activation act = parse_activation(as_str(kind, "kind"));
        return dispatch_float(x, "x", [&](auto tag) -> py::array {
          using T = decltype(tag);
          const T* in = in_ptr<T>(x, "x");
          py::array_t<T> out = new_array_like<T>(x);
          T* o = out.mutable_data();
          const int64_t n = x.size();
          {
            py::gil_scoped_release release;
            activation_forward<T>(o, in, n, act);
          }
          return out;
        });
      },
      py::arg("x"), py::arg("kind"),
      "h = f(x) elementwise; kind is 'relu', 'sigmoid', 'tanh' or 'linear'. NaN propagates.");

  m.def(
      "activation_backward",
      [](const py::object& dh_obj, const py::object& h_obj, const py::object& kind) -> py::array {
        const py::array dh = as_array(dh_obj, "dh"), h = as_array(h_obj, "h");
        const Activation act = parse_activation(as_str(kind, "kind"));
        return dispatch_float(dh, "dh", [&](auto tag) -> py::array {
          using T = decltype(tag);
          require_dtype<T>(h, "h", "dh");
          require_same_shape(dh, "dh", h, "h");
          const T* g = in_ptr<T>(dh, "dh");
          const T* hp = in_ptr<T>(h, "h");
          py::array_t<T> out = new_array_like<T>(h);
          T* o = out.mutable_data();
          const int64_t n = h.size();
          {
            py::gil_scoped_release release;
            activation_backward<T>(o, g, hp, n, act);
          }
          return out;
        });
      },
      py::arg("dh"), py::arg("h"), py::arg("kind"),
      "dz = dh * f'(z), computed from the activation's output h = f(z).");

  m.def(
      "softmax",
      [](const py::object& z_obj) -> py::array {
        const py::array z = as_array(z_obj, "z");
        return dispatch_float(z, "z", [&](auto tag) -> py::array {
          using T = decltype(tag);
          require_ndim(z, "z", 2);
          if (z.shape(1) == 0) throw py::value_error("z must have at least one column (class)");
          const T* in = in_ptr<T>(z, "z");
          py::array_t<T> out = new_array_like<T>(z);
          T* o = out.mutable_data();
          const int64_t rows = z.shape(0), cols = z.shape(1);
          {
            py::gil_scoped_release release;
            softmax_forward<T>(o, in, rows, cols);
          }
          return out;
        });
      },
      py::arg("z"), "Row-wise softmax of a 2-D array, stable (the row maximum is subtracted first).");
}

}  // namespace bind
}  // namespace natverk
