// bind_dropout.cpp -- inverted dropout with a counter-based RNG.
#include "bindings/checks.h"
#include "dropout/dropout.h"

namespace natverk {
namespace bind {

void bind_dropout(py::module_& m) {
  m.def(
      "dropout_forward",
      [](const py::object& x_obj, const py::object& p_obj, const py::object& seed_obj) -> py::tuple {
        const py::array x = as_array(x_obj, "x");
        const double p = as_float(p_obj, "p");
        const uint64_t seed = as_uint64(seed_obj, "seed");
        require_in(p, "p", 0.0, 1.0, true);
        return dispatch_float(x, "x", [&](auto tag) -> py::tuple {
          using T = decltype(tag);
          require_float_arg<T>(p, "p");
          const T* xp = in_ptr<T>(x, "x");
          py::array_t<T> y = new_array_like<T>(x);
          py::array_t<uint8_t> mask = new_array_like<uint8_t>(x);
          T* yp = y.mutable_data();
          uint8_t* mp = mask.mutable_data();
          const int64_t n = x.size();
          {
            py::gil_scoped_release release;
            dropout_forward<T>(yp, mp, xp, n, p, seed);
          }
          return py::make_tuple(y, mask);
        });
      },
      py::arg("x"), py::arg("p"), py::arg("seed"),
      "(y, mask): each element kept with probability 1 - p (mask 1) and scaled by 1/(1-p); the "
      "decision for element i depends only on (seed, i).");

  m.def(
      "dropout_backward",
      [](const py::object& dy_obj, const py::object& mask_obj, const py::object& p_obj) -> py::array {
        const py::array dy = as_array(dy_obj, "dy"), mask = as_array(mask_obj, "mask");
        const double p = as_float(p_obj, "p");
        require_in(p, "p", 0.0, 1.0, true);
        return dispatch_float(dy, "dy", [&](auto tag) -> py::array {
          using T = decltype(tag);
          require_float_arg<T>(p, "p");
          if (!same_dtype(mask.dtype(), py::dtype::of<uint8_t>()))
            throw py::type_error("mask must be the uint8 array dropout_forward returned");
          require_same_shape(dy, "dy", mask, "mask");
          const T* dyp = in_ptr<T>(dy, "dy");
          const uint8_t* mp = in_ptr<uint8_t>(mask, "mask");
          py::array_t<T> dx = new_array_like<T>(dy);
          T* dxp = dx.mutable_data();
          const int64_t n = dy.size();
          {
            py::gil_scoped_release release;
            dropout_backward<T>(dxp, dyp, mp, n, p);
          }
          return dx;
        });
      },
      py::arg("dy"), py::arg("mask"), py::arg("p"), "dx = dy * mask / (1 - p).");
}

}  // namespace bind
}  // namespace natverk
