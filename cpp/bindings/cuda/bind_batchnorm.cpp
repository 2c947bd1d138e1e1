// bind_batchnorm.cpp -- natverk._core.cuda.batchnorm_forward / batchnorm_backward, the twins of
// the _core functions in bindings/bind_batchnorm.cpp: same names, arguments, defaults, checks
// and messages, on (N, F) or (N, C, H, W) Tensors. In training, running_mean and running_var are
// updated in place, as the CPU binding updates its arrays.
#include <cmath>
#include <vector>

#include "batchnorm/batchnorm.h"
#include "bindings/cuda/tensor.h"
#include "bindings/hyper_checks.h"

namespace natverk {
namespace bind {
namespace cudab {

namespace {

struct Dims {
  int64_t N, C, S;
};

Dims bn_dims(const Tensor& x) {
  if (x.ndim() != 2 && x.ndim() != 4)
    throw py::value_error("x must be 2-D (N, features) or 4-D (N, C, H, W), got shape " + shape_str(x.shape));
  if (x.numel == 0) throw py::value_error("x is empty, shape " + shape_str(x.shape));
  return {x.dim(0), x.dim(1), x.ndim() == 4 ? x.dim(2) * x.dim(3) : 1};
}

template <typename T>
T* channel_vec(const Tensor& a, const char* name, int64_t C) {
  require_tensor_dtype<T>(a, name, "x");
  require_tensor_shape(a, name, {C});
  return a.ptr<T>();
}

// The CPU binding rejects a negative (or NaN) running variance before an evaluation forward.
// Here it lives on the device: copy the C values back (one small transfer and a wait, on the
// evaluation path only, never in a training step).
template <typename T>
void require_nonnegative_running_var(const T* rv, int64_t C) {
  std::vector<T> host(static_cast<size_t>(C));
  {
    py::gil_scoped_release release;
    NV_CUDA_CHECK(cudaMemcpyAsync(host.data(), rv, sizeof(T) * host.size(), cudaMemcpyDeviceToHost,
                                  natverk::cuda::stream()));
    natverk::cuda::synchronize();
  }
  for (const T v : host)
    if (!(v >= 0)) throw py::value_error("running_var must be >= 0");
}

}  // namespace

void bind_batchnorm(py::module_& m) {
  m.def(
      "batchnorm_forward",
      [](const py::object& x_obj, const py::object& gamma_obj, const py::object& beta_obj,
         const py::object& running_mean_obj, const py::object& running_var_obj, const py::object& training_obj,
         const py::object& eps_obj, const py::object& momentum_obj) -> py::tuple {
        const Tensor& x = as_tensor(x_obj, "x");
        const Tensor& gamma = as_tensor(gamma_obj, "gamma");
        const Tensor& beta = as_tensor(beta_obj, "beta");
        const Tensor& running_mean = as_tensor(running_mean_obj, "running_mean");
        const Tensor& running_var = as_tensor(running_var_obj, "running_var");
        const bool training = as_bool(training_obj, "training");
        const double eps = as_float(eps_obj, "eps"), momentum = as_float(momentum_obj, "momentum");
        check_bn_hyper(eps, momentum);
        return dispatch_float_tensor(x, "x", [&](auto tag) -> py::tuple {
          using T = decltype(tag);
          require_float_arg<T>(eps, "eps");
          require_float_arg<T>(momentum, "momentum");
          const Dims d = bn_dims(x);
          const T* g = channel_vec<T>(gamma, "gamma", d.C);
          const T* b = channel_vec<T>(beta, "beta", d.C);
          T* rm = channel_vec<T>(running_mean, "running_mean", d.C);  // written in training only
          T* rv = channel_vec<T>(running_var, "running_var", d.C);
          if (!training) require_nonnegative_running_var<T>(rv, d.C);
          Tensor y = empty_as<T>(x.shape);
          Tensor mean = empty_as<T>({d.C}), invstd = empty_as<T>({d.C});
          if (training) {
            natverk::cuda::batchnorm_forward_train<T>(y.ptr<T>(), mean.ptr<T>(), invstd.ptr<T>(), rm, rv,
                                                      x.ptr<T>(), g, b, d.N, d.C, d.S, eps, momentum);
          } else {
            natverk::cuda::batchnorm_forward_eval<T>(y.ptr<T>(), x.ptr<T>(), g, b, rm, rv, d.N, d.C, d.S, eps);
            natverk::cuda::batchnorm_eval_stats<T>(mean.ptr<T>(), invstd.ptr<T>(), rm, rv, d.C, eps);
          }
          return py::make_tuple(y, mean, invstd);
        });
      },
      py::arg("x"), py::arg("gamma"), py::arg("beta"), py::arg("running_mean"), py::arg("running_var"),
      py::arg("training"), py::arg("eps") = 1e-5, py::arg("momentum") = 0.1,
      "(y, mean, invstd) on the GPU. Training normalises with the batch statistics and updates the "
      "running_mean/running_var Tensors in place (running_var with the unbiased variance); evaluation "
      "uses the running statistics. Pass mean and invstd on to batchnorm_backward.");

  m.def(
      "batchnorm_backward",
      [](const py::object& dy_obj, const py::object& x_obj, const py::object& mean_obj,
         const py::object& invstd_obj, const py::object& gamma_obj, const py::object& training_obj) -> py::tuple {
        const Tensor& dy = as_tensor(dy_obj, "dy");
        const Tensor& x = as_tensor(x_obj, "x");
        const Tensor& mean = as_tensor(mean_obj, "mean");
        const Tensor& invstd = as_tensor(invstd_obj, "invstd");
        const Tensor& gamma = as_tensor(gamma_obj, "gamma");
        const bool training = as_bool(training_obj, "training");
        return dispatch_float_tensor(x, "x", [&](auto tag) -> py::tuple {
          using T = decltype(tag);
          const Dims d = bn_dims(x);
          require_tensor_dtype<T>(dy, "dy", "x");
          require_same_tensor_shape(x, "x", dy, "dy");
          const T* mp = channel_vec<T>(mean, "mean", d.C);
          const T* ip = channel_vec<T>(invstd, "invstd", d.C);
          const T* g = channel_vec<T>(gamma, "gamma", d.C);
          Tensor dx = empty_as<T>(x.shape);
          Tensor dgamma = empty_as<T>({d.C}), dbeta = empty_as<T>({d.C});
          natverk::cuda::batchnorm_backward<T>(dx.ptr<T>(), dgamma.ptr<T>(), dbeta.ptr<T>(), dy.ptr<T>(), x.ptr<T>(),
                                               mp, ip, g, d.N, d.C, d.S, training);
          return py::make_tuple(dx, dgamma, dbeta);
        });
      },
      py::arg("dy"), py::arg("x"), py::arg("mean"), py::arg("invstd"), py::arg("gamma"), py::arg("training"),
      "(dx, dgamma, dbeta) on the GPU, given the mean/invstd batchnorm_forward returned.");
}

}  // namespace cudab
}  // namespace bind
}  // namespace natverk
