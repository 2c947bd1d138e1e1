// mlp_step.cpp -- see mlp_step.h.
#include "mlp/mlp_step.h"

#include "dense/dense.h"
#include "losses/losses.h"
#include "optimizers/optimizers.h"

namespace natverk {

namespace {

template <typename T>
struct Workspace {
  std::vector<std::vector<T>> h;   // h[l]: output of hidden layer l (1..L-1); h[0] unused
  std::vector<T> z, probs, dz, dh;
  std::vector<std::vector<T>> dW, db;

  static T* sized(std::vector<T>& v, int64_t n) {
    if (static_cast<int64_t>(v.size()) < n) v.resize(static_cast<size_t>(n));
    return v.data();
  }
};

template <typename T>
Workspace<T>& workspace() {
  thread_local Workspace<T> ws;
  return ws;
}

// The MATLAB optimizers through the one dispatch (optimizers.h); no weight decay here: the
// MATLAB network's L2 enters through dense_backward's lambda, as back_propagation's does.
OptimizerKind kind_of(MlpOptimizer opt) {
  switch (opt) {
    case MlpOptimizer::vanilla: return OptimizerKind::sgd;
    case MlpOptimizer::momentum: return OptimizerKind::momentum;
    case MlpOptimizer::rmsprop: return OptimizerKind::rmsprop;
    default: return OptimizerKind::adam;
  }
}

}  // namespace

template <typename T>
double mlp_train_step(MlpTensors<T>& net, const T* X, const int64_t* y, int64_t m, Activation act,
                      const MlpHyper& hp, double* data_loss, double* psi_out) {
  const int64_t L = static_cast<int64_t>(net.W.size());
  const std::vector<int64_t>& n = net.n;
  Workspace<T>& ws = workspace<T>();
  ws.h.resize(static_cast<size_t>(L));
  ws.dW.resize(static_cast<size_t>(L));
  ws.db.resize(static_cast<size_t>(L));

  // forward_propagation
  double psi = 0.0;
  const T* h = X;
  for (int64_t l = 0; l < L; ++l) {
    psi += sum_of_squares<T>(net.W[l], n[l] * n[l + 1]);
    if (l < L - 1) {
      T* out = Workspace<T>::sized(ws.h[l + 1], m * n[l + 1]);
      dense_forward<T>(out, h, net.W[l], net.b[l], m, n[l], n[l + 1], act);
      h = out;
    }
  }
  const int64_t K = n[L];
  T* z = Workspace<T>::sized(ws.z, m * K);
  dense_forward<T>(z, h, net.W[L - 1], net.b[L - 1], m, n[L - 1], K, Activation::Identity);
  T* probs = Workspace<T>::sized(ws.probs, m * K);
  const double loss_data = softmax_cross_entropy_forward<T>(probs, z, y, nullptr, m, K);

  // back_propagation
  int64_t widest = 0;
  for (int64_t l = 0; l <= L; ++l) widest = n[l] > widest ? n[l] : widest;
  T* dz = Workspace<T>::sized(ws.dz, m * widest);
  T* dh = Workspace<T>::sized(ws.dh, m * widest);
  softmax_cross_entropy_backward<T>(dz, probs, y, nullptr, m, K);
  const T lambda = static_cast<T>(hp.lambda);
  for (int64_t l = L - 1; l >= 0; --l) {
    const T* h_prev = l == 0 ? X : ws.h[l].data();
    T* dW = Workspace<T>::sized(ws.dW[l], n[l] * n[l + 1]);
    T* db = Workspace<T>::sized(ws.db[l], n[l + 1]);
    dense_backward<T>(l > 0 ? dh : nullptr, dW, db, dz, h_prev, net.W[l], m, n[l], n[l + 1], lambda);
    if (l > 0) activation_backward<T>(dz, dh, h_prev, m * n[l], act);
  }

  // gradient_descent_*: W1, b1, W2, b2, ...
  const OptimizerKind kind = kind_of(hp.optimizer);
  const OptimizerHyper oh{hp.learning_rate, hp.beta, hp.beta1, hp.beta2, hp.eps, hp.t};
  for (int64_t l = 0; l < L; ++l) {
    const auto at = [](const std::vector<T*>& v, int64_t i) { return v.empty() ? nullptr : v[i]; };
    optimizer_update<T>(kind, net.W[l], at(net.vW, l), at(net.sW, l), ws.dW[l].data(), n[l] * n[l + 1], oh, 0.0);
    optimizer_update<T>(kind, net.b[l], at(net.vb, l), at(net.sb, l), ws.db[l].data(), n[l + 1], oh, 0.0);
  }
  if (data_loss) *data_loss = loss_data;
  if (psi_out) *psi_out = psi;
  return loss_data + 0.5 * hp.lambda * psi;
}

template double mlp_train_step<float>(MlpTensors<float>&, const float*, const int64_t*, int64_t,
                                      Activation, const MlpHyper&, double*, double*);
template double mlp_train_step<double>(MlpTensors<double>&, const double*, const int64_t*, int64_t,
                                       Activation, const MlpHyper&, double*, double*);

}  // namespace natverk
