// bind_optimizers.cpp -- natverk._core.cuda.{sgd,momentum,rmsprop,adam}_update, the twins of
// the _core updates (cpp/bindings/bind_optimizers.cpp): same arguments, defaults and
// validation, in the same order; w and the state Tensors are updated in place; None returned.
#include "bindings/cuda/tensor.h"
#include "bindings/hyper_checks.h"
#include "optimizers/optimizers.h"

namespace natverk {
namespace bind {
namespace cudab {

namespace {

// The scalar rules are bindings/hyper_checks.h, shared with the CPU binding.

// g and the state Tensors: w's dtype and shape.
template <typename T>
void check_state(const Tensor& w, const Tensor& g, std::initializer_list<std::pair<const Tensor*, const char*>> state) {
  require_tensor_dtype<T>(g, "g", "w");
  require_same_tensor_shape(w, "w", g, "g");
  for (const auto& s : state) {
    require_tensor_dtype<T>(*s.first, s.second, "w");
    require_same_tensor_shape(w, "w", *s.first, s.second);
  }
}

}  // namespace

void bind_optimizers(py::module_& m) {
  m.def(
      "sgd_update",
      [](const py::object& w_obj, const py::object& g_obj, const py::object& lr_obj, const py::object& wd_obj) {
        const Tensor& w = as_tensor(w_obj, "w");
        const Tensor& g = as_tensor(g_obj, "g");
        const double lr = as_float(lr_obj, "learning_rate"), wd = as_float(wd_obj, "weight_decay");
        check_lr(lr, wd);
        dispatch_float_tensor(w, "w", [&](auto tag) {
          using T = decltype(tag);
          check_in_dtype<T>({{lr, "learning_rate"}, {wd, "weight_decay"}});
          check_state<T>(w, g, {});
          natverk::cuda::sgd_update<T>(w.ptr<T>(), g.ptr<T>(), w.numel, lr, wd);
        });
      },
      py::arg("w"), py::arg("g"), py::arg("learning_rate"), py::arg("weight_decay") = 0.0,
      "In place on the GPU: w -= lr * (g + weight_decay * w).");

  m.def(
      "momentum_update",
      [](const py::object& w_obj, const py::object& v_obj, const py::object& g_obj, const py::object& lr_obj,
         const py::object& beta_obj, const py::object& wd_obj) {
        const Tensor& w = as_tensor(w_obj, "w");
        const Tensor& v = as_tensor(v_obj, "v");
        const Tensor& g = as_tensor(g_obj, "g");
        const double lr = as_float(lr_obj, "learning_rate"), beta = as_float(beta_obj, "beta"),
                     wd = as_float(wd_obj, "weight_decay");
        check_lr(lr, wd);
        require_in(beta, "beta", 0.0, 1.0, true);
        dispatch_float_tensor(w, "w", [&](auto tag) {
          using T = decltype(tag);
          check_in_dtype<T>({{lr, "learning_rate"}, {beta, "beta"}, {wd, "weight_decay"}});
          check_state<T>(w, g, {{&v, "v"}});
          natverk::cuda::momentum_update<T>(w.ptr<T>(), v.ptr<T>(), g.ptr<T>(), w.numel, lr, beta, wd);
        });
      },
      py::arg("w"), py::arg("v"), py::arg("g"), py::arg("learning_rate"), py::arg("beta"),
      py::arg("weight_decay") = 0.0, "In place on the GPU: v = beta v + (1 - beta) g; w -= lr v.");

  m.def(
      "rmsprop_update",
      [](const py::object& w_obj, const py::object& s_obj, const py::object& g_obj, const py::object& lr_obj,
         const py::object& beta2_obj, const py::object& eps_obj, const py::object& wd_obj) {
        const Tensor& w = as_tensor(w_obj, "w");
        const Tensor& s = as_tensor(s_obj, "s");
        const Tensor& g = as_tensor(g_obj, "g");
        const double lr = as_float(lr_obj, "learning_rate"), beta2 = as_float(beta2_obj, "beta2"),
                     eps = as_float(eps_obj, "eps"), wd = as_float(wd_obj, "weight_decay");
        check_lr(lr, wd);
        require_in(beta2, "beta2", 0.0, 1.0, true);
        check_eps(eps);
        dispatch_float_tensor(w, "w", [&](auto tag) {
          using T = decltype(tag);
          check_in_dtype<T>({{lr, "learning_rate"}, {beta2, "beta2"}, {eps, "eps"}, {wd, "weight_decay"}});
          require_eps_in_dtype<T>(eps);
          check_state<T>(w, g, {{&s, "s"}});
          natverk::cuda::rmsprop_update<T>(w.ptr<T>(), s.ptr<T>(), g.ptr<T>(), w.numel, lr, beta2, eps, wd);
        });
      },
      py::arg("w"), py::arg("s"), py::arg("g"), py::arg("learning_rate"), py::arg("beta2"),
      py::arg("eps") = 1e-8, py::arg("weight_decay") = 0.0,
      "In place on the GPU: s = beta2 s + (1 - beta2) g^2; w -= lr g / (sqrt(s) + eps).");

  m.def(
      "adam_update",
      [](const py::object& w_obj, const py::object& v_obj, const py::object& s_obj, const py::object& g_obj,
         const py::object& lr_obj, const py::object& beta1_obj, const py::object& beta2_obj, const py::object& t_obj,
         const py::object& eps_obj, const py::object& wd_obj) {
        const Tensor& w = as_tensor(w_obj, "w");
        const Tensor& v = as_tensor(v_obj, "v");
        const Tensor& s = as_tensor(s_obj, "s");
        const Tensor& g = as_tensor(g_obj, "g");
        const double lr = as_float(lr_obj, "learning_rate"), beta1 = as_float(beta1_obj, "beta1"),
                     beta2 = as_float(beta2_obj, "beta2"), eps = as_float(eps_obj, "eps"),
                     wd = as_float(wd_obj, "weight_decay");
        const int64_t t = as_int64(t_obj, "t");
        check_lr(lr, wd);
        require_in(beta1, "beta1", 0.0, 1.0, true);
        require_in(beta2, "beta2", 0.0, 1.0, true);
        check_eps(eps);
        if (t < 1) throw py::value_error("t (the Adam step count) must be >= 1, got " + std::to_string(t));
        dispatch_float_tensor(w, "w", [&](auto tag) {
          using T = decltype(tag);
          check_in_dtype<T>({{lr, "learning_rate"}, {beta1, "beta1"}, {beta2, "beta2"}, {eps, "eps"},
                             {wd, "weight_decay"}});
          require_eps_in_dtype<T>(eps);
          check_state<T>(w, g, {{&v, "v"}, {&s, "s"}});
          natverk::cuda::adam_update<T>(w.ptr<T>(), v.ptr<T>(), s.ptr<T>(), g.ptr<T>(), w.numel, lr, beta1, beta2,
                                        t, eps, wd);
        });
      },
      py::arg("w"), py::arg("v"), py::arg("s"), py::arg("g"), py::arg("learning_rate"),
      py::arg("beta1"), py::arg("beta2"), py::arg("t"), py::arg("eps") = 1e-8,
      py::arg("weight_decay") = 0.0,
      "In place Adam step t >= 1 on the GPU, with bias correction: v, s moments; "
      "w -= lr (v / (1 - beta1^t)) / (sqrt(s / (1 - beta2^t)) + eps).");
}

}  // namespace cudab
}  // namespace bind
}  // namespace natverk
