// bind_losses.cpp -- losses, their gradients and the L2 penalty's sum of squares.
#include "bindings/checks.h"
#include "losses/losses.h"

namespace natverk {
namespace bind {

namespace {

bool parse_reduction(const std::string& r) {
  if (r == "mean") return true;
  if (r == "sum") return false;
  throw py::value_error("reduction must be 'mean' or 'sum', got '" + r + "'");
}

// 2-D (m, n) or 1-D (m,) prediction/target pairs of one dtype and shape.
struct PairDims {
  int64_t m, n;
};
template <typename T>
PairDims pair_dims(const py::array& pred, const char* pn, const py::array& target, const char* tn) {
  require_dtype<T>(target, tn, pn);
  require_same_shape(pred, pn, target, tn);
  if (pred.ndim() != 1 && pred.ndim() != 2)
    throw py::value_error(std::string(pn) + " must be 1-D or 2-D, got shape " + shape_str(pred));
  require_nonempty(pred, pn);
  return {pred.shape(0), pred.ndim() == 2 ? pred.shape(1) : 1};
}

template <typename T>
const T* class_weights_ptr(const std::optional<py::array>& w, int64_t K) {
  if (!w) return nullptr;
  const py::array& keep = *w;
  require_dtype<T>(keep, "class_weights", "z");
  if (keep.ndim() != 1 || keep.shape(0) != K)
    throw py::value_error("class_weights must have shape (" + std::to_string(K) + ",), got " +
                          shape_str(keep));
  const T* p = in_ptr<T>(keep, "class_weights");
  for (int64_t j = 0; j < K; ++j)
    if (!(p[j] >= T(0)) || !std::isfinite(static_cast<double>(p[j])))
      throw py::value_error("class_weights must be finite and non-negative");
  return p;
}


template <typename Fwd32, typename Fwd64>
void def_pair_loss(py::module_& m, const char* name, const char* pn, Fwd32 f32, Fwd64 f64,
                   const char* doc) {
  m.def(
      name,
      [=](const py::object& pred_obj, const py::object& target_obj, const py::object& reduction) -> double {
        const py::array pred = as_array(pred_obj, pn), target = as_array(target_obj, "target");
        const bool mean = parse_reduction(as_str(reduction, "reduction"));
        return dispatch_float(pred, pn, [&](auto tag) -> double {
          using T = decltype(tag);
          const PairDims d = pair_dims<T>(pred, pn, target, "target");
          const T* p = in_ptr<T>(pred, pn);
          const T* t = in_ptr<T>(target, "target");
          py::gil_scoped_release release;
          if constexpr (sizeof(T) == 4) return f32(p, t, d.m, d.n, mean);
          else return f64(p, t, d.m, d.n, mean);
        });
      },
      py::arg(pn), py::arg("target"), py::arg("reduction") = "mean", doc);
}

template <typename Bwd32, typename Bwd64>
void def_pair_grad(py::module_& m, const char* name, const char* pn, Bwd32 f32, Bwd64 f64,
                   const char* doc) {
  m.def(
      name,
      [=](const py::object& pred_obj, const py::object& target_obj, const py::object& reduction) -> py::array {
        const py::array pred = as_array(pred_obj, pn), target = as_array(target_obj, "target");
        const bool mean = parse_reduction(as_str(reduction, "reduction"));
        return dispatch_float(pred, pn, [&](auto tag) -> py::array {
          using T = decltype(tag);
          const PairDims d = pair_dims<T>(pred, pn, target, "target");
          const T* p = in_ptr<T>(pred, pn);
          const T* t = in_ptr<T>(target, "target");
          py::array_t<T> out = new_array_like<T>(pred);
          T* o = out.mutable_data();
          {
            py::gil_scoped_release release;
            if constexpr (sizeof(T) == 4) f32(o, p, t, d.m, d.n, mean);
            else f64(o, p, t, d.m, d.n, mean);
          }
          return out;
        });
      },
      py::arg(pn), py::arg("target"), py::arg("reduction") = "mean", doc);
}

}  // namespace

void bind_losses(py::module_& m) {
  m.def(
      "softmax_cross_entropy",
      [](const py::object& z_obj, const py::object& y_obj, const py::object& class_weights_obj) -> py::tuple {
        const py::array z = as_array(z_obj, "z"), y = as_array(y_obj, "y");
        const std::optional<py::array> class_weights = as_optional_array(class_weights_obj, "class_weights");
        return dispatch_float(z, "z", [&](auto tag) -> py::tuple {
          using T = decltype(tag);
          require_ndim(z, "z", 2);
          require_nonempty(z, "z");
          const int64_t rows = z.shape(0), K = z.shape(1);
          auto labels_arr = labels(y, "y", rows);
          const T* w = class_weights_ptr<T>(class_weights, K);
          const T* zp = in_ptr<T>(z, "z");
          const int64_t* yp = labels_arr.data();
          py::array_t<T> probs = new_array_like<T>(z);
          T* pp = probs.mutable_data();
          double loss;
          {
            py::gil_scoped_release release;
            loss = softmax_cross_entropy_forward<T>(pp, zp, yp, w, rows, K);
          }
          return py::make_tuple(loss, probs);
        });
      },
      py::arg("z"), py::arg("y"), py::arg("class_weights") = py::none(),
      "(loss, probs) for logits z (m x K) and integer labels y: loss = sum_i w[y_i] * "
      "-log softmax(z_i)[y_i] / sum_i w[y_i] (w = 1 without class_weights: the mean).");

  m.def(
      "softmax_cross_entropy_backward",
      [](const py::object& probs_obj, const py::object& y_obj, const py::object& class_weights_obj) -> py::array {
        const py::array probs = as_array(probs_obj, "probs"), y = as_array(y_obj, "y");
        const std::optional<py::array> class_weights = as_optional_array(class_weights_obj, "class_weights");
        return dispatch_float(probs, "probs", [&](auto tag) -> py::array {
          using T = decltype(tag);
          require_ndim(probs, "probs", 2);
          require_nonempty(probs, "probs");
          const int64_t rows = probs.shape(0), K = probs.shape(1);
          auto labels_arr = labels(y, "y", rows);
          const T* w = class_weights_ptr<T>(class_weights, K);
          const T* pp = in_ptr<T>(probs, "probs");
          const int64_t* yp = labels_arr.data();
          py::array_t<T> dz = new_array_like<T>(probs);
          T* dzp = dz.mutable_data();
          {
            py::gil_scoped_release release;
            softmax_cross_entropy_backward<T>(dzp, pp, yp, w, rows, K);
          }
          return dz;
        });
      },
      py::arg("probs"), py::arg("y"), py::arg("class_weights") = py::none(),
      "dz = w[y_i] (probs - onehot(y)) / sum_i w[y_i], the gradient of softmax_cross_entropy.");

  def_pair_loss(m, "mse", "pred", &mse_forward<float>, &mse_forward<double>,
                "1/2 sum (pred - target)^2, divided by the number of rows when reduction='mean'.");
  def_pair_grad(m, "mse_backward", "pred", &mse_backward<float>, &mse_backward<double>,
                "(pred - target), divided by the number of rows when reduction='mean'.");
  def_pair_loss(m, "binary_cross_entropy", "pred", &bce_forward<float>, &bce_forward<double>,
                "-sum [t log p + (1-t) log(1-p)] for probabilities p in [0, 1] (logs clamped at -100), "
                "divided by the number of rows when reduction='mean'.");
  def_pair_grad(m, "binary_cross_entropy_backward", "pred", &bce_backward<float>,
                &bce_backward<double>, "(p - t) / max(p (1 - p), 1e-12) (/ rows when mean).");
  def_pair_loss(m, "binary_cross_entropy_with_logits", "z", &bce_with_logits_forward<float>,
                &bce_with_logits_forward<double>,
                "Binary cross-entropy of sigmoid(z), computed stably from the logits z.");
  def_pair_grad(m, "binary_cross_entropy_with_logits_backward", "z",
                &bce_with_logits_backward<float>, &bce_with_logits_backward<double>,
                "sigmoid(z) - t (/ rows when mean).");

  m.def(
      "sum_of_squares",
      [](const py::object& w_obj) -> double {
        const py::array w = as_array(w_obj, "w");
        return dispatch_float(w, "w", [&](auto tag) -> double {
          using T = decltype(tag);
          const T* p = in_ptr<T>(w, "w");
          const int64_t n = w.size();
          py::gil_scoped_release release;
          return sum_of_squares<T>(p, n);
        });
      },
      py::arg("w"), "sum(w**2) accumulated in double: the L2 penalty is lambda/2 * sum_of_squares(W).");
}

}  // namespace bind
}  // namespace natverk
