// plan.cpp -- see plan.h. Each op below is its Python layer's forward/backward written against
// the same kernels with the same arguments; the comment on each names the layer it mirrors.
#include "plan/plan.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <utility>

#include "batchnorm/batchnorm.h"
#include "common/elementwise.h"
#include "common/parallel.h"
#include "common/shape.h"
#include "conv2d/conv2d.h"
#include "conv2d/conv_pool.h"
#include "dense/dense.h"
#include "dropout/dropout.h"
#include "losses/losses.h"
#include "pool2d/pool2d.h"
#include "residual/residual.h"

namespace natverk {

std::string dims_str(const Dims& d) {
  std::string s = "(";
  for (size_t i = 0; i < d.size(); ++i) s += (i ? ", " : "") + std::to_string(d[i]);
  return s + (d.size() == 1 ? ",)" : ")");
}

namespace {

int64_t numel(const Dims& d, const char* what) {
  int64_t n = 1;
  for (int64_t v : d) n = checked_mul(n, v, what);
  return n;
}

// v holds at least n elements (a fresh vector when it must grow: the old contents are not
// needed, so they are not copied). Sizes are rows x an op's per-example size: checked.
template <typename U>
U* grow(std::vector<U>& v, int64_t rows, int64_t per_row, const char* what) {
  const int64_t n = checked_mul(rows, per_row, what);
  checked_bytes(n, sizeof(U), what);
  if (static_cast<int64_t>(v.size()) < n) v = std::vector<U>(static_cast<size_t>(n));
  return v.data();
}

// dst row r = src row idx[r] (rows of `width` elements): a minibatch gathered from the data set
// (idx null: src row r).
template <typename U>
void gather_rows(U* dst, const U* src, const int64_t* idx, int64_t rows, int64_t width) {
  parallel_for(rows, kElementwiseGrain / (width > 0 ? width : 1) + 1, [&](int64_t b, int64_t e, int) {
    if (width <= 8) {  // a label or a few features a row (the spiral's 2): a call of memcpy a row cost
      for (int64_t r = b; r < e; ++r) {  // 1.6 % of its fit() (Zen 3); a loop of loads costs nothing
        const U* s = src + (idx ? idx[r] : r) * width;
        for (int64_t j = 0; j < width; ++j) dst[r * width + j] = s[j];
      }
      return;
    }
    for (int64_t r = b; r < e; ++r)
      std::memcpy(dst + r * width, src + (idx ? idx[r] : r) * width, sizeof(U) * static_cast<size_t>(width));
  });
}

// Every index is a row of the N-row data set (epoch's order, forward_loss's rows).
void check_rows(const int64_t* idx, int64_t n, int64_t N, const char* name) {
  for (int64_t i = 0; i < n; ++i)
    if (idx[i] < 0 || idx[i] >= N)
      throw std::invalid_argument(std::string(name) + "[" + std::to_string(i) + "] = " + std::to_string(idx[i]) +
                                  " is not a row of X (0.." + std::to_string(N - 1) + ")");
}

// argmax of each row, the first maximum (numpy.argmax's rule for finite values).
template <typename T>
int64_t row_argmax(const T* z, int64_t K) {
  int64_t best = 0;
  for (int64_t j = 1; j < K; ++j)
    if (z[j] > z[best]) best = j;
  return best;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// The op interface. forward returns the op's output (its own buffer, or the input itself for
// the shape-only ops); backward takes dL/d(output) and returns dL/d(input) when need_dx, else
// null (only the parameter gradients). Buffers are sized by reserve() before a run.

template <typename T>
struct PlanOp {
  std::string label;  // "op 3 (dense 784->500)"
  Dims in, out;
  int64_t in_numel = 0, out_numel = 0;
  bool need_dx = false;     // someone before this op has parameters (set by mark)
  bool has_params = false;

  virtual ~PlanOp() = default;
  virtual void reserve(int64_t rows, bool training) {}
  virtual const T* forward(const T* x, int64_t m, bool training) = 0;
  virtual const T* backward(const T* dy, int64_t m) = 0;
  virtual void mark(bool need_dx_in) { need_dx = need_dx_in; }
  virtual void take_l2_in_backward(const double* lambda) {}
  // The weight update to run inside the next backward (a dense W; null: none).
  virtual void fuse_weight_update(const GemmTileUpdate<T>* u) {}
  virtual bool runs_backward() const { return need_dx || has_params; }
  // The row split (Plan::row_split): an op is row-local when row r of its output, and row r of its
  // input gradient, depend on row r of its input (and output gradient) alone. For such an op:
  //   bind_forward(x) records the input as forward(x, ...) would and returns the output's buffer,
  //     computing nothing (called before the region, on the calling thread);
  //   forward_rows(x, r0, r1) computes rows [r0, r1) of that output (in the region, any thread);
  //   bind_backward(dy) returns the buffer of the input gradient (null: none is needed);
  //   backward_rows(dy, r0, r1) computes its rows [r0, r1);
  //   param_grads_part(dy, m, c, chunks) computes share c of its parameter gradients over all m
  //     rows (and runs their fused update), after every backward_rows of the batch.
  // Each gets the bits of forward / backward.
  virtual bool row_local() const { return false; }
  virtual const T* bind_forward(const T* x) { return x; }
  virtual void forward_rows(const T* x, int64_t r0, int64_t r1) {}
  virtual T* bind_backward(const T* dy) { return nullptr; }
  virtual void backward_rows(const T* dy, int64_t r0, int64_t r1) {}
  virtual void param_grads_part(const T* dy, int64_t m, int c, int chunks) {}
  virtual void describe(std::string& s, const std::string& indent) const { s += indent + label + "\n"; }
};

namespace {

template <typename T>
using OpPtr = std::unique_ptr<PlanOp<T>>;

// ---- Dense (layers/dense.py): z = x W + b; dW = x^T dz, db = colsum dz, dx = dz W^T.
template <typename T>
struct DenseOp : PlanOp<T> {
  T *W, *b, *dW, *db;
  int64_t n_in, n_out;
  const double* l2 = nullptr;  // the MATLAB placement of the L2 gradient: dW = x^T dz + l2 W
  bool relu_after = false;     // the next op's ReLU runs in this op's GEMM epilogue (fuse_dense_relu)
  bool relu_before = false;    // the previous op's ReLU backward runs in this op's dX GEMM (fuse_relu_dense)
  const T* x_ = nullptr;
  std::vector<T> y_, dx_, db_scratch_;

  const GemmTileUpdate<T>* fused = nullptr;  // W's update, run in the dW GEMM (Plan::epoch)
  void take_l2_in_backward(const double* lambda) override { l2 = lambda; }
  void fuse_weight_update(const GemmTileUpdate<T>* u) override { fused = u; }

  void reserve(int64_t rows, bool training) override {
    grow(y_, rows, n_out, "a dense output");
    if (training && this->need_dx) grow(dx_, rows, n_in, "a dense input gradient");
    if (training && !db) grow(db_scratch_, 1, n_out, "a dense bias gradient");
  }
  const T* forward(const T* x, int64_t m, bool) override {
    x_ = x;
    dense_forward<T>(y_.data(), x, W, b, m, n_in, n_out, relu_after ? Activation::ReLU : Activation::Identity);
    return y_.data();
  }
  const T* backward(const T* dy, int64_t m) override {
    T* dx = this->need_dx ? dx_.data() : nullptr;
    if (fused) {  // its lambda, if any, is the update's l2 (Plan::backward)
      dense_backward_update<T>(dx, db ? db : db_scratch_.data(), dy, x_, W, m, n_in, n_out, dW, *fused, relu_before);
      return dx;
    }
    const T lambda = l2 ? static_cast<T>(*l2) : T(0);
    dense_backward<T>(dx, dW, db ? db : db_scratch_.data(), dy, x_, W, m, n_in, n_out, lambda, relu_before);
    return dx;
  }

  bool row_local() const override { return true; }
  const T* bind_forward(const T* x) override {
    x_ = x;
    return y_.data();
  }
  void forward_rows(const T* x, int64_t r0, int64_t r1) override {
    dense_forward<T>(y_.data() + r0 * n_out, x + r0 * n_in, W, b, r1 - r0, n_in, n_out,
                     relu_after ? Activation::ReLU : Activation::Identity, true);
  }
  T* bind_backward(const T*) override { return this->need_dx ? dx_.data() : nullptr; }
  void backward_rows(const T* dy, int64_t r0, int64_t r1) override {
    if (this->need_dx)
      dense_input_gradient_serial<T>(dx_.data() + r0 * n_in, dy + r0 * n_out, x_ + r0 * n_in, W, r1 - r0, n_in, n_out,
                                     relu_before);
  }
  // Rows [n_in c / chunks, n_in (c + 1) / chunks) of dW (each element the one FMA chain over the
  // batch that dense_backward gives it) and the same share of db's columns. A fused update takes
  // its share of W, v and s at the same offset.
  void param_grads_part(const T* dy, int64_t m, int c, int chunks) override {
    const int64_t i0 = n_in * c / chunks, i1 = n_in * (c + 1) / chunks;
    const int64_t j0 = n_out * c / chunks, j1 = n_out * (c + 1) / chunks;
    bias_grad_serial<T>(db ? db : db_scratch_.data(), dy, m, n_out, j0, j1);
    if (i1 <= i0) return;
    if (fused) {
      GemmTileUpdate<T> u = *fused;
      const int64_t off = i0 * u.ld;
      u.w += off;
      if (u.v) u.v += off;
      if (u.s) u.s += off;
      gemm_update<T>(dW + off, n_out, x_ + i0, 1, n_in, dy, n_out, 1, i1 - i0, n_out, m, T(1), u, true);
      return;
    }
    const T lambda = l2 ? static_cast<T>(*l2) : T(0);
    dense_weight_gradient_serial<T>(dW, dy, x_, W, m, n_in, n_out, lambda, i0, i1);
  }
};

// ---- ReLU / Sigmoid / Tanh (layers/activations.py): h = f(z); dz = dh f'(h), from the output.
// A ReLU whose output only a max-pooling reads is `deferred` (see fuse_relu_maxpool): it passes
// its input and its gradient through, and the pooling applies it to its 4x smaller output.
// A ReLU right after a dense layer is `applied_before` (see fuse_dense_relu): that layer's GEMM
// epilogue applied it, so its input already is h. A ReLU right before a dense layer is
// `backward_after` (see fuse_relu_dense): that layer's dX GEMM applied its backward, so its
// backward passes the gradient through.
template <typename T>
struct ActivationOp : PlanOp<T> {
  Activation act;
  bool deferred = false;
  bool applied_before = false;
  bool backward_after = false;
  bool applied_by_conv = false;  // this evaluation call: the conv's epilogue applied it (fuse_conv_bn_eval)
  const T* h_ = nullptr;
  std::vector<T> y_, dx_;

  void reserve(int64_t rows, bool training) override {
    if (deferred) return;
    if (!applied_before) grow(y_, rows, this->out_numel, "an activation output");
    if (training && this->need_dx && !backward_after) grow(dx_, rows, this->in_numel, "an activation gradient");
  }
  const T* forward(const T* x, int64_t m, bool) override {
    if (deferred) return x;
    if (applied_before || applied_by_conv) return h_ = x;
    activation_forward<T>(y_.data(), x, m * this->out_numel, act);
    return h_ = y_.data();
  }
  const T* backward(const T* dy, int64_t m) override {
    if (deferred || backward_after) return dy;
    activation_backward<T>(dx_.data(), dy, h_, m * this->in_numel, act);
    return dx_.data();
  }

  // (a deferred ReLU is not row-local: the pooling after it applies it)
  bool row_local() const override { return !deferred; }
  const T* bind_forward(const T* x) override { return h_ = applied_before ? x : y_.data(); }
  void forward_rows(const T* x, int64_t r0, int64_t r1) override {
    const int64_t w = this->out_numel;
    if (!applied_before) activation_forward<T>(y_.data() + r0 * w, x + r0 * w, (r1 - r0) * w, act);
  }
  T* bind_backward(const T* dy) override { return backward_after ? const_cast<T*>(dy) : dx_.data(); }
  void backward_rows(const T* dy, int64_t r0, int64_t r1) override {
    const int64_t w = this->in_numel;
    if (!backward_after) activation_backward<T>(dx_.data() + r0 * w, dy + r0 * w, h_ + r0 * w, (r1 - r0) * w, act);
  }
  void describe(std::string& s, const std::string& indent) const override {
    s += indent + this->label + (deferred ? " [applied to the next op's pooled output]" : "") +
         (applied_before ? " [applied in the previous op's GEMM epilogue]" : "") +
         (backward_after ? " [its backward applied in the next op's dX GEMM epilogue]" : "") + "\n";
  }
};

// ---- Dropout (layers/dropout.py): a training call with p > 0 draws the mask of kernel seed
// call_seed(seed, counter) and advances the layer's counter; otherwise the identity.
template <typename T>
struct DropoutOp : PlanOp<T> {
  double p;
  uint64_t seed;
  int64_t* counter;  // the layer's 0-d int64 buffer
  bool active_ = false;
  std::vector<T> y_, dx_;
  std::vector<uint8_t> mask_;

  void reserve(int64_t rows, bool training) override {
    if (!training || p == 0.0) return;
    grow(y_, rows, this->out_numel, "a dropout output");
    grow(mask_, rows, this->out_numel, "a dropout mask");
    if (this->need_dx) grow(dx_, rows, this->in_numel, "a dropout gradient");
  }
  const T* forward(const T* x, int64_t m, bool training) override {
    active_ = training && p != 0.0;
    if (!active_) return x;
    const uint64_t call_seed = dropout_call_seed(seed, static_cast<uint64_t>(*counter));
    dropout_forward<T>(y_.data(), mask_.data(), x, m * this->out_numel, p, call_seed);
    ++*counter;
    return y_.data();
  }
  const T* backward(const T* dy, int64_t m) override {
    if (!active_) return dy;
    dropout_backward<T>(dx_.data(), dy, mask_.data(), m * this->in_numel, p);
    return dx_.data();
  }
};

// ---- Flatten (layers/shape.py): a reshape, no data moves.
template <typename T>
struct FlattenOp : PlanOp<T> {
  const T* forward(const T* x, int64_t, bool) override { return x; }
  const T* backward(const T* dy, int64_t) override { return dy; }
  bool row_local() const override { return true; }
  T* bind_backward(const T* dy) override { return const_cast<T*>(dy); }
};

// ---- MaxPool2D / AvgPool2D (layers/conv.py). relu_after: the ReLU before this max-pooling was
// deferred to here, y = relu(maxpool(x)) (see fuse_relu_maxpool). pooled_by_conv: this call's
// y and argmax were written by the convolution before it (see fuse_conv_maxpool), which it then
// passes on.
template <typename T>
struct Pool2dOp : PlanOp<T> {
  bool max;
  bool relu_after = false;
  bool pooled_by_conv = false;
  int64_t kH, kW, sh, sw, ph, pw;
  Pool2dShape s_{};
  std::vector<T> y_, dx_;
  std::vector<int64_t> argmax_;

  Pool2dShape shape(int64_t m) const {
    return make_pool2d_shape(m, this->in[0], this->in[1], this->in[2], kH, kW, sh, sw, ph, pw);
  }
  void reserve(int64_t rows, bool training) override {
    grow(y_, rows, this->out_numel, "a pooling output");
    if (max) grow(argmax_, rows, this->out_numel, "a max-pool argmax");
    if (training && this->need_dx) grow(dx_, rows, this->in_numel, "a pooling gradient");
  }
  const T* forward(const T* x, int64_t m, bool) override {
    if (s_.N != m) s_ = shape(m);
    if (pooled_by_conv) return y_.data();
    if (max) maxpool2d_forward<T>(y_.data(), argmax_.data(), x, s_);
    else avgpool2d_forward<T>(y_.data(), x, s_);
    if (relu_after) activation_forward<T>(y_.data(), y_.data(), m * this->out_numel, Activation::ReLU);
    return y_.data();
  }
  const T* backward(const T* dy, int64_t m) override {
    if (s_.N != m) s_ = shape(m);
    // relu_after is set only on a max-pooling (fuse_relu_maxpool): maxpool2d_backward applies
    // the ReLU's mask, y_ > 0, in the pooling's own pass over dY
    if (!max) {
      if (relu_after) throw std::logic_error(this->label + ": a ReLU fused into an average pooling");
      avgpool2d_backward<T>(dx_.data(), dy, s_);
    } else if (!maxpool2d_backward<T>(dx_.data(), dy, argmax_.data(), s_, relu_after ? y_.data() : nullptr)) {
      throw std::runtime_error(this->label + ": argmax holds an index outside the input plane");
    }
    return dx_.data();
  }
};

// ---- BatchNorm1D / BatchNorm2D (layers/normalization.py): training normalises with the batch
// statistics and updates the layer's running_mean / running_var in place; evaluation uses them.
template <typename T>
struct BatchNormOp : PlanOp<T> {
  T *gamma, *beta, *dgamma, *dbeta, *running_mean, *running_var;
  int64_t C, S;
  double eps, momentum;
  bool applied_by_conv = false;  // this evaluation call: the conv before it applied it (fuse_conv_bn_eval)

  // evaluation needs a running_var >= 0 (its square root); the message names this op
  void check_running_var() const {
    for (int64_t c = 0; c < C; ++c)
      if (!(running_var[c] >= 0)) throw std::invalid_argument(this->label + ": running_var must be >= 0");
  }
  const T* x_ = nullptr;
  std::vector<T> y_, dx_, mean_, invstd_;

  void reserve(int64_t rows, bool training) override {
    grow(y_, rows, this->out_numel, "a batch-norm output");
    grow(mean_, 1, C, "batch-norm statistics");
    grow(invstd_, 1, C, "batch-norm statistics");
    if (training && this->need_dx) grow(dx_, rows, this->in_numel, "a batch-norm gradient");
  }
  const T* forward(const T* x, int64_t m, bool training) override {
    if (!training && applied_by_conv) return x;
    if (training) {
      if (m * S < 2)
        throw std::invalid_argument(this->label + ": training needs more than one value per channel to estimate "
                                    "a variance, got a batch of " + std::to_string(m) + " of shape " +
                                    dims_str(this->in) + " (use a larger batch, or eval mode)");
      x_ = x;
      batchnorm_forward_train<T>(y_.data(), mean_.data(), invstd_.data(), running_mean, running_var, x, gamma, beta,
                                 m, C, S, eps, momentum);
    } else {
      check_running_var();
      batchnorm_forward_eval<T>(y_.data(), x, gamma, beta, running_mean, running_var, m, C, S, eps);
    }
    return y_.data();
  }
  const T* backward(const T* dy, int64_t m) override {
    T* dx = this->need_dx ? dx_.data() : nullptr;
    batchnorm_backward<T>(dx, dgamma, dbeta, dy, x_, mean_.data(), invstd_.data(), gamma, m, C, S, true);
    return dx;
  }
};

// ---- Conv2D (layers/conv.py): conv2d_forward / conv2d_backward, db only with a bias.
template <typename T>
struct Conv2dOp : PlanOp<T> {
  T *W, *b, *dW, *db;
  int64_t K, Cw, kH, kW, sh, sw, ph, pw, dh, dw, groups;
  Pool2dOp<T>* pool_after = nullptr;  // the 2x2 max-pooling this conv's pass may fill (fuse_conv_maxpool)
  BatchNormOp<T>* bn_after = nullptr;  // evaluation: the batch norm (and ReLU) its epilogue applies
  ActivationOp<T>* relu_after = nullptr;  // (fuse_conv_bn_eval)
  std::vector<double> bn_scale_, bn_shift_;
  const T* x_ = nullptr;
  Conv2dShape s_{};
  std::vector<T> y_, dx_;

  Conv2dShape shape(int64_t m) const {
    return make_conv2d_shape(m, this->in[0], this->in[1], this->in[2], K, Cw, kH, kW, sh, sw, ph, pw, dh, dw,
                             groups);
  }
  void reserve(int64_t rows, bool training) override {
    grow(y_, rows, this->out_numel, "a conv2d output");
    if (training && this->need_dx) grow(dx_, rows, this->in_numel, "a conv2d input gradient");
  }
  const T* forward(const T* x, int64_t m, bool training) override {
    if (s_.N != m) s_ = shape(m);
    x_ = x;
    if (bn_after) {
      bn_after->applied_by_conv = !training;
      if (relu_after) relu_after->applied_by_conv = !training;
      if (!training) {
        BatchNormOp<T>& bn = *bn_after;
        bn.check_running_var();
        bn_scale_.resize(static_cast<size_t>(K));
        bn_shift_.resize(static_cast<size_t>(K));
        batchnorm_eval_affine<T>(bn_scale_.data(), bn_shift_.data(), bn.gamma, bn.beta, bn.running_mean,
                                 bn.running_var, K, bn.eps);
        const ConvEvalEpilogue ep{bn_scale_.data(), bn_shift_.data(), relu_after != nullptr};
        conv2d_forward<T>(y_.data(), x, W, b, s_, &ep);
        return y_.data();
      }
    }
    if (pool_after) {
      Pool2dOp<T>& pool = *pool_after;
      if (pool.s_.N != m) pool.s_ = pool.shape(m);
      pool.pooled_by_conv =
          conv2d_maxpool_forward<T>(pool.y_.data(), pool.argmax_.data(), x, W, b, s_, pool.relu_after);
      if (pool.pooled_by_conv) return y_.data();  // not written: the pooling does not read it this call
    }
    conv2d_forward<T>(y_.data(), x, W, b, s_);
    return y_.data();
  }
  const T* backward(const T* dy, int64_t m) override {
    if (s_.N != m) s_ = shape(m);
    T* dx = this->need_dx ? dx_.data() : nullptr;
    conv2d_backward<T>(dx, dW, db, dy, x_, W, s_);
    return dx;
  }
  void describe(std::string& s, const std::string& indent) const override {
    const char* pooled = pool_after ? " [with the max-pooling below in one pass, where conv_pool.h applies]" : "";
    const char* normed = !bn_after ? ""
                         : relu_after ? " [evaluation: the batch norm and ReLU below in its epilogue]"
                                      : " [evaluation: the batch norm below in its epilogue]";
    s += indent + this->label + pooled + normed + "\n";
  }
};

// ---- GlobalAvgPool2D (layers/conv.py): (C, H, W) -> (C,).
template <typename T>
struct GlobalAvgPoolOp : PlanOp<T> {
  std::vector<T> y_, dx_;
  void reserve(int64_t rows, bool training) override {
    grow(y_, rows, this->out_numel, "a global pooling output");
    if (training && this->need_dx) grow(dx_, rows, this->in_numel, "a global pooling gradient");
  }
  const T* forward(const T* x, int64_t m, bool) override {
    global_avgpool_forward<T>(y_.data(), x, m, this->in[0], this->in[1] * this->in[2]);
    return y_.data();
  }
  const T* backward(const T* dy, int64_t m) override {
    global_avgpool_backward<T>(dx_.data(), dy, m, this->in[0], this->in[1] * this->in[2]);
    return dx_.data();
  }
};

// ---- Residual (layers/container.py): y = x + f(x) by the residual kernel; dx = dy + df^T(dy).
template <typename T>
struct ResidualOp : PlanOp<T> {
  std::vector<OpPtr<T>> branch;
  std::vector<T> y_, dx_;

  void reserve(int64_t rows, bool training) override {
    for (auto& op : branch) op->reserve(rows, training);
    grow(y_, rows, this->out_numel, "a residual output");
    if (training && this->need_dx) grow(dx_, rows, this->in_numel, "a residual gradient");
  }
  const T* forward(const T* x, int64_t m, bool training) override {
    const T* h = x;
    for (auto& op : branch) h = op->forward(h, m, training);
    add_forward<T>(y_.data(), x, h, m * this->out_numel);
    return y_.data();
  }
  const T* backward(const T* dy, int64_t m) override {
    const T* g = dy;
    for (auto it = branch.rbegin(); it != branch.rend() && (*it)->runs_backward(); ++it) g = (*it)->backward(g, m);
    if (!this->need_dx) return nullptr;
    add_forward<T>(dx_.data(), dy, g, m * this->in_numel);
    return dx_.data();
  }
  void mark(bool need_dx_in) override {
    this->need_dx = need_dx_in;
    bool seen = need_dx_in;
    for (auto& op : branch) {
      op->mark(seen);
      seen = seen || op->has_params;
    }
  }
  void describe(std::string& s, const std::string& indent) const override {
    s += indent + this->label + "\n";
    for (const auto& op : branch) op->describe(s, indent + "  ");
  }
};

// f(ops[i], ops[i + 1]) for every adjacent pair of an op list and of its residual branches: the
// pairs the fusions below look at.
template <typename T, typename F>
void adjacent_pairs(std::vector<OpPtr<T>>& ops, const F& f) {
  for (size_t i = 0; i < ops.size(); ++i) {
    if (auto* res = dynamic_cast<ResidualOp<T>*>(ops[i].get())) adjacent_pairs<T>(res->branch, f);
    if (i + 1 < ops.size()) f(ops[i].get(), ops[i + 1].get());
  }
}

// A ReLU followed by a max-pooling becomes relu(maxpool(x)): max commutes with the monotone
// ReLU, so the pooled values are the same, and the ReLU and its mask then run on the pooled
// output, a quarter of the size for 2x2 pooling, instead of on the whole conv output (issue 12:
// "the ReLU mask with the pool"). The bits are the layer loop's, for any window, stride and
// padding:
//   * a window whose max is > 0 or NaN: the same winner, the first maximum (or the first NaN) in
//     window order, since the ReLU changes neither those values nor their order;
//   * a window whose max is <= 0: the layer loop pools zeros and the ReLU mask then zeroes the
//     gradient; here the ReLU of the pooled value is the same +0 and its mask zeroes the
//     gradient before the scatter, so the winner, which may differ, receives +0 either way;
//   * overlapping windows: an input position that wins a window with max > 0 has a positive
//     value, so the layer loop's mask keeps every gradient summed into it, in the same order.
// Only adjacent ops of one op list fuse: nothing else reads the ReLU's output.
template <typename T>
void fuse_relu_maxpool(std::vector<OpPtr<T>>& ops) {
  adjacent_pairs<T>(ops, [](PlanOp<T>* first, PlanOp<T>* second) {
    auto* act = dynamic_cast<ActivationOp<T>*>(first);
    auto* pool = dynamic_cast<Pool2dOp<T>*>(second);
    if (act && pool && act->act == Activation::ReLU && pool->max) act->deferred = pool->relu_after = true;
  });
}

// A convolution followed by a 2x2, stride-2, unpadded max-pooling, with or without a ReLU
// between them (deferred to the pooling by fuse_relu_maxpool), writes the pooled output and its
// arg-max in the pass that computes it, where conv2d_maxpool_forward applies (conv_pool.h: few
// input channels, the im2col algorithm, AVX2 or AVX-512): the bits of the conv, pooling and ReLU
// kernels, without the conv output's round trip through memory. The backward passes are
// unchanged: the pooling's reads the arg-max and the pooled output, the conv's X and dY. Where
// the kernel does not apply (checked every call: the SIMD level and a forced algorithm may
// change between calls), the ops run as before. (Run after fuse_relu_maxpool.)
template <typename T>
void fuse_conv_maxpool(std::vector<OpPtr<T>>& ops) {
  for (size_t i = 0; i < ops.size(); ++i) {
    if (auto* res = dynamic_cast<ResidualOp<T>*>(ops[i].get())) fuse_conv_maxpool<T>(res->branch);
    auto* conv = dynamic_cast<Conv2dOp<T>*>(ops[i].get());
    if (!conv) continue;
    size_t j = i + 1;
    if (j < ops.size())
      if (auto* act = dynamic_cast<ActivationOp<T>*>(ops[j].get()); act && act->deferred) ++j;
    auto* pool = j < ops.size() ? dynamic_cast<Pool2dOp<T>*>(ops[j].get()) : nullptr;
    // the geometry conv_maxpool_applies asks for that cannot change; the rest it checks per call
    const bool few_taps = conv->groups == 1 && conv->sh == 1 && conv->sw == 1 && conv->dh == 1 && conv->dw == 1 &&
                          conv->Cw * conv->kH * conv->kW <= kConvPoolMaxTaps;
    if (few_taps && pool && pool->max && pool->kH == 2 && pool->kW == 2 && pool->sh == 2 && pool->sw == 2 &&
        pool->ph == 0 && pool->pw == 0)
      conv->pool_after = pool;
  }
}

// In evaluation, a convolution followed by a batch norm over its channels, and a ReLU after that,
// applies both as it writes each image's output, while it is in cache (conv2d.h,
// ConvEvalEpilogue): the bits of the three kernels, without two passes over the output. Training
// runs the three ops as before (the batch statistics need the whole batch's output). A ReLU
// deferred to a max-pooling stays there. (Run after fuse_relu_maxpool.)
template <typename T>
void fuse_conv_bn_eval(std::vector<OpPtr<T>>& ops) {
  for (size_t i = 0; i < ops.size(); ++i) {
    if (auto* res = dynamic_cast<ResidualOp<T>*>(ops[i].get())) fuse_conv_bn_eval<T>(res->branch);
    auto* conv = dynamic_cast<Conv2dOp<T>*>(ops[i].get());
    auto* bn = i + 1 < ops.size() ? dynamic_cast<BatchNormOp<T>*>(ops[i + 1].get()) : nullptr;
    if (!conv || !bn || bn->C != conv->K) continue;
    conv->bn_after = bn;
    auto* act = i + 2 < ops.size() ? dynamic_cast<ActivationOp<T>*>(ops[i + 2].get()) : nullptr;
    if (act && act->act == Activation::ReLU && !act->deferred) conv->relu_after = act;
  }
}

// A ReLU right after a dense layer runs in that layer's GEMM epilogue (gemm_bias_act), which
// writes relu(x W + b) in the one pass that writes x W + b: the bits of the two ops (the test
// test_dense.py::test_dense_forward_epilogue_gives_the_bits_of_the_three_passes), without the
// ReLU's pass over the output and its buffer. The ReLU's backward still runs, on that output.
// (Run after fuse_relu_maxpool: a ReLU deferred to a pooling stays there.)
template <typename T>
void fuse_dense_relu(std::vector<OpPtr<T>>& ops) {
  adjacent_pairs<T>(ops, [](PlanOp<T>* first, PlanOp<T>* second) {
    auto* dense = dynamic_cast<DenseOp<T>*>(first);
    auto* act = dynamic_cast<ActivationOp<T>*>(second);
    if (dense && act && act->act == Activation::ReLU && !act->deferred)
      dense->relu_after = act->applied_before = true;
  });
}

// The mirror image in the backward pass: a ReLU right before a dense layer that computes dX
// has its backward, dz = h > 0 ? dh : 0, applied in that layer's dX GEMM epilogue (gemm.h,
// gemm_relu_mask), h being the dense layer's input x itself: the bits of the two passes
// (tests/test_plan.py), without the ReLU's pass over dX and its buffer. Measured on
// Zen 3, 1 thread: the ReLU's backward was 2.6-3.3 % of the spiral net's fit() (c).
template <typename T>
void fuse_relu_dense(std::vector<OpPtr<T>>& ops) {
  adjacent_pairs<T>(ops, [](PlanOp<T>* first, PlanOp<T>* second) {
    auto* act = dynamic_cast<ActivationOp<T>*>(first);
    auto* dense = dynamic_cast<DenseOp<T>*>(second);
    if (act && dense && act->act == Activation::ReLU && !act->deferred && dense->need_dx)
      act->backward_after = dense->relu_before = true;
  });
}

template <typename T>
void set_shapes(PlanOp<T>& op, const Dims& in, Dims out) {
  op.in = in;
  op.out = std::move(out);
  op.in_numel = numel(op.in, "an op's input");
  op.out_numel = numel(op.out, "an op's output");
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Building

template <typename T>
Plan<T>::Plan(Dims input) : input_(std::move(input)) {
  if (input_.empty()) throw std::invalid_argument("the input shape (without the batch axis) must not be empty");
  for (int64_t d : input_)
    if (d < 1) throw std::invalid_argument("the input shape " + dims_str(input_) + " has a size below 1");
  numel(input_, "the input");
  building_.push_back(&ops_);
  shapes_.push_back(input_);
}

template <typename T>
Plan<T>::~Plan() = default;

template <typename T>
void Plan<T>::add(std::unique_ptr<PlanOp<T>> op) {
  shapes_.back() = op->out;
  building_.back()->push_back(std::move(op));
}

template <typename T>
T* Plan<T>::add_param(T* w, T* g, int64_t n, const std::string& name, PlanOp<T>* owner, bool dense_weight) {
  if (!w || !g) throw std::invalid_argument(name + ": a parameter needs its value and gradient arrays");
  PlanParam<T> p;
  p.w = w;
  p.g = g;
  p.n = n;
  p.name = name;
  p.owner = owner;
  p.dense_weight = dense_weight;
  params_.push_back(p);
  return w;
}

namespace {
std::string op_label(size_t depth, size_t index, const std::string& what) {
  return "op " + std::to_string(index) + (depth > 1 ? " of a residual branch" : "") + " (" + what + ")";
}
}  // namespace

template <typename T>
void Plan<T>::check_building() const {
  if (finalized_) throw std::logic_error("the plan has already run: ops cannot be added any more");
}

template <typename T>
void Plan<T>::dense(T* W, T* b, T* dW, T* db, int64_t n_in, int64_t n_out) {
  check_building();
  auto op = std::make_unique<DenseOp<T>>();
  op->label = op_label(building_.size(), building_.back()->size(),
                          "dense " + std::to_string(n_in) + "->" + std::to_string(n_out));
  const Dims& in = shapes_.back();
  if (in.size() != 1 || in[0] != n_in)
    throw std::invalid_argument(op->label + ": expects inputs of shape (" + std::to_string(n_in) + ",), got " +
                                dims_str(in) + (in.size() != 1 ? "; put a flatten before it" : ""));
  if (n_out < 1) throw std::invalid_argument(op->label + ": needs at least one output");
  if ((b == nullptr) != (db == nullptr)) throw std::invalid_argument(op->label + ": b and db come together");
  set_shapes(*op, in, {n_out});
  if (!b) {
    zero_bias_.emplace_back(static_cast<size_t>(n_out), T(0));  // dense_forward always adds a bias
    b = zero_bias_.back().data();
  }
  op->W = add_param(W, dW, checked_mul(n_in, n_out, "a dense weight"), op->label + ".W", op.get(), true);
  params_.back().cols = n_out;
  op->b = b;
  op->dW = dW;
  op->db = db;
  if (db) add_param(b, db, n_out, op->label + ".b", op.get());
  op->n_in = n_in;
  op->n_out = n_out;
  op->has_params = true;
  add(std::move(op));
}

template <typename T>
void Plan<T>::activation(Activation act) {
  check_building();
  auto op = std::make_unique<ActivationOp<T>>();
  op->label = op_label(building_.size(), building_.back()->size(), std::string("activation ") + activation_name(act));
  op->act = act;
  set_shapes(*op, shapes_.back(), shapes_.back());
  add(std::move(op));
}

template <typename T>
void Plan<T>::dropout(double p, uint64_t seed, int64_t* counter) {
  check_building();
  auto op = std::make_unique<DropoutOp<T>>();
  op->label = op_label(building_.size(), building_.back()->size(), "dropout p=" + std::to_string(p));
  if (!(p >= 0.0 && p < 1.0)) throw std::invalid_argument(op->label + ": p must be in [0, 1)");
  if (!counter || *counter < 0) throw std::invalid_argument(op->label + ": the call counter must be >= 0");
  op->p = p;
  op->seed = seed;
  op->counter = counter;
  set_shapes(*op, shapes_.back(), shapes_.back());
  add(std::move(op));
}

template <typename T>
void Plan<T>::flatten() {
  check_building();
  auto op = std::make_unique<FlattenOp<T>>();
  op->label = op_label(building_.size(), building_.back()->size(), "flatten");
  set_shapes(*op, shapes_.back(), {numel(shapes_.back(), "flatten's output")});
  add(std::move(op));
}

template <typename T>
void Plan<T>::conv2d(T* W, T* b, T* dW, T* db, int64_t K, int64_t Cw, int64_t kH, int64_t kW, int64_t sh,
                     int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw, int64_t groups) {
  check_building();
  auto op = std::make_unique<Conv2dOp<T>>();
  op->label = op_label(building_.size(), building_.back()->size(), "conv2d ->" + std::to_string(K));
  const Dims& in = shapes_.back();
  if (in.size() != 3)
    throw std::invalid_argument(op->label + ": expects (C, H, W) inputs, got " + dims_str(in));
  if ((b == nullptr) != (db == nullptr)) throw std::invalid_argument(op->label + ": b and db come together");
  op->K = K, op->Cw = Cw, op->kH = kH, op->kW = kW, op->sh = sh, op->sw = sw, op->ph = ph, op->pw = pw;
  op->dh = dh, op->dw = dw, op->groups = groups;
  op->in = in;
  Conv2dShape s;
  try {
    s = op->shape(1);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(op->label + ": " + e.what());
  }
  set_shapes(*op, in, {K, s.Ho, s.Wo});
  op->W = add_param(W, dW, numel({K, Cw, kH, kW}, "a conv2d weight"), op->label + ".W", op.get());
  op->b = b;
  op->dW = dW;
  op->db = db;
  if (db) add_param(b, db, K, op->label + ".b", op.get());
  op->has_params = true;
  add(std::move(op));
}

namespace {
template <typename T>
std::unique_ptr<Pool2dOp<T>> make_pool(bool max, const Dims& in, const std::string& label, int64_t kH, int64_t kW,
                                       int64_t sh, int64_t sw, int64_t ph, int64_t pw) {
  auto op = std::make_unique<Pool2dOp<T>>();
  op->label = label;
  if (in.size() != 3) throw std::invalid_argument(label + ": expects (C, H, W) inputs, got " + dims_str(in));
  op->max = max, op->kH = kH, op->kW = kW, op->sh = sh, op->sw = sw, op->ph = ph, op->pw = pw;
  op->in = in;
  Pool2dShape s;
  try {
    s = op->shape(1);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(label + ": " + e.what());
  }
  set_shapes(*op, in, {in[0], s.Ho, s.Wo});
  return op;
}
}  // namespace

template <typename T>
void Plan<T>::maxpool2d(int64_t kH, int64_t kW, int64_t sh, int64_t sw, int64_t ph, int64_t pw) {
  check_building();
  add(make_pool<T>(true, shapes_.back(), op_label(building_.size(), building_.back()->size(), "maxpool2d"), kH, kW,
                   sh, sw, ph, pw));
}

template <typename T>
void Plan<T>::avgpool2d(int64_t kH, int64_t kW, int64_t sh, int64_t sw, int64_t ph, int64_t pw) {
  check_building();
  add(make_pool<T>(false, shapes_.back(), op_label(building_.size(), building_.back()->size(), "avgpool2d"), kH, kW,
                   sh, sw, ph, pw));
}

template <typename T>
void Plan<T>::global_avgpool2d() {
  check_building();
  auto op = std::make_unique<GlobalAvgPoolOp<T>>();
  op->label = op_label(building_.size(), building_.back()->size(), "global_avgpool2d");
  const Dims& in = shapes_.back();
  if (in.size() != 3) throw std::invalid_argument(op->label + ": expects (C, H, W) inputs, got " + dims_str(in));
  set_shapes(*op, in, {in[0]});
  add(std::move(op));
}

template <typename T>
void Plan<T>::batchnorm(T* gamma, T* beta, T* dgamma, T* dbeta, T* running_mean, T* running_var, int64_t C,
                        double eps, double momentum) {
  check_building();
  auto op = std::make_unique<BatchNormOp<T>>();
  op->label = op_label(building_.size(), building_.back()->size(), "batchnorm " + std::to_string(C));
  const Dims& in = shapes_.back();
  if ((in.size() != 1 && in.size() != 3) || in[0] != C)
    throw std::invalid_argument(op->label + ": expects (" + std::to_string(C) + ",) or (" + std::to_string(C) +
                                ", H, W) inputs, got " + dims_str(in));
  if (!(eps > 0) || !std::isfinite(eps)) throw std::invalid_argument(op->label + ": eps must be finite and > 0");
  if (!(momentum >= 0 && momentum <= 1)) throw std::invalid_argument(op->label + ": momentum must be in [0, 1]");
  if (!running_mean || !running_var) throw std::invalid_argument(op->label + ": needs its running statistics");
  set_shapes(*op, in, in);
  op->gamma = add_param(gamma, dgamma, C, op->label + ".gamma", op.get());
  op->beta = add_param(beta, dbeta, C, op->label + ".beta", op.get());
  op->dgamma = dgamma, op->dbeta = dbeta, op->running_mean = running_mean, op->running_var = running_var;
  op->C = C;
  op->S = op->in_numel / C;
  op->eps = eps;
  op->momentum = momentum;
  op->has_params = true;
  add(std::move(op));
}

template <typename T>
void Plan<T>::begin_residual() {
  check_building();
  auto op = std::make_unique<ResidualOp<T>>();
  op->label = op_label(building_.size(), building_.back()->size(), "residual");
  set_shapes(*op, shapes_.back(), shapes_.back());
  OpList* list = building_.back();
  list->push_back(std::move(op));
  building_.push_back(&static_cast<ResidualOp<T>*>(list->back().get())->branch);
  shapes_.push_back(shapes_.back());
}

template <typename T>
void Plan<T>::end_residual() {
  check_building();
  if (building_.size() < 2) throw std::logic_error("end_residual() without begin_residual()");
  const Dims fx = shapes_.back();
  building_.pop_back();
  shapes_.pop_back();
  auto* res = static_cast<ResidualOp<T>*>(building_.back()->back().get());
  if (fx != res->in)
    throw std::invalid_argument(res->label + ": the branch maps shape " + dims_str(res->in) + " to " + dims_str(fx) +
                                "; it must keep the shape");
  for (const auto& op : res->branch) res->has_params = res->has_params || op->has_params;
}

template <typename T>
const Dims& Plan<T>::output_dims() const {
  return shapes_.front();
}

template <typename T>
void Plan<T>::set_loss(LossKind kind, const T* class_weights) {
  check_building();
  const Dims& out = shapes_.front();
  if (building_.size() != 1) throw std::logic_error("set_loss(): a residual is still open");
  if (out.size() != 1)
    throw std::invalid_argument("the loss needs (m, K) outputs, but the last op gives " + dims_str(out) +
                                " per example");
  loss_ = kind;
  has_class_weights_ = class_weights != nullptr;
  if (class_weights && kind != LossKind::cross_entropy)
    throw std::invalid_argument("class weights belong to the cross-entropy loss");
  if (class_weights) class_weights_.assign(class_weights, class_weights + out[0]);
  loss_set_ = true;
}

template <typename T>
void Plan<T>::set_optimizer(OptimizerKind kind, const std::vector<T*>& v, const std::vector<T*>& s,
                            const std::vector<bool>& decay, bool l2_in_backward) {
  check_building();
  const size_t n = params_.size();
  if (v.size() != n || s.size() != n || decay.size() != n)
    throw std::invalid_argument("the optimizer needs state for all " + std::to_string(n) + " parameters");
  for (size_t i = 0; i < n; ++i) {
    const std::string at = "[" + std::to_string(i) + "] (" + params_[i].name + ")";
    if (optimizer_uses_v(kind) && !v[i])
      throw std::invalid_argument("v" + at + ": optimizer '" + optimizer_kind_name(kind) + "' needs its v array");
    if (optimizer_uses_s(kind) && !s[i])
      throw std::invalid_argument("s" + at + ": optimizer '" + optimizer_kind_name(kind) + "' needs its s array");
    params_[i].v = optimizer_uses_v(kind) ? v[i] : nullptr;
    params_[i].s = optimizer_uses_s(kind) ? s[i] : nullptr;
    params_[i].decay = decay[i];
    if (l2_in_backward && decay[i] && !params_[i].dense_weight)
      throw std::invalid_argument("decay" + at + ": with l2_in_backward only dense weights can be decayed (their "
                                  "L2 gradient enters in the dense backward pass)");
  }
  for (auto& p : params_)
    if (l2_in_backward && p.decay) p.owner->take_l2_in_backward(&l2_);
  l2_in_backward_ = l2_in_backward;
  opt_ = kind;
  optimizer_set_ = true;
}

template <typename T>
std::string Plan<T>::describe() const {
  std::string s = "input " + dims_str(input_) + "\n";
  for (const auto& op : ops_) op->describe(s, "");
  s += "output " + dims_str(shapes_.front());
  return s;
}

// ---------------------------------------------------------------------------------------------
// Running

template <typename T>
void Plan<T>::finalize() {
  if (finalized_) return;
  if (building_.size() != 1) throw std::logic_error("a residual is still open (end_residual() missing)");
  bool seen = false;  // an op with parameters before this one: its input gradient is needed
  for (auto& op : ops_) {
    op->mark(seen);
    seen = seen || op->has_params;
  }
  fuse_relu_maxpool(ops_);
  fuse_conv_maxpool(ops_);
  fuse_conv_bn_eval(ops_);
  fuse_dense_relu(ops_);
  fuse_relu_dense(ops_);
  row_split_ok_ = true;
  for (const auto& op : ops_) row_split_ok_ = row_split_ok_ && op->row_local();
  dense_weights_ = 0;
  for (const auto& p : params_)
    if (p.dense_weight) dense_weights_ += p.n;
  split_in_.reserve(ops_.size());
  split_run_.reserve(ops_.size());
  // A dense W that another parameter shares (the same layer twice) keeps the separate update:
  // fused, its first update would change the W the other op's backward still reads.
  for (auto& p : params_) {
    p.fusable = p.dense_weight;
    for (const auto& q : params_)
      if (&q != &p && q.w == p.w) p.fusable = false;
  }
  fused_.assign(params_.size(), GemmTileUpdate<T>{});
  finalized_ = true;
}

template <typename T>
void Plan<T>::reserve(int64_t rows, bool training) {
  int64_t& cap = training ? capacity_train_ : capacity_eval_;
  if (rows <= cap) return;
  for (auto& op : ops_) op->reserve(rows, training);
  if (training) {
    const int64_t K = shapes_.front()[0];
    grow(dout_, rows, K, "the loss gradient");
    if (loss_ == LossKind::cross_entropy) grow(probs_, rows, K, "the softmax probabilities");
  }
  cap = rows;
}

// The row split (plan.h, row_split). A network of dense layers and activations is row-local from
// end to end: row r of every activation, and of every input gradient, depends on row r of the
// batch alone. So each thread takes a share of the rows through the whole forward pass, and
// through the whole chain of input gradients, one pool region each; only the weight and bias
// gradients sum over the rows, and they are split by their own rows and columns in a third
// region, after the whole batch's gradients are written (and after every dX has read W, which a
// fused update then changes). Op by op, a step made one region per product and per element-wise
// pass, about 20 for (a) 784-500-100-50-25-10, and the products from 100 x 50 down ran on one
// thread (below kMinWorkPerThread) while the other waited. Every element is computed by the same
// kernel on the same operands as op by op (each GEMM element one FMA chain over the same k, each
// column sum in row order), so the bits do not change.
template <typename T>
int64_t Plan<T>::row_split_grain() const {
  // at least ~2^17 multiply-adds a chunk, as the GEMM driver asks of a thread (gemm.cpp)
  return (int64_t(1) << 17) / (dense_weights_ + 1) + 1;
}

template <typename T>
bool Plan<T>::use_row_split(int64_t m) const {
  return row_split_ && row_split_ok_ && dense_weights_ * static_cast<int64_t>(sizeof(T)) <= kRowSplitMaxBytes &&
         plan_chunks(m, row_split_grain()) > 1;
}

template <typename T>
const T* Plan<T>::run_forward(const T* X, int64_t m, bool training) {
  if (use_row_split(m)) {
    std::vector<const T*>& in = split_in_;
    in.clear();
    const T* h = X;
    for (auto& op : ops_) {
      in.push_back(h);
      h = op->bind_forward(h);
    }
    parallel_for(m, row_split_grain(), [&](int64_t r0, int64_t r1, int) {
      for (size_t i = 0; i < ops_.size(); ++i) ops_[i]->forward_rows(in[i], r0, r1);
    });
    return h;
  }
  const T* h = X;
  for (auto& op : ops_) h = op->forward(h, m, training);
  return h;
}

template <typename T>
PlanStepResult Plan<T>::forward_and_loss(const T* X, int64_t m, const PlanTargets<T>& y, double weight_decay,
                                         bool want_psi) {
  PlanStepResult r;
  const int64_t K = shapes_.front()[0];
  const T* z = last_output_ = run_forward(X, m, true);

  // The L2 penalty at the weights this batch's gradient is taken at (Optimizer.penalty).
  if (want_psi || weight_decay != 0.0) {
    for (const auto& p : params_)
      if (p.decay) r.psi += sum_of_squares<T>(p.w, p.n);
    r.penalty = 0.5 * weight_decay * r.psi;
  }
  const T* cw = has_class_weights_ ? class_weights_.data() : nullptr;
  switch (loss_) {
    case LossKind::cross_entropy: r.data_loss = softmax_cross_entropy_forward<T>(probs_.data(), z, y.labels, cw, m, K); break;
    case LossKind::mse: r.data_loss = mse_forward<T>(z, y.values, m, K, true); break;
    case LossKind::bce_with_logits: r.data_loss = bce_with_logits_forward<T>(z, y.values, m, K, true); break;
  }
  // Loss.accuracy: argmax against labels, or (z > 0) against (t >= 0.5) elementwise.
  if (y.acc_labels) {
    r.correct = 0;
    for (int64_t i = 0; i < m; ++i) r.correct += row_argmax(z + i * K, K) == y.acc_labels[i];
  } else if (y.acc_mask) {
    r.correct = 0;
    for (int64_t i = 0; i < m * K; ++i) r.correct += (z[i] > T(0)) == (y.acc_mask[i] != 0);
  }
  return r;
}

template <typename T>
void Plan<T>::backward(int64_t m, const PlanTargets<T>& y, double weight_decay, const OptimizerHyper* fuse) {
  const int64_t K = shapes_.front()[0];
  l2_ = weight_decay;
  // The fused updates: update()'s rule for each fusable weight, handed to its dense op, and the
  // L2 gradient the op would have added to dW in backward (its lambda) as the update's l2.
  struct Unfuse {  // the ops forget them however backward ends
    std::vector<PlanParam<T>>& params;
    ~Unfuse() {
      for (auto& p : params)
        if (p.dense_weight) p.owner->fuse_weight_update(nullptr);
    }
  } unfuse{params_};
  if (fuse) {
    const double wd = l2_in_backward_ ? 0.0 : weight_decay;
    for (size_t i = 0; i < params_.size(); ++i) {
      const PlanParam<T>& p = params_[i];
      if (!fuses(p)) continue;
      const T l2 = l2_in_backward_ && p.decay ? static_cast<T>(weight_decay) : T(0);
      fused_[i] = make_tile_update<T>(opt_, p.w, p.v, p.s, p.cols, *fuse, p.decay ? wd : 0.0, l2);
      p.owner->fuse_weight_update(&fused_[i]);
    }
  }
  const T* cw = has_class_weights_ ? class_weights_.data() : nullptr;
  switch (loss_) {
    case LossKind::cross_entropy: softmax_cross_entropy_backward<T>(dout_.data(), probs_.data(), y.labels, cw, m, K); break;
    case LossKind::mse: mse_backward<T>(dout_.data(), last_output_, y.values, m, K, true); break;
    case LossKind::bce_with_logits: bce_with_logits_backward<T>(dout_.data(), last_output_, y.values, m, K, true); break;
  }
  const T* g = dout_.data();
  if (use_row_split(m)) {  // see run_forward
    std::vector<PlanOp<T>*>& run = split_run_;
    std::vector<const T*>& dy = split_in_;  // the output gradient each op in `run` receives
    run.clear();
    dy.clear();
    for (auto it = ops_.rbegin(); it != ops_.rend() && (*it)->runs_backward(); ++it) {
      run.push_back(it->get());
      dy.push_back(g);
      g = (*it)->bind_backward(g);
    }
    parallel_for(m, row_split_grain(), [&](int64_t r0, int64_t r1, int) {
      for (size_t i = 0; i < run.size(); ++i) run[i]->backward_rows(dy[i], r0, r1);
    });
    const int chunks = plan_chunks(m, row_split_grain());
    parallel_for_chunks(int64_t(chunks), chunks, [&](int64_t c, int64_t, int) {
      for (size_t i = 0; i < run.size(); ++i) run[i]->param_grads_part(dy[i], m, static_cast<int>(c), chunks);
    });
    return;
  }
  for (auto it = ops_.rbegin(); it != ops_.rend() && (*it)->runs_backward(); ++it) g = (*it)->backward(g, m);
}

template <typename T>
PlanStepResult Plan<T>::loss_and_backward(const T* X, int64_t m, const PlanTargets<T>& y, double weight_decay,
                                          double max_loss, const OptimizerHyper* fuse) {
  PlanStepResult r = forward_and_loss(X, m, y, weight_decay, false);
  const double total = r.data_loss + r.penalty;
  if (!(std::isfinite(total) && total <= max_loss)) return r;
  backward(m, y, weight_decay, fuse);
  r.updated = true;
  return r;
}

template <typename T>
void Plan<T>::update(const OptimizerHyper& hp, double weight_decay, bool fused) {
  const double wd = l2_in_backward_ ? 0.0 : weight_decay;  // else it is in the gradients already
  for (const auto& p : params_)
    if (!(fused && fuses(p))) optimizer_update<T>(opt_, p.w, p.v, p.s, p.g, p.n, hp, p.decay ? wd : 0.0);
}

namespace {
// The plan's lock for one run: a second thread is told, not made to race on the buffers.
struct RunLock {
  std::unique_lock<std::mutex> lock;
  explicit RunLock(std::mutex& m) : lock(m, std::try_to_lock) {
    if (!lock.owns_lock()) throw std::runtime_error("this Plan is already running in another thread");
  }
};
}  // namespace

template <typename T>
PlanStepResult Plan<T>::step(const T* X, int64_t m, const PlanTargets<T>& y, const OptimizerHyper& hp,
                             double weight_decay, double max_loss) {
  RunLock lock(busy_);
  pending_rows_ = -1;
  if (!loss_set_ || !optimizer_set_) throw std::logic_error("step() needs set_loss() and set_optimizer() first");
  finalize();
  reserve(m, true);
  PlanStepResult r = loss_and_backward(X, m, y, weight_decay, max_loss);
  if (r.updated) update(hp, weight_decay);
  return r;
}

template <typename T>
PlanStepResult Plan<T>::gradients(const T* X, int64_t m, const PlanTargets<T>& y, double weight_decay) {
  RunLock lock(busy_);
  pending_rows_ = -1;
  if (!loss_set_) throw std::logic_error("gradients() needs set_loss() first");
  finalize();
  reserve(m, true);
  return loss_and_backward(X, m, y, weight_decay, std::numeric_limits<double>::infinity());
}

template <typename T>
void Plan<T>::forward(T* out, const T* X, int64_t m) {
  RunLock lock(busy_);
  pending_rows_ = -1;
  finalize();
  reserve(m, false);
  const T* z = run_forward(X, m, false);
  const int64_t n = m * numel(shapes_.front(), "the output");
  if (z != out) std::memcpy(out, z, sizeof(T) * static_cast<size_t>(n));
}

template <typename T>
PlanTargets<T> Plan<T>::batch_buffers(const PlanTargets<T>& y, int64_t rows) {
  const int64_t D = numel(input_, "the input"), K = shapes_.front()[0];
  grow(batch_x_, rows, D, "the minibatch");
  PlanTargets<T> tb;
  if (y.labels) tb.labels = grow(batch_labels_, rows, 1, "the minibatch labels");
  if (y.values) tb.values = grow(batch_values_, rows, K, "the minibatch targets");
  if (y.acc_labels) tb.acc_labels = y.acc_labels == y.labels ? tb.labels : grow(batch_acc_labels_, rows, 1, "labels");
  if (y.acc_mask) tb.acc_mask = grow(batch_acc_mask_, rows, K, "the minibatch accuracy mask");
  return tb;
}

template <typename T>
void Plan<T>::gather_batch(const T* X, const PlanTargets<T>& y, const int64_t* idx, int64_t m) {
  const int64_t D = numel(input_, "the input"), K = shapes_.front()[0];
  gather_rows(batch_x_.data(), X, idx, m, D);
  if (y.labels) gather_rows(batch_labels_.data(), y.labels, idx, m, 1);
  if (y.values) gather_rows(batch_values_.data(), y.values, idx, m, K);
  if (y.acc_labels && y.acc_labels != y.labels) gather_rows(batch_acc_labels_.data(), y.acc_labels, idx, m, 1);
  if (y.acc_mask) gather_rows(batch_acc_mask_.data(), y.acc_mask, idx, m, K);
}

template <typename T>
PlanStepResult Plan<T>::forward_loss(const T* X, int64_t N, const PlanTargets<T>& y, const int64_t* rows,
                                     int64_t m) {
  RunLock lock(busy_);
  pending_rows_ = -1;
  if (!loss_set_) throw std::logic_error("forward_loss() needs set_loss() first");
  if (m < 1) throw std::invalid_argument("forward_loss() needs at least one row");
  if (rows) check_rows(rows, m, N, "rows");
  else if (m > N) throw std::invalid_argument("forward_loss(): " + std::to_string(m) + " rows of a " +
                                              std::to_string(N) + "-row X");
  finalize();
  reserve(m, true);
  const PlanTargets<T> tb = batch_buffers(y, m);
  gather_batch(X, y, rows, m);
  PlanStepResult r = forward_and_loss(batch_x_.data(), m, tb, 0.0, true);
  pending_rows_ = m;
  pending_y_ = tb;
  return r;
}

template <typename T>
void Plan<T>::backward_update(const OptimizerHyper& hp, double weight_decay) {
  RunLock lock(busy_);
  const int64_t m = pending_rows_;
  pending_rows_ = -1;
  if (!optimizer_set_) throw std::logic_error("backward_update() needs set_optimizer() first");
  if (m < 0)
    throw std::logic_error("backward_update() finishes the step forward_loss() began; there is none pending "
                           "(another run in between discards it)");
  backward(m, pending_y_, weight_decay);
  update(hp, weight_decay);
}

template <typename T>
PlanEpochResult Plan<T>::epoch(const T* X, int64_t N, const PlanTargets<T>& y, const int64_t* order,
                               int64_t n_order, int64_t batch_size, OptimizerHyper hp, double weight_decay,
                               double max_loss, const std::function<bool()>& interrupted) {
  RunLock lock(busy_);
  pending_rows_ = -1;
  if (!loss_set_ || !optimizer_set_) throw std::logic_error("epoch() needs set_loss() and set_optimizer() first");
  if (batch_size < 1) throw std::invalid_argument("batch_size must be >= 1");
  check_rows(order, n_order, N, "order");
  finalize();
  const int64_t bs = std::min(batch_size, std::max<int64_t>(n_order, 1));
  reserve(bs, true);
  const PlanTargets<T> tb = batch_buffers(y, bs);

  PlanEpochResult r;
  bool stale = false;  // the last update was fused: the dense weights' gradient arrays are older
  for (int64_t b = 0, start = 0; start < n_order; ++b, start += bs) {
    if (interrupted && interrupted()) {
      r.interrupted = true;
      break;
    }
    const int64_t m = std::min(bs, n_order - start);
    const bool fuse = fuse_updates_ && start + m < n_order;  // not the last batch (see plan.h)
    gather_batch(X, y, order + start, m);
    PlanStepResult s;
    try {
      s = loss_and_backward(batch_x_.data(), m, tb, weight_decay, max_loss, fuse ? &hp : nullptr);
    } catch (const std::exception& e) {
      // A kernel that throws in a fused backward (none is known to: the buffers are reserved and the
      // geometry checked before the run) may leave some weights updated by this batch.
      stale = stale || fuse;
      r.stopped = b;
      r.error = e.what();
      break;
    }
    r.data_loss.push_back(s.data_loss);
    r.penalty.push_back(s.penalty);
    r.correct.push_back(s.correct);
    r.rows.push_back(m);
    if (!s.updated) {
      r.stopped = b;
      break;
    }
    update(hp, weight_decay, fuse);
    stale = fuse;
    ++hp.t;
    ++r.steps;
  }
  if (stale)
    for (size_t i = 0; i < params_.size(); ++i)
      if (fuses(params_[i])) r.stale_gradients.push_back(static_cast<int64_t>(i));
  return r;
}

template class Plan<float>;
template class Plan<double>;

}  // namespace natverk
