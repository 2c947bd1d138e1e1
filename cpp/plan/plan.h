// plan.h -- the one training engine (issue 11): a network's whole minibatch step -- forward,
// loss, backward and one optimizer pass over every parameter -- as a C++ op list that runs with
// no Python between its layers, for float32 and float64.
//
// A Plan holds
//   * the op list, in layer order: dense, activation, dropout, flatten, conv2d, max/avg/global
//     average pooling, batch norm (training mode) and residual (a nested op list whose output is
//     added to its input, He et al. 2016). Each op calls exactly the kernels its Python layer
//     (python/natverk/layers/) calls, in the same order, so N plan steps give the weights of N
//     steps of the Python layer loop (Sequential.fit's) bit for bit. One reordering, proven to
//     give the same bits (plan.cpp, fuse_relu_maxpool): a ReLU followed by a max-pooling runs
//     after the pooling, on its smaller output;
//   * the parameters, their gradients, the optimizer state (v, s), the batch-norm running
//     statistics and the dropout call counters as pointers into the caller's arrays (the layers'
//     W, b, gamma, ..., the optimizer's state arrays): nothing is copied in or out, every update
//     lands in the caller's memory;
//   * activation and gradient buffers, grown to the largest batch seen and then reused (a step
//     allocates nothing once a batch of its size has run).
//
// One step (thesis §2.1-2.6):
//   forward    h_0 = X,  h_i = op_i(h_{i-1}) in training mode (batch statistics, dropout on)
//   loss       data_loss = L(h_n, y): softmax cross-entropy on integer labels (optional class
//              weights), MSE 1/2 sum (h - t)^2 / m, or BCE on logits (losses.h, mean over rows)
//              penalty   = wd/2 sum ||w||^2 over the parameters flagged `decay`        (eq. 9)
//   check      data_loss + penalty non-finite (a NaN/Inf output gives a NaN loss) or above max_loss stops
//              the step here, before any gradient or update (the Python loop's check_loss)
//   backward   dh_n = dL/dh_n;  dh_{i-1} = op_i^T(dh_i); parameter gradients are overwritten.
//              Ops before the first one with parameters compute no input gradient (nobody
//              reads it), as the Python loop's backward_parameters skips the first layer's.
//   update     every parameter once, in order, by optimizer_update (optimizers.h) with weight
//              decay wd where its `decay` flag is set and 0 elsewhere
//
// Layout: a batch is row-major (m, d1, d2, ...): (m, features) or NCHW, as the layers take it.
// Errors (bad geometry while building, a kernel's complaint while running) are thrown as
// std::invalid_argument / std::runtime_error with a message naming the op.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "activations/activations.h"
#include "optimizers/optimizers.h"

namespace natverk {

// Per-example shape, the batch axis left out: (features,) or (C, H, W).
using Dims = std::vector<int64_t>;
std::string dims_str(const Dims& d);

enum class LossKind { cross_entropy, mse, bce_with_logits };

template <typename T>
struct PlanOp;  // plan.cpp

// One trainable parameter: n elements of w with gradient g; v, s the optimizer state
// (null where the optimizer does not use them). All point into the caller's arrays.
template <typename T>
struct PlanParam {
  T* w = nullptr;
  T* g = nullptr;
  T* v = nullptr;
  T* s = nullptr;
  int64_t n = 0;
  bool decay = false;  // weight decay applies (dense and conv weights; not biases, gamma, beta)
  std::string name;    // the op that owns it, for messages: "op 3 (dense).W"
  PlanOp<T>* owner = nullptr;
  bool dense_weight = false;  // a dense W: can take its L2 gradient in backward (see set_optimizer)
  int64_t cols = 0;           // a dense W's n_out (its row length)
  bool fusable = false;       // a dense W no other parameter shares: epoch() may fuse its update (Plan::fuses)
};

// A batch's (or a whole data set's) targets, rows aligned with X.
//   labels      (m,) int64 class labels (cross-entropy)
//   values      (m, K) targets in the plan's dtype (MSE, BCE)
//   acc_labels  (m,) int64: what argmax(output) is compared with for the accuracy (cross-entropy:
//               the labels; MSE with K > 1: argmax of the float64 targets, taken by the caller)
//   acc_mask    (m, K) uint8: BCE's accuracy compares (output > 0) with it (target >= 0.5)
// With neither acc_labels nor acc_mask the step counts no accuracy (correct = -1).
template <typename T>
struct PlanTargets {
  const int64_t* labels = nullptr;
  const T* values = nullptr;
  const int64_t* acc_labels = nullptr;
  const uint8_t* acc_mask = nullptr;
};

struct PlanStepResult {
  double data_loss = 0, penalty = 0;
  double psi = 0;        // sum ||w||^2 over the decayed parameters (penalty = wd/2 psi); forward_loss() always
                         // computes it, step(), gradients() and epoch() only when wd != 0
  int64_t correct = -1;  // rows (elements for BCE) predicted right; -1 when not counted
  bool updated = false;  // false: the loss check stopped the step before backward
};

struct PlanEpochResult {
  std::vector<double> data_loss, penalty;  // per batch that ran its forward pass
  std::vector<int64_t> correct, rows;
  int64_t steps = 0;       // batches whose update ran
  int64_t stopped = -1;    // the batch whose loss (or error) stopped the epoch; -1: none
  std::string error;       // a kernel's error message at batch `stopped` (empty: the loss check)
  bool interrupted = false;  // the `interrupted` callback asked to stop (after `steps` batches)
  // The parameters (indices into parameters()) whose gradient arrays do not hold the last
  // update's gradient: the fused dense weights, when the epoch ended after a fused batch (see
  // epoch()). Empty when it ran to its last batch.
  std::vector<int64_t> stale_gradients;
};

template <typename T>
class Plan {
 public:
  using value_type = T;
  explicit Plan(Dims input);
  ~Plan();
  Plan(const Plan&) = delete;
  Plan& operator=(const Plan&) = delete;

