// bind_optimizers.cpp -- in-place optimizer updates.
#include "bindings/checks.h"
#include "bindings/hyper_checks.h"
#include "optimizers/optimizers.h"

namespace natverk {
namespace bind {

namespace {

// w, the state arrays and g: one dtype, one shape, contiguous; w and state writeable.
template <typename T>
void check_state(py::array& w, const py::array& g, std::initializer_list<std::pair<py::array*, const char*>> state) {
  require_dtype<T>(g, "g", "w");
  require_same_shape(w, "w", g, "g");
  inout_ptr<T>(w, "w");
  in_ptr<T>(g, "g");
  for (auto& s : state) {
    require_dtype<T>(*s.first, s.second, "w");
    require_same_shape(w, "w", *s.first, s.second);
    inout_ptr<T>(*s.first, s.second);
  }
}

}  // namespace

void bind_optimizers(py::module_& m) {
  m.def(
      "sgd_update",
      [](const py::object& w_obj, const py::object& g_obj, const py::object& lr_obj, const py::object& wd_obj) {
        py::array w = as_array(w_obj, "w");
        const py::array g = as_array(g_obj, "g");
        const double lr = as_float(lr_obj, "learning_rate"), wd = as_float(wd_obj, "weight_decay");
        check_lr(lr, wd);
        dispatch_float(w, "w", [&](auto tag) {
          using T = decltype(tag);
          check_in_dtype<T>({{lr, "learning_rate"}, {wd, "weight_decay"}});
          check_state<T>(w, g, {});
          T* wp = static_cast<T*>(w.mutable_data());
          const T* gp = static_cast<const T*>(g.data());
          const int64_t n = w.size();
          py::gil_scoped_release release;
          sgd_update<T>(wp, gp, n, lr, wd);
        });
      },
      py::arg("w"), py::arg("g"), py::arg("learning_rate"), py::arg("weight_decay") = 0.0,
      "In place: w -= lr * (g + weight_decay * w).");

  m.def(
      "momentum_update",
      [](const py::object& w_obj, const py::object& v_obj, const py::object& g_obj, const py::object& lr_obj,
         const py::object& beta_obj, const py::object& wd_obj) {
        py::array w = as_array(w_obj, "w"), v = as_array(v_obj, "v");
        const py::array g = as_array(g_obj, "g");
        const double lr = as_float(lr_obj, "learning_rate"), beta = as_float(beta_obj, "beta"),
                     wd = as_float(wd_obj, "weight_decay");
        check_lr(lr, wd);
        require_in(beta, "beta", 0.0, 1.0, true);
        dispatch_float(w, "w", [&](auto tag) {
          using T = decltype(tag);
          check_in_dtype<T>({{lr, "learning_rate"}, {beta, "beta"}, {wd, "weight_decay"}});
          check_state<T>(w, g, {{&v, "v"}});
          T* wp = static_cast<T*>(w.mutable_data());
          T* vp = static_cast<T*>(v.mutable_data());
          const T* gp = static_cast<const T*>(g.data());
          const int64_t n = w.size();
          py::gil_scoped_release release;
          momentum_update<T>(wp, vp, gp, n, lr, beta, wd);
        });
      },
      py::arg("w"), py::arg("v"), py::arg("g"), py::arg("learning_rate"), py::arg("beta"),
      py::arg("weight_decay") = 0.0, "In place: v = beta v + (1 - beta) g; w -= lr v.");

  m.def(
      "rmsprop_update",
      [](const py::object& w_obj, const py::object& s_obj, const py::object& g_obj, const py::object& lr_obj,
         const py::object& beta2_obj, const py::object& eps_obj, const py::object& wd_obj) {
        py::array w = as_array(w_obj, "w"), s = as_array(s_obj, "s");
        const py::array g = as_array(g_obj, "g");
        const double lr = as_float(lr_obj, "learning_rate"), beta2 = as_float(beta2_obj, "beta2"),
                     eps = as_float(eps_obj, "eps"), wd = as_float(wd_obj, "weight_decay");
        check_lr(lr, wd);
        require_in(beta2, "beta2", 0.0, 1.0, true);
        check_eps(eps);
        dispatch_float(w, "w", [&](auto tag) {
          using T = decltype(tag);
          check_in_dtype<T>({{lr, "learning_rate"}, {beta2, "beta2"}, {eps, "eps"}, {wd, "weight_decay"}});
          require_eps_in_dtype<T>(eps);
          check_state<T>(w, g, {{&s, "s"}});
          T* wp = static_cast<T*>(w.mutable_data());
          T* sp = static_cast<T*>(s.mutable_data());
          const T* gp = static_cast<const T*>(g.data());
          const int64_t n = w.size();
          py::gil_scoped_release release;
          rmsprop_update<T>(wp, sp, gp, n, lr, beta2, eps, wd);
        });
      },
      py::arg("w"), py::arg("s"), py::arg("g"), py::arg("learning_rate"), py::arg("beta2"),
      py::arg("eps") = 1e-8, py::arg("weight_decay") = 0.0,
      "In place: s = beta2 s + (1 - beta2) g^2; w -= lr g / (sqrt(s) + eps)  (thesis eq. 33-36).");

  m.def(
      "adam_update",
      [](const py::object& w_obj, const py::object& v_obj, const py::object& s_obj, const py::object& g_obj,
         const py::object& lr_obj, const py::object& beta1_obj, const py::object& beta2_obj, const py::object& t_obj,
         const py::object& eps_obj, const py::object& wd_obj) {
        py::array w = as_array(w_obj, "w"), v = as_array(v_obj, "v"), s = as_array(s_obj, "s");
        const py::array g = as_array(g_obj, "g");
        const double lr = as_float(lr_obj, "learning_rate"), beta1 = as_float(beta1_obj, "beta1"),
                     beta2 = as_float(beta2_obj, "beta2"), eps = as_float(eps_obj, "eps"),
                     wd = as_float(wd_obj, "weight_decay");
        const int64_t t = as_int64(t_obj, "t");
        check_lr(lr, wd);
        require_in(beta1, "beta1", 0.0, 1.0, true);
        require_in(beta2, "beta2", 0.0, 1.0, true);
        check_eps(eps);
        if (t < 1) throw py::value_error("t (the Adam step count) must be >= 1, got " + std::to_string(t));
        dispatch_float(w, "w", [&](auto tag) {
          using T = decltype(tag);
          check_in_dtype<T>({{lr, "learning_rate"}, {beta1, "beta1"}, {beta2, "beta2"}, {eps, "eps"},
                             {wd, "weight_decay"}});
          require_eps_in_dtype<T>(eps);
          check_state<T>(w, g, {{&v, "v"}, {&s, "s"}});
          T* wp = static_cast<T*>(w.mutable_data());
          T* vp = static_cast<T*>(v.mutable_data());
          T* sp = static_cast<T*>(s.mutable_data());
          const T* gp = static_cast<const T*>(g.data());
          const int64_t n = w.size();
          py::gil_scoped_release release;
          adam_update<T>(wp, vp, sp, gp, n, lr, beta1, beta2, t, eps, wd);
        });
      },
      py::arg("w"), py::arg("v"), py::arg("s"), py::arg("g"), py::arg("learning_rate"),
      py::arg("beta1"), py::arg("beta2"), py::arg("t"), py::arg("eps") = 1e-8,
      py::arg("weight_decay") = 0.0,
      "In place Adam step t >= 1 with bias correction: v, s moments; "
      "w -= lr (v / (1 - beta1^t)) / (sqrt(s / (1 - beta2^t)) + eps).");
}

}  // namespace bind
}  // namespace natverk
