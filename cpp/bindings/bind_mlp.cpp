// bind_mlp.cpp -- mlp_train_step: the MATLAB network's whole minibatch step in one call.
#include <string>
#include <vector>

#include "bindings/checks.h"
#include "losses/losses.h"
#include "mlp/mlp_step.h"

namespace natverk {
namespace bind {

namespace {

MlpOptimizer parse_optimizer(const std::string& name) {
  // the canonical names of the optimizer table (python/natverk/optimizers/table.py);
  // the Python boundary resolves aliases ("vanilla", "SGD", ...) before calling
  if (name == "sgd") return MlpOptimizer::vanilla;
  if (name == "momentum") return MlpOptimizer::momentum;
  if (name == "rmsprop") return MlpOptimizer::rmsprop;
  if (name == "adam") return MlpOptimizer::adam;
  throw py::value_error("optimizer must be 'sgd', 'momentum', 'rmsprop' or 'adam', got '" + name + "'");
}

// A list of writable C-contiguous T arrays, the l-th of `size` elements.
template <typename T>
std::vector<T*> array_list(const py::sequence& arrays, const char* name, const std::vector<int64_t>& sizes,
                           const std::vector<std::vector<py::ssize_t>>& shapes) {
  if (arrays.size() != sizes.size())
    throw py::value_error(std::string(name) + " must hold " + std::to_string(sizes.size()) + " arrays, got " +
                          std::to_string(arrays.size()));
  std::vector<T*> out;
  for (size_t l = 0; l < sizes.size(); ++l) {
    const std::string label = std::string(name) + "[" + std::to_string(l) + "]";
    py::array a = as_array(arrays[l], label.c_str());
    require_dtype<T>(a, label.c_str(), "X");
    if (a.size() != sizes[l]) {
      std::string want = "(";
      for (size_t i = 0; i < shapes[l].size(); ++i) want += (i ? ", " : "") + std::to_string(shapes[l][i]);
      throw py::value_error(label + " has shape " + shape_str(a) + ", expected " + want + ")");
    }
    out.push_back(inout_ptr<T>(a, label.c_str()));
  }
  return out;
}

}  // namespace

void bind_mlp(py::module_& m) {
  m.def(
      "mlp_train_step",
      [](const py::object& X_obj, const py::object& y_obj, const py::object& weights_obj,
         const py::object& biases_obj, const py::object& activation_obj, const py::object& lambda_obj,
         const py::object& optimizer_obj, const py::object& learning_rate_obj, const py::object& beta_obj,
         const py::object& beta1_obj, const py::object& beta2_obj, const py::object& t_obj, const py::object& eps_obj,
         const py::object& v_weights, const py::object& v_biases, const py::object& s_weights,
         const py::object& s_biases) -> py::tuple {
        const py::array X = as_array(X_obj, "X"), y = as_array(y_obj, "y");
        const py::sequence weights = as_array_list(weights_obj, "weights"),
                           biases = as_array_list(biases_obj, "biases");
        const std::string activation = as_str(activation_obj, "activation"),
                          optimizer = as_str(optimizer_obj, "optimizer");
        const double lambda_ = as_float(lambda_obj, "lambda_"), learning_rate = as_float(learning_rate_obj, "learning_rate"),
                     beta = as_float(beta_obj, "beta"), beta1 = as_float(beta1_obj, "beta1"),
                     beta2 = as_float(beta2_obj, "beta2"), eps = as_float(eps_obj, "eps");
        const int64_t t = as_int64(t_obj, "t");
        const Activation act = parse_activation(activation);
        MlpHyper hp{parse_optimizer(optimizer), learning_rate, beta, beta1, beta2, eps, lambda_, t};
        require_finite(learning_rate, "learning_rate");
        if (learning_rate < 0) throw py::value_error("learning_rate must be >= 0");
        require_finite(lambda_, "lambda_");
        if (lambda_ < 0) throw py::value_error("lambda_ must be >= 0");
        require_in(beta, "beta", 0.0, 1.0, true);
        require_in(beta1, "beta1", 0.0, 1.0, true);
        require_in(beta2, "beta2", 0.0, 1.0, true);
        require_finite(eps, "eps");
        if (!(eps > 0)) throw py::value_error("eps must be > 0");
        if (hp.optimizer == MlpOptimizer::adam && t < 1)
          throw py::value_error("t (the Adam step count) must be >= 1, got " + std::to_string(t));
        const bool needs_v = hp.optimizer == MlpOptimizer::momentum || hp.optimizer == MlpOptimizer::adam;
        const bool needs_s = hp.optimizer == MlpOptimizer::rmsprop || hp.optimizer == MlpOptimizer::adam;
        return dispatch_float(X, "X", [&](auto tag) -> py::tuple {
          using T = decltype(tag);
          // Every hyperparameter reaches the kernels in X's dtype (mlp_step.cpp, optimizers.cpp).
          for (const auto& a : {std::make_pair(lambda_, "lambda_"), std::make_pair(learning_rate, "learning_rate"),
                                std::make_pair(beta, "beta"), std::make_pair(beta1, "beta1"),
                                std::make_pair(beta2, "beta2"), std::make_pair(eps, "eps")})
            require_float_arg<T>(a.first, a.second);
          if (needs_s) require_eps_in_dtype<T>(eps);
          require_ndim(X, "X", 2);
          require_nonempty(X, "X");
          const int64_t L = static_cast<int64_t>(weights.size());
          if (L < 1) throw py::value_error("weights must hold at least one layer");
          // widths from the weights' shapes; every W must chain onto the previous one
          MlpTensors<T> net;
          net.n.push_back(X.shape(1));
          std::vector<int64_t> wsize, bsize;
          std::vector<std::vector<py::ssize_t>> wshape, bshape;
          for (int64_t l = 0; l < L; ++l) {
            const std::string label = "weights[" + std::to_string(l) + "]";
            py::array W = as_array(weights[l], label.c_str());
            if (W.ndim() != 2 || W.shape(0) != net.n.back())
              throw py::value_error("weights[" + std::to_string(l) + "] has shape " + shape_str(W) + " but the layer below has " +
                                    std::to_string(net.n.back()) + " outputs");
            net.n.push_back(W.shape(1));
            wsize.push_back(W.shape(0) * W.shape(1));  // an existing array's size: no overflow
            wshape.push_back({W.shape(0), W.shape(1)});
            bsize.push_back(W.shape(1));
            bshape.push_back({1, W.shape(1)});
          }
          net.W = array_list<T>(weights, "weights", wsize, wshape);
          net.b = array_list<T>(biases, "biases", bsize, bshape);
          auto state = [&](py::object obj, const char* name, const std::vector<int64_t>& sizes,
                           const std::vector<std::vector<py::ssize_t>>& shapes, bool needed) -> std::vector<T*> {
            if (!needed) return {};
            if (obj.is_none()) throw py::value_error(std::string(name) + " is required by optimizer '" + optimizer + "'");
            return array_list<T>(as_array_list(obj, name), name, sizes, shapes);
          };
          net.vW = state(v_weights, "v_weights", wsize, wshape, needs_v);
          net.vb = state(v_biases, "v_biases", bsize, bshape, needs_v);
          net.sW = state(s_weights, "s_weights", wsize, wshape, needs_s);
          net.sb = state(s_biases, "s_biases", bsize, bshape, needs_s);
          const int64_t rows = X.shape(0);
          auto yv = labels(y, "y", rows);
          check_labels(yv.data(), rows, net.n.back());
          // The step's workspace holds rows x width activations per layer, rows from X and widths
          // from the weights: a product of two arrays' dimensions, so checked (common/shape.h).
          for (int64_t width : net.n) checked_bytes(checked_mul(rows, width, "a layer's activations"), sizeof(T),
                                                    "a layer's activations");
          const T* xp = in_ptr<T>(X, "X");
          double data_loss = 0, psi = 0, loss = 0;
          {
            py::gil_scoped_release release;
            loss = mlp_train_step<T>(net, xp, yv.data(), rows, act, hp, &data_loss, &psi);
          }
          return py::make_tuple(loss, data_loss, psi);
        });
      },
      py::arg("X"), py::arg("y"), py::arg("weights"), py::arg("biases"), py::arg("activation"), py::arg("lambda_"),
      py::arg("optimizer"), py::arg("learning_rate"), py::arg("beta") = 0.9, py::arg("beta1") = 0.9,
      py::arg("beta2") = 0.99, py::arg("t") = 1, py::arg("eps") = 1e-8, py::arg("v_weights") = py::none(),
      py::arg("v_biases") = py::none(), py::arg("s_weights") = py::none(), py::arg("s_biases") = py::none(),
      "One training step of the MATLAB network, in place: forward, softmax cross-entropy + lambda/2 sum W^2, "
      "backward, and the optimizer update of every W_l, b_l (and its state). Returns (loss, data_loss, psi) of "
      "the batch before the update. Bit-identical to forward_propagation + back_propagation + gradient_descent_*.");
}

}  // namespace bind
}  // namespace natverk