  // -- building, in layer order. Each op checks its geometry against the current shape and
  //    throws std::invalid_argument naming itself. Parameter pointers must outlive the plan.
  void dense(T* W, T* b, T* dW, T* db, int64_t n_in, int64_t n_out);  // b, db null: no bias
  void activation(Activation act);
  // Inverted dropout; *counter is the layer's call counter, read and advanced in place.
  void dropout(double p, uint64_t seed, int64_t* counter);
  void flatten();
  // W (K, Cw = C/groups, kH, kW); b, db null: no bias.
  void conv2d(T* W, T* b, T* dW, T* db, int64_t K, int64_t Cw, int64_t kH, int64_t kW, int64_t sh,
              int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw, int64_t groups);
  void maxpool2d(int64_t kH, int64_t kW, int64_t sh, int64_t sw, int64_t ph, int64_t pw);
  void avgpool2d(int64_t kH, int64_t kW, int64_t sh, int64_t sw, int64_t ph, int64_t pw);
  void global_avgpool2d();
  // Over (features,) or (C, H, W) inputs; running_mean/var updated in place in training.
  void batchnorm(T* gamma, T* beta, T* dgamma, T* dbeta, T* running_mean, T* running_var,
                 int64_t C, double eps, double momentum);
  void begin_residual();  // the ops up to end_residual() form the branch f of y = x + f(x)
  void end_residual();
  // The loss on the last op's output, which must be (m, K); class_weights (K) or null.
  void set_loss(LossKind kind, const T* class_weights);
  // The optimizer and its state per parameter, in parameters() order (v/s null where unused).
  // decay[i]: weight decay wd applies to parameter i. Where its gradient wd * w enters:
  //   l2_in_backward false  in the update, g + wd w (optimizer_update's weight_decay), as the
  //                         layer API's Optimizer.step does;
  //   l2_in_backward true   in the backward pass, dW = h^T dz + wd W (dense_backward's lambda),
  //                         as the MATLAB back_propagation does (decayed parameters must then be
  //                         dense weights). Same maths; the roundings differ once a batch is
  //                         longer than one GEMM k-block, so each API keeps its own.
  void set_optimizer(OptimizerKind kind, const std::vector<T*>& v, const std::vector<T*>& s,
                     const std::vector<bool>& decay, bool l2_in_backward = false);

