// module_cuda.cpp -- natverk._core.cuda, built only with NATVERK_CUDA=ON: the Tensor type,
// the device queries, and the CUDA twin of each kernel family under the CPU kernel's name
// and arguments (Tensors where _core takes arrays), one bind_<family>() per file.
#include <cuda_runtime.h>

#include <cstring>

#include "bindings/cuda/tensor.h"

namespace natverk {
namespace bind {
namespace cudab {

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

namespace {

DType dtype_from_numpy(const py::dtype& dt, const char* name) {
  if (dt.is(py::dtype::of<float>()) || dt.equal(py::dtype::of<float>())) return DType::float32;
  if (dt.equal(py::dtype::of<double>())) return DType::float64;
  if (dt.equal(py::dtype::of<int64_t>())) return DType::int64;
  if (dt.equal(py::dtype::of<uint8_t>())) return DType::uint8;
  throw py::type_error(std::string(name) + " must be float32, float64, int64 or uint8, got " +
                       py::str(dt).cast<std::string>());
}

py::dtype numpy_dtype(DType d) {
  switch (d) {
    case DType::float32: return py::dtype::of<float>();
    case DType::float64: return py::dtype::of<double>();
    case DType::int64: return py::dtype::of<int64_t>();
    case DType::uint8: return py::dtype::of<uint8_t>();
  }
  return py::dtype::of<float>();
}

std::vector<int64_t> as_shape(const py::handle& obj, const char* name) {
  std::vector<int64_t> shape;
  if (py::isinstance<py::int_>(obj)) {
    shape.push_back(as_int64(obj, name));
  } else {
    for (const py::handle h : py::iterable(obj.cast<py::object>())) shape.push_back(as_int64(h, name));
  }
  return shape;
}

Tensor to_device(const py::object& obj) {
  py::array a = as_array(obj, "array");
  // A C-contiguous, aligned, native-byte-order copy where the input is not one already.
  a = py::array::ensure(a, py::array::c_style);
  if (!a) throw py::type_error("array could not be made C-contiguous");
  const DType dt = dtype_from_numpy(a.dtype(), "array");
  std::vector<int64_t> shape(a.shape(), a.shape() + a.ndim());
  Tensor t = empty(shape, dt);
  if (t.numel > 0) {
    NV_CUDA_CHECK(cudaMemcpyAsync(t.data.get(), a.data(), t.nbytes(), cudaMemcpyHostToDevice,
                                  natverk::cuda::stream()));
    // The host buffer may go away when this returns: wait for the copy.
    natverk::cuda::synchronize();
  }
  return t;
}

py::array to_numpy(const Tensor& t) {
  std::vector<py::ssize_t> shape(t.shape.begin(), t.shape.end());
  py::array out(numpy_dtype(t.dtype), shape);
  if (t.numel > 0) {
    py::gil_scoped_release release;
    NV_CUDA_CHECK(cudaMemcpyAsync(out.mutable_data(), t.data.get(), t.nbytes(), cudaMemcpyDeviceToHost,
                                  natverk::cuda::stream()));
    natverk::cuda::synchronize();
  }
  return out;
}

}  // namespace

void bind_tensor(py::module_& m) {
  py::class_<Tensor>(m, "Tensor",
                     "A C-contiguous array in GPU memory (float32, float64, int64 or uint8). Made by "
                     "to_device(array), empty(shape, dtype), zeros(shape, dtype) and the kernels; "
                     ".numpy() copies it back.")
      .def_property_readonly("shape", [](const Tensor& t) {
        py::tuple s(t.shape.size());
        for (size_t i = 0; i < t.shape.size(); ++i) s[i] = t.shape[i];
        return s;
      })
      .def_property_readonly("dtype", [](const Tensor& t) { return numpy_dtype(t.dtype); })
      .def_property_readonly("size", [](const Tensor& t) { return t.numel; })
      .def_property_readonly("ndim", [](const Tensor& t) { return t.ndim(); })
      .def_property_readonly("nbytes", [](const Tensor& t) { return t.nbytes(); })
      .def("numpy", &to_numpy, "Copy to a new NumPy array (waits for the kernels queued before).")
      .def("__repr__", [](const Tensor& t) {
        return std::string("natverk.cuda.Tensor(shape=") + shape_str(t.shape) + ", dtype=" + dtype_name(t.dtype) + ")";
      });

  m.def("to_device", &to_device, py::arg("array"),
        "Copy a NumPy array (any strides; float32, float64, int64 or uint8) to a new Tensor.");
  m.def(
      "empty",
      [](const py::object& shape, const py::object& dtype) {
        return empty(as_shape(shape, "shape"), dtype_from_numpy(py::dtype::from_args(dtype), "dtype"));
      },
      py::arg("shape"), py::arg("dtype") = py::str("float32"), "A new Tensor, contents undefined.");
  m.def(
      "zeros",
      [](const py::object& shape, const py::object& dtype) {
        Tensor t = empty(as_shape(shape, "shape"), dtype_from_numpy(py::dtype::from_args(dtype), "dtype"));
        if (t.numel > 0) NV_CUDA_CHECK(cudaMemsetAsync(t.data.get(), 0, t.nbytes(), natverk::cuda::stream()));
        return t;
      },
      py::arg("shape"), py::arg("dtype") = py::str("float32"), "A new Tensor of zeros.");
  m.def("device_count", &natverk::cuda::device_count, "Number of visible GPUs (0 without driver or device).");
  m.def("unavailable_reason", &natverk::cuda::unavailable_reason,
        "Why device_count() is 0, in words; '' when a GPU is visible.");
  m.def("synchronize", [] {
    py::gil_scoped_release release;
    natverk::cuda::synchronize();
  }, "Wait for every kernel queued on natverk's stream.");
  m.def("device_info", [] {
    py::dict d;
    int runtime = 0, driver = 0;
    cudaRuntimeGetVersion(&runtime);
    if (cudaDriverGetVersion(&driver) != cudaSuccess) driver = 0;
    d["runtime_version"] = runtime;
    d["driver_version"] = driver;
    d["device_count"] = natverk::cuda::device_count();
    if (natverk::cuda::device_count() > 0) {
      int dev = 0;
      NV_CUDA_CHECK(cudaGetDevice(&dev));
      cudaDeviceProp p;
      NV_CUDA_CHECK(cudaGetDeviceProperties(&p, dev));
      d["name"] = std::string(p.name);
      d["compute_capability"] = std::to_string(p.major) + "." + std::to_string(p.minor);
      d["multiprocessors"] = p.multiProcessorCount;
      d["memory_bytes"] = static_cast<uint64_t>(p.totalGlobalMem);
    } else {
      d["reason"] = natverk::cuda::unavailable_reason();
    }
    return d;
  }, "The GPU natverk uses (name, compute capability, memory) and the CUDA versions.");
}

void bind_cuda(py::module_& core) {
  py::module_ m = core.def_submodule(
      "cuda", "natverk's CUDA kernels: the twin of each _core kernel, same name and arguments, on Tensors.");
  bind_tensor(m);
  bind_gemm(m);
  bind_activations(m);
  bind_dense(m);
  bind_conv2d(m);
  bind_pool2d(m);
  bind_batchnorm(m);
  bind_dropout(m);
  bind_residual(m);
  bind_losses(m);
  bind_optimizers(m);
}

}  // namespace cudab
}  // namespace bind
}  // namespace natverk
