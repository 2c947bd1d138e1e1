// bind_gemm.cpp -- natverk._core.cuda.gemm, the twin of _core.gemm on Tensors.
#include "bindings/cuda/tensor.h"
#include "gemm/gemm.h"

namespace natverk {
namespace bind {
namespace cudab {

void bind_gemm(py::module_& m) {
  m.def(
      "gemm",
      [](const py::object& A_obj, const py::object& B_obj, const py::object& C_obj, const py::object& alpha_obj,
         const py::object& beta_obj, const py::object& trans_a_obj, const py::object& trans_b_obj) -> py::object {
        const Tensor& A = as_tensor(A_obj, "A");
        const Tensor& B = as_tensor(B_obj, "B");
        const double alpha = as_float(alpha_obj, "alpha"), beta = as_float(beta_obj, "beta");
        const bool trans_a = as_bool(trans_a_obj, "trans_a"), trans_b = as_bool(trans_b_obj, "trans_b");
        return dispatch_float_tensor(A, "A", [&](auto tag) -> py::object {
          using T = decltype(tag);
          require_tensor_dtype<T>(B, "B", "A");
          require_tensor_ndim(A, "A", 2);
          require_tensor_ndim(B, "B", 2);
          require_float_arg<T>(alpha, "alpha");
          require_float_arg<T>(beta, "beta");
          const int64_t m = trans_a ? A.dim(1) : A.dim(0), k = trans_a ? A.dim(0) : A.dim(1);
          const int64_t kb = trans_b ? B.dim(1) : B.dim(0), n = trans_b ? B.dim(0) : B.dim(1);
          if (k != kb)
            throw py::value_error("inner dimensions differ: op(A) is " + std::to_string(m) + " x " +
                                  std::to_string(k) + ", op(B) is " + std::to_string(kb) + " x " +
                                  std::to_string(n));
          // Tensors are C-contiguous: a transpose is swapped strides, read in place.
          int64_t rsa = A.dim(1), csa = 1, rsb = B.dim(1), csb = 1;
          if (trans_a) std::swap(rsa, csa);
          if (trans_b) std::swap(rsb, csb);
          py::object C_out;
          Tensor* C = nullptr;
          if (C_obj.is_none()) {
            if (beta != 0.0) throw py::value_error("beta != 0 needs an existing C to scale");
            C_out = py::cast(empty_as<T>({m, n}));
            C = &C_out.cast<Tensor&>();
          } else {
            C = &as_tensor(C_obj, "C");
            require_tensor_dtype<T>(*C, "C", "A");
            require_tensor_shape(*C, "C", {m, n});
            if (C->numel > 0 && (C->data == A.data || C->data == B.data))
              throw py::value_error("C must not share memory with A or B");
            C_out = C_obj;
          }
          natverk::cuda::gemm<T>(C->ptr<T>(), n, A.ptr<T>(), rsa, csa, B.ptr<T>(), rsb, csb, m, n, k,
                                 static_cast<T>(alpha), static_cast<T>(beta));
          return C_out;
        });
      },
      py::arg("A"), py::arg("B"), py::arg("C") = py::none(), py::arg("alpha") = 1.0, py::arg("beta") = 0.0,
      py::arg("trans_a") = false, py::arg("trans_b") = false,
      "C = alpha * op(A) @ op(B) + beta * C on the GPU (the twin of natverk._core.gemm; Tensors, C updated in "
      "place when given).");
}

}  // namespace cudab
}  // namespace bind
}  // namespace natverk