  // -- queries
  const Dims& input_dims() const { return input_; }
  const Dims& output_dims() const;
  const Dims& current_dims() const { return shapes_.back(); }  // while building: the last op's output
  const std::vector<PlanParam<T>>& parameters() const { return params_; }
  LossKind loss_kind() const { return loss_; }
  OptimizerKind optimizer_kind() const { return opt_; }
  std::string describe() const;  // one line per op, for repr() and messages
  // Whether epoch() fuses the dense weight updates (see epoch(); on by default), and from what
  // size of weight: kFuseMinBytes unless set.
  bool fuse_updates() const { return fuse_updates_; }
  void set_fuse_updates(bool on) { fuse_updates_ = on; }
  int64_t fuse_min_bytes() const { return fuse_min_bytes_; }
  void set_fuse_min_bytes(int64_t bytes) { fuse_min_bytes_ = bytes; }
  // Fusing saves the update pass's trip through memory for W and dW; a weight that stays in L2
  // costs little to update apart, and in the fused epilogue its rows are at most one tile wide,
  // whose scalar remainders cost more than one contiguous pass (Adam's divisions and square
  // roots). Measured, float32, 1 thread, paired fit() epochs fused / apart: the spiral net (c),
  // Adam, largest weight 250 x 100, 0.83-0.85 with every weight fused and 0.99 (A/A noise) with
  // none; (a), 784-500-100-..., 1.11 whether its 500 x 100 weight (200 KB) is fused or not.
  static constexpr int64_t kFuseMinBytes = 256 * 1024;
  // Whether a plan made only of dense layers, activations and flattens splits each batch's rows
  // between the threads for its whole forward pass and its whole input-gradient pass (one pool
  // region each), then the weight and bias gradients by their own rows and columns (one more),
  // instead of one region per op (plan.cpp, row split). On by default; the bits are the same
  // either way (tests/test_plan.py).
  bool row_split() const { return row_split_; }
  void set_row_split(bool on) { row_split_ = on; }
  // Each thread of a row split multiplies its rows by every weight, so each packs every weight
  // for the forward and the input-gradient products, where op by op each packed its share of the
  // columns: a cost that grows with the weights, against a saving of regions that does not. So
  // the split runs only while the dense weights total at most this many bytes. Measured on Zen 3,
  // float32, 2 threads, fit(), op by op -> split, alternated, median samples/s of the runs: the
  // spiral net (c), 2-250-100-50-4 (124 KB of weights), batch 128, 318k -> 383k; (a),
  // 784-500-100-50-25-10 (1.8 MB), batch 64, 47.5k -> 45k.
  static constexpr int64_t kRowSplitMaxBytes = 256 * 1024;
  // Whether a batch of m rows runs split now (at the current thread count; after the first run).
  bool use_row_split(int64_t m) const;

  // -- running. Each call takes the plan's lock: a second thread gets std::runtime_error
  //    instead of racing on the buffers. X is (m, input_dims) in the plan's dtype.
  //
  // forward, loss, backward, update. hp.t is Adam's t for this step. max_loss: see the top.
  PlanStepResult step(const T* X, int64_t m, const PlanTargets<T>& y, const OptimizerHyper& hp,
                      double weight_decay, double max_loss);
  // forward, loss and backward only: the gradients land in the gradient arrays, nothing is
  // updated (the dropout counters and running statistics do advance, as in a step).
  PlanStepResult gradients(const T* X, int64_t m, const PlanTargets<T>& y, double weight_decay);
  // step() in two halves, for a caller that chooses the weight decay from the forward pass (the
  // balance principle, thesis eq. 47: lambda = phi / (gamma psi / 2), psi = sum ||W||^2, at the
  // weights the step starts from). forward_loss gathers rows[0..m) of X / y (rows null: the first m rows) into the plan's
  // own batch buffers, so the caller's arrays need not outlive the call, and runs the training
  // forward pass and the data loss; it returns data_loss, psi and the accuracy count (penalty 0:
  // the weight decay is not known yet) and checks nothing. backward_update(hp, wd) then runs
  // backward and the update with weight decay wd. The pair gives the bits step() gives with the
  // same wd. Any other run in between (step, gradients, forward, epoch) overwrites the forward
  // pass's buffers, so it discards the pending half-step and backward_update throws
  // std::logic_error; a second forward_loss replaces it.
  PlanStepResult forward_loss(const T* X, int64_t N, const PlanTargets<T>& y, const int64_t* rows, int64_t m);
  void backward_update(const OptimizerHyper& hp, double weight_decay);
  // Evaluation mode (running statistics, no dropout): out (m, output_dims).
  void forward(T* out, const T* X, int64_t m);
  // Every minibatch of one epoch: batch b holds the rows order[b*bs : (b+1)*bs] of X / y
  // (gathered into the plan's input buffer). hp.t is the first batch's t, +1 per batch. Stops
  // at the first batch whose loss check fails (stopped, no update) or whose kernels throw
  // (stopped, error); `interrupted`, when given, is asked between batches (Ctrl-C).
  // Every batch but the last updates each dense weight inside its backward pass, tile by tile
  // as the dW GEMM produces it (dense_backward_update): the same bits, without writing dW and
  // reading it back in the update pass. The last batch runs unfused, so an epoch that ends
  // normally leaves every gradient array holding its last batch's gradient, as step() does;
  // one that stops early lists the fused weights in stale_gradients.
  PlanEpochResult epoch(const T* X, int64_t N, const PlanTargets<T>& y, const int64_t* order,
                        int64_t n_order, int64_t batch_size, OptimizerHyper hp, double weight_decay,
                        double max_loss, const std::function<bool()>& interrupted);

