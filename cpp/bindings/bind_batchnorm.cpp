// bind_batchnorm.cpp -- batch normalisation on (N, F) or (N, C, H, W) arrays.
#include "batchnorm/batchnorm.h"
#include "bindings/checks.h"
#include "bindings/hyper_checks.h"

namespace natverk {
namespace bind {

namespace {

struct Dims {
  int64_t N, C, S;
};

Dims bn_dims(const py::array& x) {
  if (x.ndim() != 2 && x.ndim() != 4)
    throw py::value_error("x must be 2-D (N, features) or 4-D (N, C, H, W), got shape " + shape_str(x));
  require_nonempty(x, "x");
  return {x.shape(0), x.shape(1), x.ndim() == 4 ? x.shape(2) * x.shape(3) : 1};
}

template <typename T>
const T* channel_vec(const py::array& a, const char* name, int64_t C) {
  require_dtype<T>(a, name, "x");
  if (a.ndim() != 1 || a.shape(0) != C)
    throw py::value_error(std::string(name) + " must have shape (" + std::to_string(C) + ",), got " + shape_str(a));
  return in_ptr<T>(a, name);
}

}  // namespace

void bind_batchnorm(py::module_& m) {
  m.def(
      "batchnorm_forward",
      [](const py::object& x_obj, const py::object& gamma_obj, const py::object& beta_obj,
         const py::object& running_mean_obj, const py::object& running_var_obj, const py::object& training_obj,
         const py::object& eps_obj, const py::object& momentum_obj) -> py::tuple {
        const py::array x = as_array(x_obj, "x"), gamma = as_array(gamma_obj, "gamma"),
                        beta = as_array(beta_obj, "beta");
        py::array running_mean = as_array(running_mean_obj, "running_mean"),
                  running_var = as_array(running_var_obj, "running_var");
        const bool training = as_bool(training_obj, "training");
        const double eps = as_float(eps_obj, "eps"), momentum = as_float(momentum_obj, "momentum");
        check_bn_hyper(eps, momentum);
        return dispatch_float(x, "x", [&](auto tag) -> py::tuple {
          using T = decltype(tag);
          require_float_arg<T>(eps, "eps");
          require_float_arg<T>(momentum, "momentum");
          const Dims d = bn_dims(x);
          const T* xp = in_ptr<T>(x, "x");
          const T* g = channel_vec<T>(gamma, "gamma", d.C);
          const T* b = channel_vec<T>(beta, "beta", d.C);
          channel_vec<T>(running_mean, "running_mean", d.C);
          channel_vec<T>(running_var, "running_var", d.C);
          if (training) {
            require_writeable(running_mean, "running_mean");
            require_writeable(running_var, "running_var");
          }
          // Only written in training (checked writeable above).
          T* rm = const_cast<T*>(static_cast<const T*>(running_mean.data()));
          T* rv = const_cast<T*>(static_cast<const T*>(running_var.data()));
          if (!training) {
            for (int64_t c = 0; c < d.C; ++c)
              if (!(rv[c] >= 0)) throw py::value_error("running_var must be >= 0");
          }
          py::array_t<T> y = new_array_like<T>(x);
          py::array_t<T> mean = new_array<T>({d.C}, "mean"), invstd = new_array<T>({d.C}, "invstd");
          T* yp = y.mutable_data();
          T* mp = mean.mutable_data();
          T* ip = invstd.mutable_data();
          {
            py::gil_scoped_release release;
            if (training) {
              batchnorm_forward_train<T>(yp, mp, ip, rm, rv, xp, g, b, d.N, d.C, d.S, eps, momentum);
            } else {
              batchnorm_forward_eval<T>(yp, xp, g, b, rm, rv, d.N, d.C, d.S, eps);
              for (int64_t c = 0; c < d.C; ++c) {
                mp[c] = rm[c];
                ip[c] = static_cast<T>(1.0 / std::sqrt(static_cast<double>(rv[c]) + eps));
              }
            }
          }
          return py::make_tuple(y, mean, invstd);
        });
      },
      py::arg("x"), py::arg("gamma"), py::arg("beta"), py::arg("running_mean"),
      py::arg("running_var"), py::arg("training"), py::arg("eps") = 1e-5, py::arg("momentum") = 0.1,
      "(y, mean, invstd). Training normalises with the batch statistics and updates running_mean/"
      "running_var in place (running_var with the unbiased variance); evaluation uses the running "
      "statistics. Pass mean and invstd on to batchnorm_backward.");

  m.def(
      "batchnorm_backward",
      [](const py::object& dy_obj, const py::object& x_obj, const py::object& mean_obj,
         const py::object& invstd_obj, const py::object& gamma_obj, const py::object& training_obj) -> py::tuple {
        const py::array dy = as_array(dy_obj, "dy"), x = as_array(x_obj, "x"),
                        mean = as_array(mean_obj, "mean"), invstd = as_array(invstd_obj, "invstd"),
                        gamma = as_array(gamma_obj, "gamma");
        const bool training = as_bool(training_obj, "training");
        return dispatch_float(x, "x", [&](auto tag) -> py::tuple {
          using T = decltype(tag);
          const Dims d = bn_dims(x);
          require_dtype<T>(dy, "dy", "x");
          require_same_shape(dy, "dy", x, "x");
          const T* dyp = in_ptr<T>(dy, "dy");
          const T* xp = in_ptr<T>(x, "x");
          const T* mp = channel_vec<T>(mean, "mean", d.C);
          const T* ip = channel_vec<T>(invstd, "invstd", d.C);
          const T* g = channel_vec<T>(gamma, "gamma", d.C);
          py::array_t<T> dx = new_array_like<T>(x);
          py::array_t<T> dgamma = new_array<T>({d.C}, "dgamma"), dbeta = new_array<T>({d.C}, "dbeta");
          T* dxp = dx.mutable_data();
          T* dgp = dgamma.mutable_data();
          T* dbp = dbeta.mutable_data();
          {
            py::gil_scoped_release release;
            batchnorm_backward<T>(dxp, dgp, dbp, dyp, xp, mp, ip, g, d.N, d.C, d.S, training);
          }
          return py::make_tuple(dx, dgamma, dbeta);
        });
      },
      py::arg("dy"), py::arg("x"), py::arg("mean"), py::arg("invstd"), py::arg("gamma"),
      py::arg("training"), "(dx, dgamma, dbeta) given the mean/invstd batchnorm_forward returned.");
}

}  // namespace bind
}  // namespace natverk
