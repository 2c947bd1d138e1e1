// bind_plan.cpp -- natverk._core.Plan, the step plan (cpp/plan/plan.h), and dropout_call_seed.
//
// The Plan keeps a reference to every array it points into (parameters, gradients, optimizer
// state, running statistics, dropout counters), so they stay alive as long as the plan does;
// it never copies them. Every array is checked here, once, when it is handed over: the plan's
// dtype, C-contiguous, writeable where the plan writes, the shape its op needs. The running
// methods (step, gradients, forward_loss, backward_update, forward, epoch) check their batch the
// same way and then run with the GIL released.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "bindings/checks.h"
#include "bindings/hyper_checks.h"
#include "dropout/dropout.h"
#include "losses/losses.h"
#include "plan/plan.h"

namespace natverk {
namespace bind {

namespace {

py::tuple dims_tuple(const Dims& d) {
  py::tuple t(d.size());
  for (size_t i = 0; i < d.size(); ++i) t[i] = py::int_(d[i]);
  return t;
}

LossKind parse_loss(const std::string& name) {
  if (name == "cross_entropy") return LossKind::cross_entropy;
  if (name == "mse") return LossKind::mse;
  if (name == "bce_with_logits") return LossKind::bce_with_logits;
  throw py::value_error("loss must be 'cross_entropy', 'mse' or 'bce_with_logits', got '" + name + "'");
}

const char* loss_name(LossKind k) {
  switch (k) {
    case LossKind::cross_entropy: return "cross_entropy";
    case LossKind::mse: return "mse";
    default: return "bce_with_logits";
  }
}

// The Python object: a Plan<float> or a Plan<double>, and the arrays it points into.
struct PyPlan {
  bool f64 = false;
  std::unique_ptr<Plan<float>> p32;
  std::unique_ptr<Plan<double>> p64;
  std::vector<py::object> keep;
  std::vector<std::string> param_labels;

  template <typename F>
  decltype(auto) visit(F&& f) {
    if (f64) return f(*p64);
    return f(*p32);
  }

