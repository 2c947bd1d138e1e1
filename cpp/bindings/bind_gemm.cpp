// bind_gemm.cpp -- natverk._core.gemm
#include "bindings/checks.h"
#include "gemm/gemm.h"

namespace natverk {
namespace bind {

void bind_gemm(py::module_& m) {
  m.def(
      "gemm",
      [](const py::object& A_obj, const py::object& B_obj, const py::object& C_obj, const py::object& alpha_obj,
         const py::object& beta_obj, const py::object& trans_a_obj, const py::object& trans_b_obj) -> py::array {
        const py::array A = as_array(A_obj, "A"), B = as_array(B_obj, "B");
        const std::optional<py::array> C_given = as_optional_array(C_obj, "C");
        const double alpha = as_float(alpha_obj, "alpha"), beta = as_float(beta_obj, "beta");
        const bool trans_a = as_bool(trans_a_obj, "trans_a"), trans_b = as_bool(trans_b_obj, "trans_b");
        return dispatch_float(A, "A", [&](auto tag) -> py::array {
          using T = decltype(tag);
          require_dtype<T>(B, "B", "A");
          require_ndim(A, "A", 2);
          require_ndim(B, "B", 2);
          require_float_arg<T>(alpha, "alpha");
          require_float_arg<T>(beta, "beta");
          const py::ssize_t m = trans_a ? A.shape(1) : A.shape(0);
          const py::ssize_t k = trans_a ? A.shape(0) : A.shape(1);
          const py::ssize_t kb = trans_b ? B.shape(1) : B.shape(0);
          const py::ssize_t n = trans_b ? B.shape(0) : B.shape(1);
          if (k != kb)
            throw py::value_error("inner dimensions differ: op(A) is " + std::to_string(m) + " x " +
                                  std::to_string(k) + ", op(B) is " + std::to_string(kb) + " x " +
                                  std::to_string(n));
          // Element strides; any NumPy view works (a transpose is swapped strides).
          const auto elem_stride = [](const py::array& a, int d, const char* name) -> int64_t {
            if (a.strides(d) % static_cast<py::ssize_t>(sizeof(T)) != 0)
              throw py::value_error(std::string(name) + " has strides that are not a multiple of its itemsize");
            return a.strides(d) / static_cast<py::ssize_t>(sizeof(T));
          };
          int64_t rsa = elem_stride(A, 0, "A"), csa = elem_stride(A, 1, "A");
          int64_t rsb = elem_stride(B, 0, "B"), csb = elem_stride(B, 1, "B");
          if (trans_a) std::swap(rsa, csa);
          if (trans_b) std::swap(rsb, csb);

          py::array C;
          if (!C_given) {
            if (beta != 0.0) throw py::value_error("beta != 0 needs an existing C to scale");
            C = new_array<T>({m, n}, "the result C (rows of op(A) x columns of op(B))");
          } else {
            C = *C_given;
            require_dtype<T>(C, "C", "A");
            require_ndim(C, "C", 2);
            if (C.shape(0) != m || C.shape(1) != n)
              throw py::value_error("C must have shape (" + std::to_string(m) + ", " +
                                    std::to_string(n) + "), got " + shape_str(C));
            require_writeable(C, "C");
            if (m == 0 || n == 0) return C;  // nothing to compute; an empty array's strides are arbitrary
            if (n > 1 && C.strides(1) != static_cast<py::ssize_t>(sizeof(T)))
              throw py::value_error("C must have unit column stride (a row-major view)");
            if (m > 1 && (C.strides(0) % static_cast<py::ssize_t>(sizeof(T)) != 0 ||
                          C.strides(0) < n * static_cast<py::ssize_t>(sizeof(T))))
              throw py::value_error("C rows must not overlap");
            if (shares_memory(C, A) || shares_memory(C, B))
              throw py::value_error("C must not share memory with A or B");
          }
          const int64_t ldc = m > 1 ? C.strides(0) / static_cast<py::ssize_t>(sizeof(T)) : n;
          const T* a = static_cast<const T*>(A.data());
          const T* b = static_cast<const T*>(B.data());
          T* c = static_cast<T*>(C.mutable_data());
          {
            py::gil_scoped_release release;
            gemm<T>(c, ldc, a, rsa, csa, b, rsb, csb, m, n, k, static_cast<T>(alpha),
                    static_cast<T>(beta));
          }
          return C;
        });
      },
      py::arg("A"), py::arg("B"), py::arg("C") = py::none(), py::arg("alpha") = 1.0,
      py::arg("beta") = 0.0, py::arg("trans_a") = false, py::arg("trans_b") = false,
      R"doc(C = alpha * op(A) @ op(B) + beta * C with our packed, cache-blocked SIMD GEMM.

A and B: 2-D float32 or float64 arrays of one dtype, any strides (views and
transposes are read in place). op(X) is X.T when trans_x is true. C, when
given, is updated in place (unit column stride, no overlap with A or B) and
returned; otherwise a new array is returned (beta must then be 0).
beta == 0 overwrites C without reading it; NaN/Inf in A or B propagate, also
when alpha == 0 (0 * NaN and 0 * Inf are NaN; reference BLAS would skip A and
B there). alpha and beta must be finite in the arrays' dtype.)doc");
}

}  // namespace bind
}  // namespace natverk
