// bind_residual.cpp -- natverk._core.add, the residual connection's sum.
#include "bindings/checks.h"
#include "residual/residual.h"

namespace natverk {
namespace bind {

void bind_residual(py::module_& m) {
  m.def(
      "add",
      [](const py::object& a_obj, const py::object& b_obj) -> py::array {
        const py::array a = as_array(a_obj, "a"), b = as_array(b_obj, "b");
        return dispatch_float(a, "a", [&](auto tag) -> py::array {
          using T = decltype(tag);
          require_dtype<T>(b, "b", "a");
          require_same_shape(a, "a", b, "b");
          const T* ap = in_ptr<T>(a, "a");
          const T* bp = in_ptr<T>(b, "b");
          py::array_t<T> out = new_array_like<T>(a);
          T* op = out.mutable_data();
          const int64_t n = a.size();
          {
            py::gil_scoped_release release;
            add_forward<T>(op, ap, bp, n);
          }
          return out;
        });
      },
      py::arg("a"), py::arg("b"),
      "a + b elementwise (same shape and dtype): the sum of a residual connection.");
}

}  // namespace bind
}  // namespace natverk
