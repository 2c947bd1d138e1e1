// bind_losses.cpp -- natverk._core.cuda's losses, gradients and sum_of_squares, the twins of
// cpp/bindings/bind_losses.cpp: same names, arguments, defaults, return structure (a forward
// loss is a Python float), checks and messages, Tensors in place of arrays.
//
// Labels arrive as an int64 Tensor (a uint8 one is widened on the device first; other integer
// dtypes cannot be Tensors). Their range is checked on the device by the kernels themselves
// (losses.cu), which raise the CPU's ValueError "y[i] = v is not a class label in 0..K-1".
// class_weights (K values) are copied to the host and checked here, as the CPU binding checks
// them, so that the same argument errors come first in the same order.
#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include "bindings/cuda/tensor.h"
#include "losses/losses.h"

namespace natverk {
namespace bind {
namespace cudab {

namespace {

bool parse_reduction(const std::string& r) {
  if (r == "mean") return true;
  if (r == "sum") return false;
  throw py::value_error("reduction must be 'mean' or 'sum', got '" + r + "'");
}

std::optional<Tensor> as_optional_tensor(const py::handle& obj, const char* name) {
  if (obj.is_none()) return std::nullopt;
  try {
    return obj.cast<Tensor&>();
  } catch (const py::cast_error&) {
    throw py::type_error(std::string(name) + " must be a natverk.cuda.Tensor or None, got " + type_name(obj));
  }
}

void require_nonempty_tensor(const Tensor& t, const char* name) {
  if (t.numel == 0) throw py::value_error(std::string(name) + " is empty, shape " + shape_str(t.shape));
}

// Integer labels, one per row: a 1-D Tensor or a MATLAB-style 1 x m / m x 1 one, int64 (used
// as is) or uint8 (widened into `widened`). The pointer stays valid while `widened` and y live.
const int64_t* label_ptr(const Tensor& y, const char* name, int64_t m, Tensor& widened) {
  if (y.dtype != DType::int64 && y.dtype != DType::uint8)
    throw py::type_error(std::string(name) + " must hold integer class labels, got dtype " + dtype_name(y.dtype));
  const bool vector_like = y.ndim() == 1 || (y.ndim() == 2 && (y.shape[0] == 1 || y.shape[1] == 1));
  if (!vector_like || y.numel != m)
    throw py::value_error(std::string(name) + " must hold one label per row (" + std::to_string(m) +
                          "), got shape " + shape_str(y.shape));
  if (y.dtype == DType::int64) return y.ptr<int64_t>();
  widened = empty_as<int64_t>({m});
  natverk::cuda::labels_to_int64(widened.ptr<int64_t>(), y.ptr<uint8_t>(), m);
  return widened.ptr<int64_t>();
}

// The class weights' device pointer after the CPU binding's checks: dtype of `like`, shape (K,),
// every value finite and >= 0 (read back: K values).
template <typename T>
const T* class_weights_ptr(const std::optional<Tensor>& w, int64_t K, const char* like) {
  if (!w) return nullptr;
  require_tensor_dtype<T>(*w, "class_weights", like);
  if (w->ndim() != 1 || w->shape[0] != K)
    throw py::value_error("class_weights must have shape (" + std::to_string(K) + ",), got " + shape_str(w->shape));
  std::vector<T> host(static_cast<size_t>(K));
  if (K > 0) {
    py::gil_scoped_release release;
    NV_CUDA_CHECK(cudaMemcpyAsync(host.data(), w->ptr<T>(), static_cast<size_t>(K) * sizeof(T),
                                  cudaMemcpyDeviceToHost, natverk::cuda::stream()));
    natverk::cuda::synchronize();
  }
  for (const T v : host)
    if (!(v >= T(0)) || !std::isfinite(static_cast<double>(v)))
      throw py::value_error("class_weights must be finite and non-negative");
  return w->ptr<T>();
}

// 2-D (m, n) or 1-D (m,) prediction/target pairs of one dtype and shape (the CPU's pair_dims).
struct PairDims {
  int64_t m, n;
};
template <typename T>
PairDims pair_dims(const Tensor& pred, const char* pn, const Tensor& target, const char* tn) {
  require_tensor_dtype<T>(target, tn, pn);
  if (pred.shape != target.shape)
    throw py::value_error(std::string(pn) + " and " + tn + " must have the same shape, got " +
                          shape_str(pred.shape) + " and " + shape_str(target.shape));
  if (pred.ndim() != 1 && pred.ndim() != 2)
    throw py::value_error(std::string(pn) + " must be 1-D or 2-D, got shape " + shape_str(pred.shape));
  require_nonempty_tensor(pred, pn);
  return {pred.shape[0], pred.ndim() == 2 ? pred.shape[1] : 1};
}

template <typename Fwd32, typename Fwd64>
void def_pair_loss(py::module_& m, const char* name, const char* pn, Fwd32 f32, Fwd64 f64, const char* doc) {
  m.def(
      name,
      [=](const py::object& pred_obj, const py::object& target_obj, const py::object& reduction) -> double {
        const Tensor& pred = as_tensor(pred_obj, pn);
        const Tensor& target = as_tensor(target_obj, "target");
        const bool mean = parse_reduction(as_str(reduction, "reduction"));
        return dispatch_float_tensor(pred, pn, [&](auto tag) -> double {
          using T = decltype(tag);
          const PairDims d = pair_dims<T>(pred, pn, target, "target");
          const T* p = pred.ptr<T>();
          const T* t = target.ptr<T>();
          py::gil_scoped_release release;  // the loss waits for the GPU
          if constexpr (sizeof(T) == 4) return f32(p, t, d.m, d.n, mean);
          else return f64(p, t, d.m, d.n, mean);
        });
      },
      py::arg(pn), py::arg("target"), py::arg("reduction") = "mean", doc);
}

template <typename Bwd32, typename Bwd64>
void def_pair_grad(py::module_& m, const char* name, const char* pn, Bwd32 f32, Bwd64 f64, const char* doc) {
  m.def(
      name,
      [=](const py::object& pred_obj, const py::object& target_obj, const py::object& reduction) {
        const Tensor& pred = as_tensor(pred_obj, pn);
        const Tensor& target = as_tensor(target_obj, "target");
        const bool mean = parse_reduction(as_str(reduction, "reduction"));
        return dispatch_float_tensor(pred, pn, [&](auto tag) {
          using T = decltype(tag);
          const PairDims d = pair_dims<T>(pred, pn, target, "target");
          Tensor out = empty_as<T>(pred.shape);
          T* o = out.ptr<T>();
          const T* p = pred.ptr<T>();
          const T* t = target.ptr<T>();
          {
            py::gil_scoped_release release;  // BCE gradients wait for their [0, 1] check
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
        const Tensor& z = as_tensor(z_obj, "z");
        const Tensor& y = as_tensor(y_obj, "y");
        const std::optional<Tensor> class_weights = as_optional_tensor(class_weights_obj, "class_weights");
        return dispatch_float_tensor(z, "z", [&](auto tag) -> py::tuple {
          using T = decltype(tag);
          require_tensor_ndim(z, "z", 2);
          require_nonempty_tensor(z, "z");
          const int64_t rows = z.dim(0), K = z.dim(1);
          Tensor widened;
          const int64_t* yp = label_ptr(y, "y", rows, widened);
          const T* w = class_weights_ptr<T>(class_weights, K, "z");
          Tensor probs = empty_as<T>(z.shape);
          double loss;
          {
            py::gil_scoped_release release;
            loss = natverk::cuda::softmax_cross_entropy_forward<T>(probs.ptr<T>(), z.ptr<T>(), yp, w, rows, K);
          }
          return py::make_tuple(loss, probs);
        });
      },
      py::arg("z"), py::arg("y"), py::arg("class_weights") = py::none(),
      "(loss, probs) on the GPU for logits z (m x K) and integer labels y: loss = sum_i w[y_i] * "
      "-log softmax(z_i)[y_i] / sum_i w[y_i] (w = 1 without class_weights: the mean).");

  m.def(
      "softmax_cross_entropy_backward",
      [](const py::object& probs_obj, const py::object& y_obj, const py::object& class_weights_obj) {
        const Tensor& probs = as_tensor(probs_obj, "probs");
        const Tensor& y = as_tensor(y_obj, "y");
        const std::optional<Tensor> class_weights = as_optional_tensor(class_weights_obj, "class_weights");
        return dispatch_float_tensor(probs, "probs", [&](auto tag) {
          using T = decltype(tag);
          require_tensor_ndim(probs, "probs", 2);
          require_nonempty_tensor(probs, "probs");
          const int64_t rows = probs.dim(0), K = probs.dim(1);
          Tensor widened;
          const int64_t* yp = label_ptr(y, "y", rows, widened);
          const T* w = class_weights_ptr<T>(class_weights, K, "probs");
          Tensor dz = empty_as<T>(probs.shape);
          {
            py::gil_scoped_release release;  // waits for the label check
            natverk::cuda::softmax_cross_entropy_backward<T>(dz.ptr<T>(), probs.ptr<T>(), yp, w, rows, K);
          }
          return dz;
        });
      },
      py::arg("probs"), py::arg("y"), py::arg("class_weights") = py::none(),
      "dz = w[y_i] (probs - onehot(y)) / sum_i w[y_i] on the GPU, the gradient of softmax_cross_entropy.");

  def_pair_loss(m, "mse", "pred", &natverk::cuda::mse_forward<float>, &natverk::cuda::mse_forward<double>,
                "1/2 sum (pred - target)^2 on the GPU, divided by the number of rows when reduction='mean'.");
  def_pair_grad(m, "mse_backward", "pred", &natverk::cuda::mse_backward<float>,
                &natverk::cuda::mse_backward<double>,
                "(pred - target) on the GPU, divided by the number of rows when reduction='mean'.");
  def_pair_loss(m, "binary_cross_entropy", "pred", &natverk::cuda::bce_forward<float>,
                &natverk::cuda::bce_forward<double>,
                "-sum [t log p + (1-t) log(1-p)] on the GPU for probabilities p in [0, 1] (logs clamped at "
                "-100), divided by the number of rows when reduction='mean'.");
  def_pair_grad(m, "binary_cross_entropy_backward", "pred", &natverk::cuda::bce_backward<float>,
                &natverk::cuda::bce_backward<double>,
                "(p - t) / max(p (1 - p), 1e-12) on the GPU (/ rows when mean).");
  def_pair_loss(m, "binary_cross_entropy_with_logits", "z", &natverk::cuda::bce_with_logits_forward<float>,
                &natverk::cuda::bce_with_logits_forward<double>,
                "Binary cross-entropy of sigmoid(z) on the GPU, computed stably from the logits z.");
  def_pair_grad(m, "binary_cross_entropy_with_logits_backward", "z",
                &natverk::cuda::bce_with_logits_backward<float>, &natverk::cuda::bce_with_logits_backward<double>,
                "sigmoid(z) - t on the GPU (/ rows when mean).");

  m.def(
      "sum_of_squares",
      [](const py::object& w_obj) -> double {
        const Tensor& w = as_tensor(w_obj, "w");
        return dispatch_float_tensor(w, "w", [&](auto tag) -> double {
          using T = decltype(tag);
          const T* p = w.ptr<T>();
          const int64_t n = w.numel;
          py::gil_scoped_release release;
          return natverk::cuda::sum_of_squares<T>(p, n);
        });
      },
      py::arg("w"), "sum(w**2) on the GPU, accumulated in double: the L2 penalty is lambda/2 * sum_of_squares(W).");
}

}  // namespace cudab
}  // namespace bind
}  // namespace natverk