 private:
  using OpList = std::vector<std::unique_ptr<PlanOp<T>>>;

  void check_building() const;
  void add(std::unique_ptr<PlanOp<T>> op);
  T* add_param(T* w, T* g, int64_t n, const std::string& name, PlanOp<T>* owner, bool dense_weight = false);
  void finalize();
  void reserve(int64_t rows, bool training);
  const T* run_forward(const T* X, int64_t m, bool training);
  // The forward pass and the loss of one batch (psi when want_psi or wd != 0); backward() then takes
  // the gradients of that batch with weight decay wd; loss_and_backward is the two with the loss
  // check between them (step, gradients and epoch).
  PlanStepResult forward_and_loss(const T* X, int64_t m, const PlanTargets<T>& y, double weight_decay,
                                  bool want_psi);
  // fuse (non-null): the fusable dense weights are updated by hp inside backward (epoch()).
  void backward(int64_t m, const PlanTargets<T>& y, double weight_decay, const OptimizerHyper* fuse = nullptr);
  PlanStepResult loss_and_backward(const T* X, int64_t m, const PlanTargets<T>& y, double weight_decay,
                                   double max_loss, const OptimizerHyper* fuse = nullptr);
  // The batch buffers (batch_x_ and targets shaped like y, pointed to by the result) for `rows`
  // rows, and the gather of rows idx[0..m) (idx null: the first m rows) of X and y into them
  // (forward_loss and epoch).
  PlanTargets<T> batch_buffers(const PlanTargets<T>& y, int64_t rows);
  void gather_batch(const T* X, const PlanTargets<T>& y, const int64_t* idx, int64_t m);
  void update(const OptimizerHyper& hp, double weight_decay, bool fused = false);  // fused: skip the fusable ones

  Dims input_;
  OpList ops_;
  std::vector<OpList*> building_;  // the op list being appended to (nested in a residual)
  std::vector<Dims> shapes_;       // the current per-example shape, one per nesting level
  std::vector<PlanParam<T>> params_;
  std::vector<std::vector<T>> zero_bias_;  // stands in for a missing dense bias

  LossKind loss_ = LossKind::cross_entropy;
  bool loss_set_ = false;
  std::vector<T> class_weights_;
  bool has_class_weights_ = false;
  OptimizerKind opt_ = OptimizerKind::sgd;
  bool optimizer_set_ = false;
  bool l2_in_backward_ = false;
  double l2_ = 0.0;  // this run's weight decay, read by the dense ops that take it in backward
  bool fuse_updates_ = true;
  bool row_split_ = true;
  bool row_split_ok_ = false;  // finalize(): every op is row-local (PlanOp::row_local)
  int64_t dense_weights_ = 0;  // finalize(): the dense weights' elements, all layers together
  // the row split's bindings, sized by finalize() so that a step allocates nothing
  std::vector<const T*> split_in_;
  std::vector<PlanOp<T>*> split_run_;
  // The row split's grain: rows a chunk at least (run_forward, backward).
  int64_t row_split_grain() const;
  int64_t fuse_min_bytes_ = kFuseMinBytes;
  bool fuses(const PlanParam<T>& p) const {  // epoch() updates p inside its dW GEMM
    return p.fusable && p.n >= (fuse_min_bytes_ + static_cast<int64_t>(sizeof(T)) - 1) / static_cast<int64_t>(sizeof(T));
  }
  std::vector<GemmTileUpdate<T>> fused_;  // backward(fuse): one per parameter (apply null: not fused)
  const T* last_output_ = nullptr;  // the training forward pass's output (the loss gradient reads it)
  bool finalized_ = false;

  // loss workspace: probs (cross-entropy) and dL/d(output), rows x K
  std::vector<T> probs_, dout_;
  std::vector<T> batch_x_;  // epoch(): the gathered minibatch
  std::vector<int64_t> batch_labels_, batch_acc_labels_;
  std::vector<T> batch_values_;
  std::vector<uint8_t> batch_acc_mask_;
  int64_t capacity_train_ = 0, capacity_eval_ = 0;
  int64_t pending_rows_ = -1;  // forward_loss(): the rows of the half-step backward_update() finishes
  PlanTargets<T> pending_y_;    // its targets, in the batch buffers
  std::mutex busy_;
};

}  // namespace natverk
