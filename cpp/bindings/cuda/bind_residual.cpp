// bind_residual.cpp -- natverk._core.cuda.add, the twin of _core.add.
#include "bindings/cuda/tensor.h"
#include "residual/residual.h"

namespace natverk {
namespace bind {
namespace cudab {

void bind_residual(py::module_& m) {
  m.def(
      "add",
      [](const py::object& a_obj, const py::object& b_obj) {
        const Tensor& a = as_tensor(a_obj, "a");
        const Tensor& b = as_tensor(b_obj, "b");
        return dispatch_float_tensor(a, "a", [&](auto tag) {
          using T = decltype(tag);
          require_tensor_dtype<T>(b, "b", "a");
          require_same_tensor_shape(a, "a", b, "b");
          Tensor out = empty_as<T>(a.shape);
          natverk::cuda::add_forward<T>(out.ptr<T>(), a.ptr<T>(), b.ptr<T>(), a.numel);
          return out;
        });
      },
      py::arg("a"), py::arg("b"), "a + b elementwise (same shape and dtype), on the GPU.");
}

}  // namespace cudab
}  // namespace bind
}  // namespace natverk