  // A parameter-like array: the plan's dtype, C-contiguous and writeable; kept alive.
  template <typename T>
  T* writable(const py::handle& obj, const char* name) {
    py::array a = as_array(obj, name);
    require_dtype<T>(a, name, "the plan");
    T* p = inout_ptr<T>(a, name);
    keep.push_back(a);
    return p;
  }
  template <typename T>
  T* optional_writable(const py::handle& obj, const char* name) {
    return obj.is_none() ? nullptr : writable<T>(obj, name);
  }
};

// Plan.maxpool2d / Plan.avgpool2d: the same arguments, the pooling kind aside.
auto pool2d_op(bool max) {
  return [max](PyPlan& p, const py::object& k, const py::object& s, const py::object& pad) {
    const auto kk = as_int64_pair(k, "kernel_size"), ss = as_int64_pair(s, "stride"), pp = as_int64_pair(pad, "padding");
    p.visit([&](auto& pl) {
      if (max) pl.maxpool2d(kk.first, kk.second, ss.first, ss.second, pp.first, pp.second);
      else pl.avgpool2d(kk.first, kk.second, ss.first, ss.second, pp.first, pp.second);
    });
  };
}

void require_shape(const py::handle& obj, const char* name, std::initializer_list<py::ssize_t> shape) {
  const py::array a = py::reinterpret_borrow<py::array>(obj);
  bool same = a.ndim() == static_cast<py::ssize_t>(shape.size());
  size_t i = 0;
  for (py::ssize_t d : shape) same = same && a.shape(static_cast<py::ssize_t>(i++)) == d;
  if (!same) {
    std::string want = "(";
    i = 0;
    for (py::ssize_t d : shape) want += (i++ ? ", " : "") + std::to_string(d);
    throw py::value_error(std::string(name) + " must have shape " + want + (shape.size() == 1 ? ",)" : ")") +
                          ", got " + shape_str(a));
  }
}

// A bias (n,) or the MATLAB network's (1, n).
void require_bias_shape(const py::handle& obj, const char* name, py::ssize_t n) {
  const py::array a = py::reinterpret_borrow<py::array>(obj);
  const bool ok = (a.ndim() == 1 && a.shape(0) == n) || (a.ndim() == 2 && a.shape(0) == 1 && a.shape(1) == n);
  if (!ok)
    throw py::value_error(std::string(name) + " must have shape (" + std::to_string(n) + ",) or (1, " +
                          std::to_string(n) + "), got " + shape_str(a));
}

void require_same_shape_as(const py::handle& a, const char* na, const py::handle& b, const char* nb) {
  require_same_shape(py::reinterpret_borrow<py::array>(a), na, py::reinterpret_borrow<py::array>(b), nb);
}

// A batch X of m examples of the plan's input shape, in its dtype, C-contiguous.
template <typename T>
const T* batch_input(const py::array& X, const Plan<T>& plan, bool check_finite, int64_t* m) {
  require_dtype<T>(X, "X", "the plan");
  const Dims& in = plan.input_dims();
  bool ok = X.ndim() == static_cast<py::ssize_t>(in.size()) + 1;
  for (size_t i = 0; ok && i < in.size(); ++i) ok = X.shape(static_cast<py::ssize_t>(i) + 1) == in[i];
  if (!ok) {
    std::string want = "(m";
    for (int64_t d : in) want += ", " + std::to_string(d);
    throw py::value_error("X must have shape " + want + ") for this plan, got " + shape_str(X));
  }
  require_nonempty(X, "X");
  const T* p = in_ptr<T>(X, "X");
  *m = X.shape(0);
  if (check_finite) {
    const int64_t n = X.size();
    int64_t bad = -1;
    {
      py::gil_scoped_release release;
      bad = first_non_finite(p, n);
    }
    if (bad >= 0)
      throw py::value_error("X contains NaN or Inf (first at row " + std::to_string(bad / (n / *m)) + ")");
  }
  return p;
}

// The targets of m rows, as the plan's loss needs them, with what the accuracy compares against.
// `hold` keeps converted arrays alive for the call.
template <typename T>
PlanTargets<T> batch_targets(const Plan<T>& plan, const py::object& y_obj, const py::object& acc_obj, int64_t m,
                             std::vector<py::object>& hold) {
  PlanTargets<T> t;
  const int64_t K = plan.output_dims()[0];
  const py::array y = as_array(y_obj, "y");
  if (plan.loss_kind() == LossKind::cross_entropy) {
    auto lab = labels(y, "y", m);
    try {
      check_labels(lab.data(), m, K);
    } catch (const std::invalid_argument& e) {
      throw py::value_error(e.what());
    }
    t.labels = lab.data();
    t.acc_labels = t.labels;
    hold.push_back(lab);
  } else {
    require_dtype<T>(y, "y", "the plan");
    const bool ok = (y.ndim() == 2 && y.shape(0) == m && y.shape(1) == K) || (K == 1 && y.ndim() == 1 && y.shape(0) == m);
    if (!ok)
      throw py::value_error("y must have shape (" + std::to_string(m) + ", " + std::to_string(K) + "), got " +
                            shape_str(y));
    const T* v = in_ptr<T>(y, "y");
    for (int64_t i = 0; i < m * K; ++i) {
      if (!std::isfinite(v[i])) throw py::value_error("y contains NaN or Inf");
      if (plan.loss_kind() == LossKind::bce_with_logits && !(v[i] >= T(0) && v[i] <= T(1)))
        throw py::value_error("y must lie in [0, 1] for the binary cross-entropy");
    }
    t.values = v;
    hold.push_back(y);
  }
  if (const auto acc_opt = as_optional_array(acc_obj, "accuracy_targets")) {
    const py::array& acc = *acc_opt;
    if (plan.loss_kind() == LossKind::bce_with_logits) {
      auto mask = py::array_t<uint8_t, py::array::c_style | py::array::forcecast>::ensure(acc);
      if (!mask || mask.size() != m * K)
        throw py::value_error("accuracy_targets must hold " + std::to_string(m) + " x " + std::to_string(K) +
                              " flags (target >= 0.5), got shape " + shape_str(acc));
      t.acc_mask = mask.data();
      hold.push_back(mask);
    } else {
      auto lab = labels(acc, "accuracy_targets", m);
      t.acc_labels = lab.data();
      hold.push_back(lab);
    }
  } else if (plan.loss_kind() != LossKind::cross_entropy) {
    t.acc_labels = nullptr;
  }
  return t;
}

OptimizerHyper hyper(const py::object& lr, const py::object& beta, const py::object& beta1, const py::object& beta2,
                     const py::object& eps, const py::object& t_obj, OptimizerKind kind) {
  OptimizerHyper h{as_float(lr, "learning_rate"), as_float(beta, "beta"), as_float(beta1, "beta1"),
                   as_float(beta2, "beta2"), as_float(eps, "eps"), as_int64(t_obj, "t")};
  require_finite(h.lr, "learning_rate");
  if (h.lr < 0) throw py::value_error("learning_rate must be >= 0");
  require_in(h.beta, "beta", 0.0, 1.0, true);
  require_in(h.beta1, "beta1", 0.0, 1.0, true);
  require_in(h.beta2, "beta2", 0.0, 1.0, true);
  check_eps(h.eps);
  if (kind == OptimizerKind::adam && h.t < 1)
    throw py::value_error("t (the Adam step count) must be >= 1, got " + std::to_string(h.t));
  return h;
}

template <typename T>
void hyper_in_dtype(const OptimizerHyper& h, double wd, OptimizerKind kind) {
  for (const auto& a : {std::make_pair(h.lr, "learning_rate"), std::make_pair(h.beta, "beta"),
                        std::make_pair(h.beta1, "beta1"), std::make_pair(h.beta2, "beta2"),
                        std::make_pair(h.eps, "eps"), std::make_pair(wd, "weight_decay")})
    require_float_arg<T>(a.first, a.second);
  if (optimizer_uses_s(kind)) require_eps_in_dtype<T>(h.eps);
}

double weight_decay_arg(const py::object& obj) {
  const double wd = as_float(obj, "weight_decay");
  require_finite(wd, "weight_decay");
  if (wd < 0) throw py::value_error("weight_decay must be >= 0, got " + std::to_string(wd));
  return wd;
}

double max_loss_arg(const py::object& obj) {
  if (obj.is_none()) return std::numeric_limits<double>::infinity();
  const double v = as_float(obj, "max_loss");
  if (!(v > 0)) throw py::value_error("max_loss must be a positive number or None");
  return v;
}

template <typename V>
py::array_t<V> to_array(const std::vector<V>& v) {
  py::array_t<V> a(static_cast<py::ssize_t>(v.size()));
  std::copy(v.begin(), v.end(), a.mutable_data());
  return a;
}

py::object correct_or_none(int64_t c) { return c < 0 ? py::object(py::none()) : py::object(py::int_(c)); }

// What step, epoch and backward_update take: the optimizer's hyper-parameters and the weight
// decay, checked, and finite in the plan's dtype.
struct RunHyper {
  OptimizerHyper h;
  double wd;
};

template <typename T>
RunHyper run_hyper(const Plan<T>& pl, const py::object& lr, const py::object& beta, const py::object& beta1,
                   const py::object& beta2, const py::object& eps, const py::object& t, const py::object& wd_obj) {
  const RunHyper r{hyper(lr, beta, beta1, beta2, eps, t, pl.optimizer_kind()), weight_decay_arg(wd_obj)};
  hyper_in_dtype<T>(r.h, r.wd, pl.optimizer_kind());
  return r;
}

// A batch (X, y) as the running methods take it: X checked against the plan's input (and for
// NaN/Inf when check_finite), the targets against its loss; `hold` keeps converted arrays alive
// for the call.
template <typename T>
struct Batch {
  const T* x = nullptr;
  int64_t rows = 0;
  PlanTargets<T> y;
  std::vector<py::object> hold;
};

template <typename T>
Batch<T> run_batch(const Plan<T>& pl, const py::array& X, const py::object& y_obj, const py::object& acc_obj,
                   bool check_finite) {
  Batch<T> b;
  b.x = batch_input<T>(X, pl, check_finite, &b.rows);
  b.y = batch_targets<T>(pl, y_obj, acc_obj, b.rows, b.hold);
  return b;
}

// Row indices into X (epoch's order, forward_loss's rows): a 1-D integer array, as int64.
py::array_t<int64_t, py::array::c_style> row_indices(const py::array& a, const char* name) {
  if (a.dtype().kind() != 'i' && a.dtype().kind() != 'u')
    throw py::type_error(std::string(name) + " must be an integer array of row indices, got dtype " + dtype_str(a));
  require_ndim(a, name, 1);
  auto idx = py::array_t<int64_t, py::array::c_style | py::array::forcecast>::ensure(a);
  if (!idx)  // the conversion failed (ensure() swallows NumPy's error: a view too large to copy)
    throw py::value_error(std::string(name) + " cannot be converted to a contiguous int64 array, shape " +
                          shape_str(a));
  return idx;
}

}  // namespace

void bind_plan(py::module_& m) {
  m.def(
      "dropout_call_seed",
      [](const py::object& seed, const py::object& call) {
        return dropout_call_seed(as_uint64(seed, "seed"), as_uint64(call, "call"));
      },
      py::arg("seed"), py::arg("call"),
      "The Dropout layer's kernel seed of training call `call`: numpy.random.SeedSequence([seed, call])"
      ".generate_state(2, uint32) as one uint64 (state[0] << 32 | state[1]), computed in C++.");

  py::class_<PyPlan>(m, "Plan",
                     "A network's whole training step (forward, loss, backward, one optimizer pass) as one C++ op "
                     "list (cpp/plan/plan.h). Built op by op in layer order; parameters, gradients, optimizer "
                     "state, running statistics and dropout counters are the caller's arrays, updated in place.")
      .def(py::init([](const py::object& dtype_obj, const py::object& shape_obj) {
             auto p = std::make_unique<PyPlan>();
             const std::string dtype = py::str(py::dtype::from_args(dtype_obj)).cast<std::string>();
             if (dtype != "float32" && dtype != "float64")
               throw py::type_error("dtype must be float32 or float64, got " + dtype);
             if (!py::isinstance<py::sequence>(shape_obj) || py::isinstance<py::str>(shape_obj))
               throw py::type_error("input_shape must be a sequence of ints (the per-example shape)");
             Dims in;
             for (const py::handle& d : py::reinterpret_borrow<py::sequence>(shape_obj))
               in.push_back(as_int64(d, "input_shape"));
             p->f64 = dtype == "float64";
             if (p->f64) p->p64 = std::make_unique<Plan<double>>(in);
             else p->p32 = std::make_unique<Plan<float>>(in);
             return p;
           }),
           py::arg("dtype"), py::arg("input_shape"))
      .def_property_readonly("dtype", [](PyPlan& p) { return py::dtype(p.f64 ? "float64" : "float32"); })
      .def_property_readonly("input_shape",
                             [](PyPlan& p) { return p.visit([](auto& pl) { return dims_tuple(pl.input_dims()); }); })
      .def_property_readonly(
          "output_shape", [](PyPlan& p) { return p.visit([](auto& pl) { return dims_tuple(pl.output_dims()); }); })
      .def_property_readonly(
          "current_shape", [](PyPlan& p) { return p.visit([](auto& pl) { return dims_tuple(pl.current_dims()); }); },
          "While building: the per-example shape the next op receives.")
      .def_property_readonly("loss", [](PyPlan& p) { return p.visit([](auto& pl) { return loss_name(pl.loss_kind()); }); })
      .def_property(
          "fuse_updates", [](PyPlan& p) { return p.visit([](auto& pl) { return pl.fuse_updates(); }); },
          [](PyPlan& p, bool on) { p.visit([on](auto& pl) { pl.set_fuse_updates(on); }); },
          "Whether epoch() updates the dense weights of at least fuse_min_bytes inside their dW GEMM on every "
          "batch but the last (default True). Either way gives the same weights bit for bit; False writes every "
          "dW and updates in a pass after backward, and leaves no stale_gradients (for comparing the two).")
      .def_property(
          "row_split", [](PyPlan& p) { return p.visit([](auto& pl) { return pl.row_split(); }); },
          [](PyPlan& p, bool on) { p.visit([on](auto& pl) { pl.set_row_split(on); }); },
          "Whether a plan of dense layers and activations alone splits each batch's rows between the threads for "
          "its whole forward and input-gradient passes (default True; see plan.h). Either way gives the same bits; "
          "False runs op by op (for comparing the two).")
      .def(
          "_uses_row_split", [](PyPlan& p, int64_t rows) { return p.visit([rows](auto& pl) { return pl.use_row_split(rows); }); },
          py::arg("rows"),
          "Whether a batch of `rows` rows runs with the row split at the current thread count (known after the first "
          "run, which settles the plan's fusions).")
      .def_property(
          "fuse_min_bytes", [](PyPlan& p) { return p.visit([](auto& pl) { return pl.fuse_min_bytes(); }); },
          [](PyPlan& p, int64_t bytes) {
            if (bytes < 0) throw py::value_error("fuse_min_bytes must be >= 0, got " + std::to_string(bytes));
            p.visit([bytes](auto& pl) { pl.set_fuse_min_bytes(bytes); });
          },
          "The smallest dense weight, in bytes, whose update epoch() fuses (default 256 KiB: a weight that stays in "
          "L2 updates as fast apart; see plan.h).")
      .def_property_readonly("num_parameters",
                             [](PyPlan& p) { return p.visit([](auto& pl) { return pl.parameters().size(); }); })
      .def("__repr__", [](PyPlan& p) {
        return p.visit([&](auto& pl) {
          std::string s = pl.describe(), out = "Plan(" + std::string(p.f64 ? "float64" : "float32") + "\n";
          for (size_t i = 0, j = 0; i <= s.size(); ++i)
            if (i == s.size() || s[i] == '\n') {
              out += "  " + s.substr(j, i - j) + "\n";
              j = i + 1;
            }
          return out + ")";
        });
      })
      // ---- building
      .def(
          "dense",
          [](PyPlan& p, const py::object& W, const py::object& b, const py::object& dW, const py::object& db) {
            p.visit([&](auto& pl) {
              using T = typename std::decay_t<decltype(pl)>::value_type;
              T* w = p.writable<T>(W, "W");
              require_ndim(py::reinterpret_borrow<py::array>(W), "W", 2);
              const py::ssize_t n_in = py::reinterpret_borrow<py::array>(W).shape(0),
                                n_out = py::reinterpret_borrow<py::array>(W).shape(1);
              T* dw = p.writable<T>(dW, "dW");
              require_same_shape_as(dW, "dW", W, "W");
              if (b.is_none() != db.is_none()) throw py::value_error("b and db must both be given or both be None");
              T* bp = p.optional_writable<T>(b, "b");
              T* dbp = p.optional_writable<T>(db, "db");
              if (bp) {
                require_bias_shape(b, "b", n_out);
                require_same_shape_as(db, "db", b, "b");
              }
              pl.dense(w, bp, dw, dbp, n_in, n_out);
            });
          },
          py::arg("W"), py::arg("b"), py::arg("dW"), py::arg("db"),
          "z = x W + b for W (n_in, n_out), b (n_out,) or (1, n_out) or None; dW, db their gradients.")
      .def(
          "activation",
          [](PyPlan& p, const py::object& kind) {
            Activation act;
            try {
              act = parse_activation(as_str(kind, "kind"));
            } catch (const std::invalid_argument& e) {
              throw py::value_error(e.what());
            }
            p.visit([&](auto& pl) { pl.activation(act); });
          },
          py::arg("kind"), "relu, sigmoid, tanh or linear, elementwise.")
      .def(
          "dropout",
          [](PyPlan& p, const py::object& p_obj, const py::object& seed, const py::object& counter) {
            const double prob = require_in(as_float(p_obj, "p"), "p", 0.0, 1.0, true);
            const uint64_t s = as_uint64(seed, "seed");
            py::array c = as_array(counter, "counter");
            if (!same_dtype(c.dtype(), py::dtype::of<int64_t>()) || c.size() != 1)
              throw py::type_error("counter must be the layer's int64 call counter (one element), got " + dtype_str(c) +
                                   " of shape " + shape_str(c));
            int64_t* cp = inout_ptr<int64_t>(c, "counter");
            p.keep.push_back(c);
            p.visit([&](auto& pl) { pl.dropout(prob, s, cp); });
          },
          py::arg("p"), py::arg("seed"), py::arg("counter"),
          "Inverted dropout with the Dropout layer's masks: training call `counter` draws with "
          "dropout_call_seed(seed, counter) and advances counter (a 0-d int64 array) in place.")
      .def("flatten", [](PyPlan& p) { p.visit([](auto& pl) { pl.flatten(); }); })
      .def(
          "conv2d",
          [](PyPlan& p, const py::object& W, const py::object& b, const py::object& dW, const py::object& db,
             const py::object& stride, const py::object& padding, const py::object& dilation, const py::object& groups) {
            const auto st = as_int64_pair(stride, "stride"), pa = as_int64_pair(padding, "padding"),
                       di = as_int64_pair(dilation, "dilation");
            const int64_t g = as_int64(groups, "groups");
            p.visit([&](auto& pl) {
              using T = typename std::decay_t<decltype(pl)>::value_type;
              T* w = p.writable<T>(W, "W");
              const py::array Wa = py::reinterpret_borrow<py::array>(W);
              require_ndim(Wa, "W", 4);
              T* dw = p.writable<T>(dW, "dW");
              require_same_shape_as(dW, "dW", W, "W");
              if (b.is_none() != db.is_none()) throw py::value_error("b and db must both be given or both be None");
              T* bp = p.optional_writable<T>(b, "b");
              T* dbp = p.optional_writable<T>(db, "db");
              if (bp) {
                require_shape(b, "b", {Wa.shape(0)});
                require_shape(db, "db", {Wa.shape(0)});
              }
              pl.conv2d(w, bp, dw, dbp, Wa.shape(0), Wa.shape(1), Wa.shape(2), Wa.shape(3), st.first, st.second,
                        pa.first, pa.second, di.first, di.second, g);
            });
          },
          py::arg("W"), py::arg("b"), py::arg("dW"), py::arg("db"), py::arg("stride") = py::make_tuple(1, 1),
          py::arg("padding") = py::make_tuple(0, 0), py::arg("dilation") = py::make_tuple(1, 1), py::arg("groups") = 1,
          "2-D convolution, W (K, C/groups, kH, kW), b (K,) or None.")
      .def("maxpool2d", pool2d_op(true), py::arg("kernel_size"), py::arg("stride"),
           py::arg("padding") = py::make_tuple(0, 0))
      .def("avgpool2d", pool2d_op(false), py::arg("kernel_size"), py::arg("stride"),
           py::arg("padding") = py::make_tuple(0, 0))
      .def("global_avgpool2d", [](PyPlan& p) { p.visit([](auto& pl) { pl.global_avgpool2d(); }); })
      .def(
          "batchnorm",
          [](PyPlan& p, const py::object& gamma, const py::object& beta, const py::object& dgamma,
             const py::object& dbeta, const py::object& running_mean, const py::object& running_var,
             const py::object& eps, const py::object& momentum) {
            const double e = as_float(eps, "eps"), mo = as_float(momentum, "momentum");
            check_bn_hyper(e, mo);
            p.visit([&](auto& pl) {
              using T = typename std::decay_t<decltype(pl)>::value_type;
              require_float_arg<T>(e, "eps");
              T* g = p.writable<T>(gamma, "gamma");
              require_ndim(py::reinterpret_borrow<py::array>(gamma), "gamma", 1);
              const py::ssize_t C = py::reinterpret_borrow<py::array>(gamma).shape(0);
              T* bt = p.writable<T>(beta, "beta");
              T* dg = p.writable<T>(dgamma, "dgamma");
              T* db = p.writable<T>(dbeta, "dbeta");
              T* rm = p.writable<T>(running_mean, "running_mean");
              T* rv = p.writable<T>(running_var, "running_var");
              for (const auto& a : {std::make_pair(&beta, "beta"), std::make_pair(&dgamma, "dgamma"),
                                    std::make_pair(&dbeta, "dbeta"), std::make_pair(&running_mean, "running_mean"),
                                    std::make_pair(&running_var, "running_var")})
                require_shape(*a.first, a.second, {C});
              pl.batchnorm(g, bt, dg, db, rm, rv, C, e, mo);
            });
          },
          py::arg("gamma"), py::arg("beta"), py::arg("dgamma"), py::arg("dbeta"), py::arg("running_mean"),
          py::arg("running_var"), py::arg("eps") = 1e-5, py::arg("momentum") = 0.1,
          "Batch normalisation over (C,) or (C, H, W) inputs; running statistics updated in place in training.")
      .def("begin_residual", [](PyPlan& p) { p.visit([](auto& pl) { pl.begin_residual(); }); },
           "The ops until end_residual() are the branch f of y = x + f(x).")
      .def("end_residual", [](PyPlan& p) { p.visit([](auto& pl) { pl.end_residual(); }); })
      .def(
          "set_loss",
          [](PyPlan& p, const py::object& kind, const py::object& class_weights) {
            const LossKind k = parse_loss(as_str(kind, "kind"));
            p.visit([&](auto& pl) {
              using T = typename std::decay_t<decltype(pl)>::value_type;
              const T* w = nullptr;
              if (!class_weights.is_none()) {
                const py::array cw = as_array(class_weights, "class_weights");
                require_dtype<T>(cw, "class_weights", "the plan");
                if (pl.output_dims().size() == 1) require_shape(cw, "class_weights", {pl.output_dims()[0]});
                w = in_ptr<T>(cw, "class_weights");
                for (py::ssize_t j = 0; j < cw.size(); ++j)
                  if (!(w[j] >= T(0)) || !std::isfinite(static_cast<double>(w[j])))
                    throw py::value_error("class_weights must be finite and non-negative");
              }
              pl.set_loss(k, w);  // copies the weights
            });
          },
          py::arg("kind"), py::arg("class_weights") = py::none(),
          "'cross_entropy' (integer labels; optional class weights (K,)), 'mse' or 'bce_with_logits'.")
      .def(
          "set_optimizer",
          [](PyPlan& p, const py::object& kind, const py::object& v_obj, const py::object& s_obj,
             const py::object& decay_obj, const py::object& l2_obj) {
            const bool l2_in_backward = as_bool(l2_obj, "l2_in_backward");
            OptimizerKind k;
            try {
              k = parse_optimizer_kind(as_str(kind, "kind"));
            } catch (const std::invalid_argument& e) {
              throw py::value_error(std::string("kind: ") + e.what());  // the argument's name first
            }
            p.visit([&](auto& pl) {
              using T = typename std::decay_t<decltype(pl)>::value_type;
              const auto& params = pl.parameters();
              const size_t n = params.size();
              const py::sequence vs = as_array_list(v_obj, "v"), ss = as_array_list(s_obj, "s");
              if (!py::isinstance<py::list>(decay_obj) && !py::isinstance<py::tuple>(decay_obj))
                throw py::type_error("decay must be a list of bools, one per parameter, got " + type_name(decay_obj));
              const py::sequence ds = py::reinterpret_borrow<py::sequence>(decay_obj);
              if (vs.size() != n || ss.size() != n || ds.size() != n)
                throw py::value_error("v, s and decay must hold one entry per parameter (" + std::to_string(n) +
                                      "), got " + std::to_string(vs.size()) + ", " + std::to_string(ss.size()) +
                                      " and " + std::to_string(ds.size()));
              std::vector<T*> v(n, nullptr), s(n, nullptr);
              std::vector<bool> decay(n);
              for (size_t i = 0; i < n; ++i) {
                const std::string vn = "v[" + std::to_string(i) + "]", sn = "s[" + std::to_string(i) + "]";
                // an optimizer's state array (called only for the slots it uses: None elsewhere)
                const auto state = [&](const py::handle& obj, const std::string& name) -> T* {
                  if (obj.is_none())
                    throw py::type_error(name + " must be a NumPy array (optimizer '" + optimizer_kind_name(k) +
                                         "' uses it), got None");
                  T* ptr = p.writable<T>(obj, name.c_str());
                  if (py::reinterpret_borrow<py::array>(obj).size() != params[i].n)
                    throw py::value_error(name + " must have " + std::to_string(params[i].n) + " elements (" +
                                          params[i].name + "), got shape " +
                                          shape_str(py::reinterpret_borrow<py::array>(obj)));
                  return ptr;
                };
                v[i] = optimizer_uses_v(k) ? state(vs[i], vn) : nullptr;
                s[i] = optimizer_uses_s(k) ? state(ss[i], sn) : nullptr;
                decay[i] = as_bool(ds[i], ("decay[" + std::to_string(i) + "]").c_str());
              }
              pl.set_optimizer(k, v, s, decay, l2_in_backward);
            });
          },
          py::arg("kind"), py::arg("v"), py::arg("s"), py::arg("decay"), py::arg("l2_in_backward") = false,
          "The optimizer ('sgd', 'momentum', 'rmsprop', 'adam') and, per parameter in plan order, its state "
          "arrays v and s (None where unused) and whether weight decay applies to it. The decay's gradient "
          "wd * w enters in the update (Optimizer.step's way) or, with l2_in_backward, in the dense layers' "
          "backward pass (the MATLAB back_propagation's way; decayed parameters must be dense weights).")
      // ---- running
      .def(
          "step",
          [](PyPlan& p, const py::object& X_obj, const py::object& y_obj, const py::object& lr,
             const py::object& beta, const py::object& beta1, const py::object& beta2, const py::object& eps,
             const py::object& t, const py::object& wd_obj, const py::object& max_loss_obj,
             const py::object& acc_obj, const py::object& check_obj) -> py::tuple {
            const py::array X = as_array(X_obj, "X");
            return p.visit([&](auto& pl) -> py::tuple {
              using T = typename std::decay_t<decltype(pl)>::value_type;
              const RunHyper hp = run_hyper(pl, lr, beta, beta1, beta2, eps, t, wd_obj);
              const double max_loss = max_loss_arg(max_loss_obj);
              const Batch<T> b = run_batch(pl, X, y_obj, acc_obj, as_bool(check_obj, "check_finite"));
              PlanStepResult r;
              {
                py::gil_scoped_release release;
                r = pl.step(b.x, b.rows, b.y, hp.h, hp.wd, max_loss);
              }
              return py::make_tuple(r.data_loss, r.penalty, correct_or_none(r.correct), r.updated);
            });
          },
          py::arg("X"), py::arg("y"), py::arg("learning_rate"), py::arg("beta") = 0.9, py::arg("beta1") = 0.9,
          py::arg("beta2") = 0.99, py::arg("eps") = 1e-8, py::arg("t") = 1, py::arg("weight_decay") = 0.0,
          py::arg("max_loss") = py::none(), py::arg("accuracy_targets") = py::none(), py::arg("check_finite") = true,
          "One training step on the batch (X, y): forward, loss, backward, one optimizer pass (t: Adam's step "
          "count for this step). Returns (data_loss, penalty, correct, updated): penalty = weight_decay/2 * sum "
          "||w||^2 over the decayed parameters before the update; correct the rows predicted right (None when not "
          "counted); updated False when data_loss + penalty was not finite or exceeded max_loss (nothing changed "
          "but the forward pass's state: dropout counters, running statistics).")
      .def(
          "gradients",
          [](PyPlan& p, const py::object& X_obj, const py::object& y_obj, const py::object& wd_obj,
             const py::object& acc_obj) -> py::tuple {
            const py::array X = as_array(X_obj, "X");
            return p.visit([&](auto& pl) -> py::tuple {
              using T = typename std::decay_t<decltype(pl)>::value_type;
              const double wd = weight_decay_arg(wd_obj);
              require_float_arg<T>(wd, "weight_decay");
              const Batch<T> b = run_batch(pl, X, y_obj, acc_obj, true);
              PlanStepResult r;
              {
                py::gil_scoped_release release;
                r = pl.gradients(b.x, b.rows, b.y, wd);
              }
              return py::make_tuple(r.data_loss, r.penalty, correct_or_none(r.correct));
            });
          },
          py::arg("X"), py::arg("y"), py::arg("weight_decay") = 0.0, py::arg("accuracy_targets") = py::none(),
          "Forward, loss and backward on (X, y) in training mode, without an update: the gradients land in the "
          "gradient arrays. Returns (data_loss, penalty, correct).")
      .def(
          "forward_loss",
          [](PyPlan& p, const py::object& X_obj, const py::object& y_obj, const py::object& rows_obj,
             const py::object& acc_obj, const py::object& check_obj) -> py::tuple {
            const py::array X = as_array(X_obj, "X");
            const auto rows_opt = as_optional_array(rows_obj, "rows");
            py::array_t<int64_t, py::array::c_style> rows;
            if (rows_opt) {
              rows = row_indices(*rows_opt, "rows");
              require_nonempty(rows, "rows");
            }
            return p.visit([&](auto& pl) -> py::tuple {
              using T = typename std::decay_t<decltype(pl)>::value_type;
              const Batch<T> b = run_batch(pl, X, y_obj, acc_obj, as_bool(check_obj, "check_finite"));
              const int64_t* idx = rows_opt ? rows.data() : nullptr;
              const int64_t m = rows_opt ? static_cast<int64_t>(rows.size()) : b.rows;
              PlanStepResult r;
              {
                py::gil_scoped_release release;
                r = pl.forward_loss(b.x, b.rows, b.y, idx, m);
              }
              return py::make_tuple(r.data_loss, r.psi, correct_or_none(r.correct));
            });
          },
          py::arg("X"), py::arg("y"), py::arg("rows") = py::none(), py::arg("accuracy_targets") = py::none(),
          py::arg("check_finite") = true,
          "The first half of step() on the rows `rows` of (X, y) (None: all of them), copied into the plan: "
          "the training forward pass and the data loss, nothing updated. Returns (data_loss, psi, correct), "
          "psi = sum ||w||^2 over the decayed parameters (the penalty is weight_decay/2 * psi); nothing is "
          "checked. backward_update() finishes the step with a weight decay chosen from them (the balance "
          "principle's lambda = phi / (gamma psi/2)); the pair gives step()'s bits.")
      .def(
          "backward_update",
          [](PyPlan& p, const py::object& lr, const py::object& beta, const py::object& beta1,
             const py::object& beta2, const py::object& eps, const py::object& t, const py::object& wd_obj) {
            p.visit([&](auto& pl) {
              const RunHyper hp = run_hyper(pl, lr, beta, beta1, beta2, eps, t, wd_obj);
              py::gil_scoped_release release;
              pl.backward_update(hp.h, hp.wd);
            });
          },
          py::arg("learning_rate"), py::arg("beta") = 0.9, py::arg("beta1") = 0.9, py::arg("beta2") = 0.99,
          py::arg("eps") = 1e-8, py::arg("t") = 1, py::arg("weight_decay") = 0.0,
          "The second half of step(): backward and one optimizer pass for the batch of the last forward_loss() "
          "with weight decay weight_decay (t: Adam's step count). RuntimeError when no forward_loss() is pending "
          "(any other run since discards it).")
      .def(
          "forward",
          [](PyPlan& p, const py::object& X_obj) -> py::array {
            const py::array X = as_array(X_obj, "X");
            return p.visit([&](auto& pl) -> py::array {
              using T = typename std::decay_t<decltype(pl)>::value_type;
              int64_t rows = 0;
              const T* x = batch_input<T>(X, pl, false, &rows);
              std::vector<py::ssize_t> shape{rows};
              for (int64_t d : pl.output_dims()) shape.push_back(d);
              py::array_t<T> out(shape);
              T* o = out.mutable_data();
              {
                py::gil_scoped_release release;
                pl.forward(o, x, rows);
              }
              return out;
            });
          },
          py::arg("X"), "The network's outputs for X in evaluation mode (running statistics, no dropout).")
      .def(
          "epoch",
          [](PyPlan& p, const py::object& X_obj, const py::object& y_obj, const py::object& order_obj,
             const py::object& bs_obj, const py::object& lr, const py::object& beta, const py::object& beta1,
             const py::object& beta2, const py::object& eps, const py::object& t, const py::object& wd_obj,
             const py::object& max_loss_obj, const py::object& acc_obj, const py::object& check_obj) -> py::dict {
            const py::array X = as_array(X_obj, "X");
            const int64_t bs = as_int64(bs_obj, "batch_size");
            if (bs < 1) throw py::value_error("batch_size must be >= 1, got " + std::to_string(bs));
            const auto order = row_indices(as_array(order_obj, "order"), "order");
            return p.visit([&](auto& pl) -> py::dict {
              using T = typename std::decay_t<decltype(pl)>::value_type;
              const RunHyper hp = run_hyper(pl, lr, beta, beta1, beta2, eps, t, wd_obj);
              const double max_loss = max_loss_arg(max_loss_obj);
              const Batch<T> b = run_batch(pl, X, y_obj, acc_obj, as_bool(check_obj, "check_finite"));
              const int64_t* op = order.data();
              const int64_t n_order = order.size();
              // Ctrl-C: the signal handlers run between batches, at most every 50 ms (the GIL is
              // taken only then); an exception they raise ends the epoch and is handed back.
              // Python runs signal handlers in the main thread only: elsewhere, nothing to ask.
              const py::module_ threading = py::module_::import("threading");
              const bool main_thread = threading.attr("current_thread")().is(threading.attr("main_thread")());
              py::object pending = py::none();
              auto last = std::chrono::steady_clock::now();
              std::function<bool()> interrupted;
              if (main_thread) interrupted = [&]() {
                const auto now = std::chrono::steady_clock::now();
                if (now - last < std::chrono::milliseconds(50)) return false;
                last = now;
                py::gil_scoped_acquire gil;
                if (PyErr_CheckSignals() == 0) return false;
                PyObject *type, *value, *tb;
                PyErr_Fetch(&type, &value, &tb);
                PyErr_NormalizeException(&type, &value, &tb);
                if (tb && value) PyException_SetTraceback(value, tb);
                pending = value ? py::reinterpret_steal<py::object>(value) : py::object(py::none());
                Py_XDECREF(type);
                Py_XDECREF(tb);
                return true;
              };
              PlanEpochResult r;
              {
                py::gil_scoped_release release;
                r = pl.epoch(b.x, b.rows, b.y, op, n_order, bs, hp.h, hp.wd, max_loss, interrupted);
              }
              py::dict d;
              d["data_loss"] = to_array(r.data_loss);
              d["penalty"] = to_array(r.penalty);
              d["correct"] = to_array(r.correct);
              d["rows"] = to_array(r.rows);
              d["steps"] = r.steps;
              d["stopped"] = r.stopped < 0 ? py::object(py::none()) : py::object(py::int_(r.stopped));
              d["error"] = r.error.empty() ? py::object(py::none()) : py::object(py::str(r.error));
              d["interrupt"] = r.interrupted ? pending : py::object(py::none());
              d["stale_gradients"] = to_array(r.stale_gradients);
              return d;
            });
          },
          py::arg("X"), py::arg("y"), py::arg("order"), py::arg("batch_size"), py::arg("learning_rate"),
          py::arg("beta") = 0.9, py::arg("beta1") = 0.9, py::arg("beta2") = 0.99, py::arg("eps") = 1e-8,
          py::arg("t") = 1, py::arg("weight_decay") = 0.0, py::arg("max_loss") = py::none(),
          py::arg("accuracy_targets") = py::none(), py::arg("check_finite") = true,
          "Every minibatch of one epoch with no Python in between: batch b is rows order[b*batch_size:"
          "(b+1)*batch_size] of X and y; t is the first batch's Adam step count. Returns a dict: per batch that "
          "ran its forward pass 'data_loss', 'penalty', 'correct' (-1: not counted), 'rows'; 'steps' (updates "
          "done); 'stopped' (the batch whose non-finite or too-large loss, or kernel error, ended the epoch "
          "before its update, else None); 'error' (that kernel error's message, else None); 'interrupt' (the "
          "exception a signal handler raised between batches, e.g. KeyboardInterrupt, else None); "
          "'stale_gradients' (indices into the parameters whose gradient arrays do not hold the last update's "
          "gradient: every batch but the last updates the dense weights inside the dW GEMM without storing dW, "
          "so an epoch that stops early lists them; empty when it ran to its end).");
}

}  // namespace bind
}  // namespace natverk
