// module_core.cpp -- natverk._core: the compiled kernels. One bind_<family>()
// per source file keeps builds parallel; this file adds the run-time config.
#include <pybind11/pybind11.h>

#include <limits>
#include <stdexcept>

#include "bindings/checks.h"

#include "common/cpu_features.h"
#include "common/parallel.h"
#include "gemm/gemm.h"

namespace py = pybind11;

namespace natverk {
namespace bind {
void bind_gemm(py::module_& m);
void bind_activations(py::module_& m);
void bind_dense(py::module_& m);
void bind_conv2d(py::module_& m);
void bind_pool2d(py::module_& m);
void bind_batchnorm(py::module_& m);
void bind_dropout(py::module_& m);
void bind_residual(py::module_& m);
void bind_losses(py::module_& m);
void bind_optimizers(py::module_& m);
void bind_plan(py::module_& m);
#ifdef NATVERK_HAVE_CUDA
namespace cudab {
void bind_cuda(py::module_& core);  // cpp/bindings/cuda/module_cuda.cpp
}
#endif
}  // namespace bind
}  // namespace natverk

#ifndef NATVERK_VERSION
#define NATVERK_VERSION "0+unknown"
#endif

PYBIND11_MODULE(_core, m) {
  using namespace natverk;
  m.doc() = "natverk's C++ kernels (float32 and float64, GIL released, multithreaded).";
  m.attr("__version__") = NATVERK_VERSION;
#ifdef NATVERK_HAVE_CUDA
  m.attr("cuda_built") = true;
#else
  m.attr("cuda_built") = false;
#endif

  // GIL released: a resize waits for the region in flight, whose caller may
  // need the GIL to return (issue 13's deadlock).
  m.def(
      "set_num_threads",
      [](const py::object& n_obj) {
        const int64_t n = bind::as_int64(n_obj, "n");
        if (n < std::numeric_limits<int>::min() || n > std::numeric_limits<int>::max())
          throw py::value_error("n (the number of threads) = " + std::to_string(n) + " is out of range");
        py::gil_scoped_release release;
        natverk::set_num_threads(static_cast<int>(n));
      },
      py::arg("n"), "Set the number of threads the kernels use (1..1024); waits for a region in flight.");
  m.def("get_num_threads", &natverk::num_threads, "Number of threads the kernels use.");
  m.def("hardware_threads", &natverk::hardware_threads, "Hardware threads this machine reports.");
  m.def("simd_level", [] { return std::string(simd_level_name(simd_level())); },
        "SIMD level the kernels run at now: 'scalar', 'avx2' or 'avx512'.");
  m.def("best_simd_level", [] { return std::string(simd_level_name(best_simd_level())); },
        "Best SIMD level this CPU supports and this build contains.");
  m.def("set_simd_level",
        [](const py::object& level) { set_simd_level(parse_simd_level(bind::as_str(level, "level"))); },
        py::arg("level"),
        "Lower (or restore) the SIMD level: 'scalar', 'avx2' or 'avx512'; never above best_simd_level().");
  m.def(
      "gemm_blocking",
      [](const py::object& dtype_obj) {
        const std::string dtype = bind::as_str(dtype_obj, "dtype");
        GemmBlocking b;
        if (dtype == "float32") b = gemm_blocking_f32();
        else if (dtype == "float64") b = gemm_blocking_f64();
        else throw py::value_error("dtype must be 'float32' or 'float64'");
        py::dict d;
        d["mr"] = b.mr; d["nr"] = b.nr; d["mc"] = b.mc; d["kc"] = b.kc; d["nc"] = b.nc;
        return d;
      },
      py::arg("dtype"), "The GEMM register/cache blocking used at the current SIMD level.");
  m.def(
      "_set_gemm_b_in_place",
      [](const py::object& mode_obj) {
        const std::string mode = bind::as_str(mode_obj, "mode");
        if (mode == "auto") set_gemm_b_in_place(GemmBInPlace::Auto);
        else if (mode == "always") set_gemm_b_in_place(GemmBInPlace::Always);
        else if (mode == "never") set_gemm_b_in_place(GemmBInPlace::Never);
        else throw py::value_error("mode must be 'auto', 'always' or 'never', got '" + mode + "'");
      },
      py::arg("mode"),
      "Whether the AVX-512 GEMM reads B's panels in place when m fits one MC block (cpp/gemm/gemm.h, "
      "GemmBInPlace): 'auto' (AMD CPUs only, as measured), 'always' or 'never'. The bits are the same; "
      "for the tests and benchmarks.");
  m.def(
      "_gemm_b_in_place",
      [] {
        static const char* names[] = {"auto", "always", "never"};
        return py::make_tuple(names[static_cast<int>(gemm_b_in_place())], gemm_b_in_place_active());
      },
      "(mode, active): the mode _set_gemm_b_in_place set, and whether B is read in place under it here.");
  m.def(
      "_array_pool_stats",
      [] {
        const bind::ArrayPoolStats s = bind::array_pool_stats();
        py::dict d;
        d["cached_blocks"] = s.cached_blocks; d["cached_bytes"] = s.cached_bytes;
        d["hits"] = s.hits; d["misses"] = s.misses;
        d["min_pooled_bytes"] = bind::kMinPooledBytes; d["max_cached_bytes"] = bind::kMaxCachedBytes;
        d["max_block_bytes"] = bind::kMaxBlockBytes;
        return d;
      },
      "The pool new output arrays come from (cpp/bindings/array_pool.h): blocks and bytes waiting now, "
      "acquisitions served from it (hits) and from the system (misses), and its limits.");
  m.def("_array_pool_clear", &bind::array_pool_clear,
        "Return every block waiting in the output-array pool to the system.");

  bind::bind_gemm(m);
  bind::bind_activations(m);
  bind::bind_dense(m);
  bind::bind_conv2d(m);
  bind::bind_pool2d(m);
  bind::bind_batchnorm(m);
  bind::bind_dropout(m);
  bind::bind_residual(m);
  bind::bind_losses(m);
  bind::bind_optimizers(m);
  bind::bind_plan(m);
#ifdef NATVERK_HAVE_CUDA
  bind::cudab::bind_cuda(m);
#endif
}
