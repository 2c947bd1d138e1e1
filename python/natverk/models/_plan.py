"""The C++ step plan for a :class:`~natverk.models.Sequential` (issue 11: one training engine).

:func:`build_plan` turns a model's layers, its optimizer and its loss into one
``natverk._core.Plan`` (``cpp/plan/plan.h``): the whole minibatch step --
forward, loss, backward and one optimizer pass -- runs in C++ with no Python
between the layers, and ``epoch`` runs every minibatch of an epoch with no
Python between the batches. Each op calls the kernels its layer calls, in the
same order, so the plan's weights are bit-identical to the layer loop's.

Nothing is copied: the plan points into the layers' own arrays (``W``, ``b``,
``gamma``, ``beta``), the batch-norm running statistics, the dropout call
counters and the optimizer's state arrays (``optimizer.state``), and updates
them in place. The gradients live in arrays the plan owns; after every run
they are published as the layers' ``dW``/``db``/``dgamma``/``dbeta``, as a
backward pass would leave them.

A model the plan cannot run exactly as the layer loop does gives ``None``
(:func:`build_plan`), and ``fit`` keeps its layer loop: a layer class of its
own (a subclass of a built-in layer included: it may override ``forward``),
a custom optimizer or loss, parameters of mixed dtypes, a dropout seed beyond
64 bits, or geometry the layers would reject (their own error is the one to
raise).
"""

from __future__ import annotations

import math
import weakref
from typing import Any

import numpy as np

from .. import _core
from .._validation import first_non_finite
from ..layers import (
    AvgPool2D,
    BatchNorm1D,
    BatchNorm2D,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    GlobalAvgPool2D,
    MaxPool2D,
    ReLU,
    Residual,
    Sigmoid,
    Stack,
    Tanh,
)
from ..losses import BCE, MSE, CrossEntropy, Loss
from ..optimizers.classes import SGD, Adam, Momentum, Optimizer, RMSprop, decays

__all__ = ["ModelPlan", "build_plan", "plan_for_fit", "plan_for_inference", "matlab_plan", "ENABLED", "EVAL_ROWS", "EVAL_MIN_ROWS"]

#: Set False to make fit() use the Python layer loop (tests and benchmarks compare the two).
ENABLED = True

#: Whether fit() trains networks with convolutions through the plan. It was off while the
#: plan was measured slower on them (VGG-style (e) with batch norm 65 samples/s against 74
#: through the layer loop, at im2col-only convolutions). With the Winograd engine
#: (cpp/conv2d/winograd.h) the plan is the faster path, measured in CPU time, 1 thread,
#: alternating runs: MNIST CNN (d) 2,078 / 1,914 samples/s against 1,792 / 1,801 through the
#: layer loop; (e) 80 / 87 against 83 / 82. Both paths give the same bits (tests/test_plan.py).
FIT_CONV_NETS = True

#: The smallest dense weight, in bytes, whose update ``Plan.epoch`` runs inside its dW GEMM
#: (``Plan.fuse_min_bytes``); None keeps the plan's default (256 KiB, cpp/plan/plan.h). The tests
#: set 0 to fuse their small networks' weights.
FUSE_MIN_BYTES: int | None = None

_OPTIMIZER_KINDS: dict[type, str] = {SGD: "sgd", Momentum: "momentum", RMSprop: "rmsprop", Adam: "adam"}
_LOSS_KINDS: dict[type, str] = {CrossEntropy: "cross_entropy", MSE: "mse", BCE: "bce_with_logits"}
_ACTIVATIONS = (ReLU, Sigmoid, Tanh)
_LEAVES = (Dense, Dropout, Flatten, Conv2D, MaxPool2D, AvgPool2D, GlobalAvgPool2D, BatchNorm1D, BatchNorm2D,
           *_ACTIVATIONS)


class _Unsupported(Exception):
    """The model has something the plan does not run exactly as the layer loop does."""


def _array(a: Any, dtype: np.dtype) -> np.ndarray:
    """A parameter-like array the plan may point into: ours, in the plan's dtype, C-contiguous, writeable."""
    if not isinstance(a, np.ndarray) or a.dtype != dtype or not a.flags.c_contiguous or not a.flags.writeable:
        raise _Unsupported("a parameter or buffer is not a writeable C-contiguous array of the model's dtype")
    return a


class _Builder:
    """Walks the layers, adding one op per layer; records what to check and publish."""

    def __init__(self, plan: Any, dtype: np.dtype):
        self.plan = plan
        self.dtype = dtype
        self.cast: bool | None = None  # converting the input first is exact (see ModelPlan.converts_input)
        self.values: list[np.ndarray] = []  # parameter arrays, in plan order
        self.grads: list[tuple[Any, str, np.ndarray | None]] = []  # (layer, attribute, gradient array)
        self.refs: list[tuple[Any, str, Any]] = []  # (layer, attribute, the array the plan holds)
        self.bn_values_per_channel: list[int] = []  # S of every batch norm (values per channel per example)
        self.configs: list[tuple[Any, dict]] = []  # (layer, its config when planned): p, eps, ... are copied
        self.seen: set[int] = set()
        self.has_conv = False  # a Conv2D anywhere (see FIT_CONV_NETS)

    def _param(self, layer, attr: str, grad_attr: str) -> tuple[np.ndarray, np.ndarray]:
        w = _array(getattr(layer, attr), self.dtype)
        g = np.zeros_like(w)
        self.values.append(w)
        self.grads.append((layer, grad_attr, g))
        self.refs.append((layer, attr, w))
        return w, g

    def _weight_and_bias(self, layer) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray | None]:
        """W, b, dW, db of a Dense or Conv2D; b and db None without a bias (its db is published as None)."""
        W, dW = self._param(layer, "W", "dW")
        if layer.use_bias:
            b, db = self._param(layer, "b", "db")
        else:
            b = db = None
            self.grads.append((layer, "db", None))
        return W, b, dW, db

    def add(self, layer) -> None:
        kind = type(layer)
        p = self.plan
        if kind not in _LEAVES and kind not in (Stack, Residual) and not _is_builtin(kind):
            raise _Unsupported(f"layer {kind.__name__}")  # exact classes: a subclass may override anything
        if id(layer) in self.seen:
            # one layer object used twice: its second forward overwrites what the first one's
            # backward needs (its input, its mask) in the layer loop; the plan would not
            raise _Unsupported("a layer that appears twice")
        self.seen.add(id(layer))
        if self.cast is None and kind is not Flatten and kind is not Stack and not _is_builtin(kind):
            # the first layer that computes: a parameter layer converts its input to the model's dtype
            self.cast = kind in (Dense, Conv2D, BatchNorm1D, BatchNorm2D)
        if kind is not Stack and not _is_builtin(kind) and kind is not Residual:
            self.configs.append((layer, layer.config()))
        if kind is Stack or _is_builtin(kind):
            for child in layer.layers:
                self.add(child)
        elif kind is Residual:
            p.begin_residual()
            for child in layer.f.layers:
                self.add(child)
            p.end_residual()
        elif kind is Dense:
            p.dense(*self._weight_and_bias(layer))
            if layer.activation is not None:  # Dense(..., activation=): the activation layer's op after it
                p.activation(layer.activation)
        elif kind in _ACTIVATIONS:
            p.activation(layer._kind)
        elif kind is Dropout:
            counter = layer.counter
            if not (isinstance(counter, np.ndarray) and counter.dtype == np.int64 and counter.size == 1
                    and counter.flags.writeable and counter.flags.c_contiguous) or not 0 <= layer.seed < 2**64:
                raise _Unsupported("dropout counter or seed")
            self.refs.append((layer, "counter", counter))
            p.dropout(layer.p, layer.seed, counter)
        elif kind is Flatten:
            p.flatten()
        elif kind is Conv2D:
            self.has_conv = True
            p.conv2d(*self._weight_and_bias(layer), layer.stride, layer.padding, layer.dilation, layer.groups)
            if layer.activation is not None:  # Conv2D(..., activation=): the activation layer's op after it
                p.activation(layer.activation)
        elif kind is MaxPool2D:
            p.maxpool2d(layer.kernel_size, layer.stride, layer.padding)
        elif kind is AvgPool2D:
            p.avgpool2d(layer.kernel_size, layer.stride, layer.padding)
        elif kind is GlobalAvgPool2D:
            if len(p.current_shape) != 3:
                raise _Unsupported("GlobalAvgPool2D needs (C, H, W) inputs")
            p.global_avgpool2d()
        elif kind in (BatchNorm1D, BatchNorm2D):
            shape = p.current_shape
            if len(shape) != (1 if kind is BatchNorm1D else 3):
                raise _Unsupported("batch norm on the wrong rank (the layer raises)")
            gamma, dgamma = self._param(layer, "gamma", "dgamma")
            beta, dbeta = self._param(layer, "beta", "dbeta")
            rm, rv = _array(layer.running_mean, self.dtype), _array(layer.running_var, self.dtype)
            self.refs += [(layer, "running_mean", rm), (layer, "running_var", rv)]
            p.batchnorm(gamma, beta, dgamma, dbeta, rm, rv, layer.eps, layer.momentum)
            self.bn_values_per_channel.append(int(np.prod(shape[1:], dtype=np.int64)) if len(shape) > 1 else 1)


def _is_builtin(cls: type) -> bool:
    """Sequential itself (a nested model), not a user's subclass of it."""
    from .sequential import Sequential

    return cls is Sequential


class ModelPlan:
    """A :class:`natverk._core.Plan` bound to one model, optimizer and loss.

    Built by :func:`build_plan`; :meth:`valid` says whether it still points at
    the model's arrays (a layer's ``W`` replaced, the optimizer's state
    reloaded, ... make it stale, and ``fit`` builds a new one).
    """

    def __init__(self, model, optimizer: Optimizer, loss: Loss, input_shape: tuple[int, ...], dtype: np.dtype):
        # No reference to the model itself: only to its layers' arrays.
        self.optimizer, self.loss = optimizer, loss
        self.input_shape, self.dtype = tuple(int(d) for d in input_shape), np.dtype(dtype)
        #: The data of one fit (see plan_for_fit): inputs in the plan's dtype, targets, accuracy targets.
        self.X: np.ndarray | None = None
        self.y: np.ndarray | None = None
        self.acc: np.ndarray | None = None
        self.plan = _core.Plan(self.dtype, self.input_shape)
        if FUSE_MIN_BYTES is not None:
            self.plan.fuse_min_bytes = FUSE_MIN_BYTES
        builder = _Builder(self.plan, self.dtype)
        for layer in model.layers:
            builder.add(layer)
        params = model.parameters()
        if len(params) != len(builder.values) or any(p[1] is not v for p, v in zip(params, builder.values)):
            raise _Unsupported("the plan's parameters are not the model's, in order")
        #: Whether converting an input of another dtype to the plan's up front gives what the
        #: layers compute: the first layer that computes has parameters (it converts its input
        #: itself), with at most Flatten before it (a reshape: exact in either dtype).
        self.converts_input = bool(builder.cast)
        self._grads = builder.grads
        #: The gradient arrays in the plan's parameter order (Plan.epoch's stale_gradients index them).
        self._param_grads = [g for _, _, g in builder.grads if g is not None]
        self._refs = builder.refs
        self._configs = builder.configs + [(loss, loss.config())]
        self.bn_values_per_channel = builder.bn_values_per_channel
        self.has_conv = builder.has_conv
        # the loss
        kind = _LOSS_KINDS[type(loss)]
        self.classes = int(self.plan.output_shape[0]) if len(self.plan.output_shape) == 1 else None
        if self.classes is None:
            raise _Unsupported("the losses need (N, K) outputs")
        weights = None
        if kind == "cross_entropy" and loss.class_weights is not None:
            if loss.class_weights.shape[0] != self.classes:
                raise _Unsupported("class weights do not fit the outputs (the loss raises)")
            weights = np.ascontiguousarray(loss.class_weights, dtype=self.dtype)
        self.plan.set_loss(kind, weights)
        self.loss_kind = kind
        # the optimizer: its own state arrays; where a parameter has none yet, zeros that join
        # optimizer.state with the first update (commit_state), as Optimizer.step creates them:
        # a fit that fails before its first step leaves the optimizer as it was
        okind = _OPTIMIZER_KINDS[type(optimizer)]
        v, s, decay = [], [], []
        self._state: list[tuple[str, str, np.ndarray]] = []
        self._pending: dict[str, dict[str, np.ndarray]] = {}
        for p in params:
            name, w = p[0], p[1]
            st = optimizer.state.get(name)
            if st is None:
                st = self._pending[name] = {k: np.zeros_like(w) for k in optimizer.slots}
            elif set(st) != set(optimizer.slots) or any(a.shape != w.shape for a in st.values()):
                raise _Unsupported("optimizer state that does not fit (Optimizer.step raises or converts it)")
            for k in optimizer.slots:
                self._state.append((name, k, _array(st[k], self.dtype)))
            v.append(st.get("v"))
            s.append(st.get("s"))
            decay.append(decays(p, optimizer.decay))  # Optimizer.step's rule
        self.plan.set_optimizer(okind, v, s, decay)
        self._decay_mode = optimizer.decay

    # -- bookkeeping ---------------------------------------------------------------
    def valid(self) -> bool:
        """Whether the plan still holds the model's, and its optimizer's, current arrays, and
        the settings it copied (a dropout rate, batch-norm momentum, class weights, the decay
        rule) are still the layers', the loss's and the optimizer's."""
        if self.optimizer.decay != self._decay_mode:
            return False
        for obj, config in self._configs:
            if obj.config() != config:
                return False
        for layer, attr, arr in self._refs:
            if getattr(layer, attr) is not arr:
                return False
        state = self.optimizer.state
        for name, k, arr in self._state:
            if name in self._pending and name not in state:
                continue
            if state.get(name, {}).get(k) is not arr:
                return False
        return True

    def commit_state(self) -> None:
        """Hand the optimizer the state arrays the plan created (after its first update, or
        before the layer loop takes a step with the same optimizer)."""
        for name, st in self._pending.items():
            self.optimizer.state.setdefault(name, st)
        self._pending = {}

    def _publish(self, stale: np.ndarray | None = None) -> None:
        """The gradients of the last run, as a backward pass leaves them on the layers. ``stale``:
        indices into the plan's parameters whose gradient arrays do not hold the last update's
        gradient (an epoch that stopped after a batch whose dense-weight updates ran inside the
        dW GEMM, ``Plan.epoch``); those layers get ``None``, as before any backward pass."""
        skip = {id(self._param_grads[int(i)]) for i in stale} if stale is not None and len(stale) else set()
        for layer, attr, g in self._grads:
            setattr(layer, attr, None if id(g) in skip else g)

    def _hyper(self) -> dict:
        o = self.optimizer
        return {
            "learning_rate": o.learning_rate,
            "beta": getattr(o, "beta", 0.9),
            "beta1": getattr(o, "beta1", 0.9),
            "beta2": getattr(o, "beta2", 0.99),
            "eps": getattr(o, "eps", 1e-8),
            "t": o.iterations + 1,
            "weight_decay": o.weight_decay,
        }

    def targets(self, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """``(y, accuracy_targets)`` for the plan from the loss's checked targets (all rows).

        The losses convert float targets to the outputs' dtype per batch; converting them
        once gives the same values. The accuracies compare against the float64 targets
        (``Loss.accuracy``), so what they compare with is taken here, before any rounding."""
        if self.loss_kind == "cross_entropy":
            return np.ascontiguousarray(targets, dtype=np.int64), None
        t = np.asarray(targets)
        y = np.ascontiguousarray(t.reshape(t.shape[0], -1), dtype=self.dtype)
        if self.loss_kind == "mse":
            return y, (np.argmax(t.reshape(y.shape), axis=1) if self.classes > 1 else None)
        return y, np.ascontiguousarray(t.reshape(y.shape) >= 0.5, dtype=np.uint8)

    def accepts(self, xb: np.ndarray, finite_checked: bool = False) -> bool:
        """Whether the plan computes what the layers would for the batch ``xb`` (shape, dtype,
        finite: the first layer raises on NaN/Inf, and that error is the layer loop's to give).
        ``finite_checked``: the caller has already found ``xb`` finite (fit checks X up front),
        so it is not scanned a second time (a pass over all of X: 2 ms of a 0.28 s epoch of (a))."""
        return (xb.shape[1:] == self.input_shape and (xb.dtype == self.dtype or self.converts_input)
                and xb.dtype.kind in "fiu" and (finite_checked or first_non_finite(xb) is None))

    def accuracy(self, correct: int | None, rows: int) -> float:
        """Loss.accuracy from a count of correct predictions (bit-identical: count / size)."""
        if correct is None or correct < 0:
            return math.nan
        return correct / (rows * self.classes if self.loss_kind == "bce_with_logits" else rows)

    def needs_layer_loop(self, batch_rows: int) -> bool:
        """A batch of ``batch_rows`` the plan would stop on where the layers raise their own error
        (batch norm of one value per channel): leave such a run to the layer loop."""
        return any(batch_rows * s < 2 for s in self.bn_values_per_channel)

    # -- running -------------------------------------------------------------------
    def step(self, xb: np.ndarray, yb: np.ndarray, accb: np.ndarray | None, max_loss: float | None = None):
        """One training step; ``(data_loss, penalty, correct, updated)``. On an update the
        optimizer's ``iterations`` advances, as ``Optimizer.step`` does."""
        h = self._hyper()
        r = self.plan.step(xb, yb, **h, max_loss=max_loss, accuracy_targets=accb, check_finite=False)
        if r[3]:
            self.optimizer.iterations += 1
            self.commit_state()
            self._publish()
        return r

    def epoch(self, order: np.ndarray, batch_size: int, max_loss: float | None = None) -> dict:
        """Every minibatch of one epoch over the fit's data (:func:`plan_for_fit`) in one C++
        call (see ``natverk._core.Plan.epoch``); advances the optimizer's ``iterations`` by the
        updates done."""
        h = self._hyper()
        r = self.plan.epoch(self.X, self.y, order, batch_size, **h, max_loss=max_loss, accuracy_targets=self.acc,
                            check_finite=False)
        self.optimizer.iterations += int(r["steps"])
        if r["steps"]:
            self.commit_state()
            self._publish(r["stale_gradients"])
        return r

    def forward(self, X: np.ndarray) -> np.ndarray:
        """Evaluation-mode outputs (``predict_logits`` for one chunk)."""
        return self.plan.forward(X)


#: The last fit's plan, for the next fit of the same model with the same optimizer and loss:
#: (weak reference to the model, its layer tree, plan). A fresh plan
#: touches its activation and gradient buffers for the first time in its first step: on the
#: (e) VGG + BN benchmark net at batch 64, 1 thread, a fit of one batch took 520-620 ms on a
#: new plan against 375-455 ms on a used one (page faults and zeroing of ~200 MB), so
#: ``fit(epochs=1)`` in a loop paid about a third of a step per call. At most one plan is
#: kept, so at most one plan's buffers stay allocated between fits.
_last_fit: tuple | None = None


def _layer_tree(model) -> list:
    """Every layer in the model, the model itself left out (so that keeping it does not keep the model)."""
    tree = [model]
    for layer in tree:  # grows as it walks: every layer in the tree (as Sequential._probe_shapes)
        tree.extend(child for _, child in layer.children())
    return tree[1:]


def _reuse_fit_plan(model, optimizer: Optimizer, loss: Loss, input_shape, dtype) -> ModelPlan | None:
    """The last fit's plan where it is the one :func:`build_plan` would build now: the same
    model object with the same layer objects, the same optimizer object, a loss of the same
    class and settings (fit makes a new one from a name on every call; the plan reads only
    its kind and class weights, copied when it was built), the same input shape and dtype,
    and still :meth:`ModelPlan.valid` (every array and setting it copied is still the
    model's and the optimizer's)."""
    if _last_fit is None:
        return None
    ref, tree, mp = _last_fit
    if ref() is not model or mp.optimizer is not optimizer:
        return None
    if type(mp.loss) is not type(loss) or mp.loss.config() != loss.config():
        return None
    if mp.input_shape != tuple(int(d) for d in input_shape) or mp.dtype != np.dtype(dtype):
        return None
    now = _layer_tree(model)
    if len(now) != len(tree) or any(a is not b for a, b in zip(now, tree)) or not mp.valid():
        return None
    return mp


def plan_for_fit(model, optimizer: Optimizer, loss: Loss, X: np.ndarray, targets: np.ndarray, batch_size: int,
                 input_shape, augment) -> ModelPlan | None:
    """The plan ``Sequential.fit`` trains with, holding the fit's data in the plan's dtype, or
    None when the layer loop must run (an unsupported model; a batch the layers would reject
    with their own error: NaN/Inf inputs, batch norm on one value per channel; an input dtype
    the first layer would not simply convert). The last fit's plan is reused where it is the
    same plan (:func:`_reuse_fit_plan`)."""
    global _last_fit
    if not ENABLED:
        return None
    from ..layers._base import float_dtype_of

    dtype = model.dtype if model.dtype is not None else float_dtype_of(X.dtype)
    mp = _reuse_fit_plan(model, optimizer, loss, input_shape, dtype)
    if mp is None:
        _last_fit = None  # its buffers go before the new plan allocates its own
        mp = build_plan(model, optimizer, loss, input_shape, dtype)
        if mp is not None:
            _last_fit = (weakref.ref(model), _layer_tree(model), mp)
    if mp is None or (not FIT_CONV_NETS and mp.has_conv):
        return None
    N = X.shape[0]
    if mp.needs_layer_loop(min(batch_size, N % batch_size or batch_size)):
        return None
    if augment is None:
        if not mp.accepts(X, finite_checked=True):  # fit's _check_finite has scanned X
            return None
        mp.X = np.ascontiguousarray(X, dtype=mp.dtype)
    mp.y, mp.acc = mp.targets(targets)
    return mp


#: Rows per plan call in evaluation mode (predict, evaluate, fit's validation). Each row's
#: outputs are the same bits whatever the chunk (no kernel sums across rows in evaluation mode:
#: tests/test_plan.py), so this only trades call overhead against cache use. Measured on the
#: Table 4 CNNs, 3,000 MNIST-sized images, 1 thread: 64-256 rows took 0.63-0.72x the layer
#: loop's time in chunks of 1,000 (whose fresh 100 MB activations the kernel must zero page by
#: page), and 1,000 rows through the plan 0.87x.
EVAL_ROWS = 256

#: Fewer rows than this stay on the layer loop. A plan is built for every call and its buffers
#: are touched fresh, which costs about what the layer loop's own allocations do, so it pays
#: only over several chunks. Measured (medians, under a load average of about 3): a one-row MLP
#: predict took 37 us on the layer loop and 108 us through the plan; the Table 4 MNIST CNN at 2
#: threads, 256 rows 76 -> 108 ms and 512 rows 151 -> 230 ms, but 1,000 rows 427 -> 358 ms.
EVAL_MIN_ROWS = 4 * EVAL_ROWS


def _dtypes_fixed(model) -> bool:
    """Whether every layer with parameters has its dtype fixed (by a forward pass or astype);
    a layer's first forward otherwise converts it to its input's dtype."""
    return all(layer._dtype is not None for layer in _layer_tree(model)
               if layer.has_parameters and not layer.children())


def plan_for_inference(model, X: np.ndarray) -> ModelPlan | None:
    """A plan that computes ``model.forward(X, training=False)`` for chunks of ``X``, or None
    where the layer loop must (an unsupported model or outputs that are not (N, K); a model
    whose dtype its first input still fixes; inputs the first layer would reject, whose error is
    the layer loop's; fewer than ``EVAL_MIN_ROWS`` rows). The optimizer and loss are
    placeholders: evaluation uses neither."""
    if not ENABLED or X.shape[0] < EVAL_MIN_ROWS or not _dtypes_fixed(model):
        return None
    mp = build_plan(model, SGD(0.0), CrossEntropy(), X.shape[1:], model.dtype)
    if mp is None or not mp.accepts(X):
        return None
    return mp


def build_plan(model, optimizer: Optimizer, loss: Loss, input_shape, dtype) -> ModelPlan | None:
    """The plan for training ``model`` with ``optimizer`` and ``loss`` on inputs of per-example
    shape ``input_shape`` in ``dtype``, or None when something in it is not supported (see the
    module notes); fit then keeps its layer loop."""
    if not ENABLED or type(optimizer) not in _OPTIMIZER_KINDS or type(loss) not in _LOSS_KINDS:
        return None
    try:
        return ModelPlan(model, optimizer, loss, input_shape, dtype)
    except (_Unsupported, ValueError, TypeError):
        # ValueError/TypeError: geometry or arrays the plan refuses; the layers raise their own error
        return None


def matlab_plan(parameters: dict, activation: str, optimizer: str) -> Any:
    """The plan of the thesis' MATLAB network (:func:`natverk.train`): ``h_l = f(h_{l-1} W_l + b_l)``
    for the hidden layers, ``z = h_{L-1} W_L + b_L``, softmax cross-entropy.

    Its parameters are the dict's own ``W1, b1, ..., WL, bL`` and its optimizer state the
    dict's ``v_dW1``, ``s_db1``, ... (created as zeros where missing, as the
    ``gradient_descent_*`` functions do); every update lands in them. ``lambda_`` is the
    weight decay of each step; it decays the weights ``W_l`` only, and its gradient enters as
    ``back_propagation`` adds it (``dW_l = h^T dz + lambda W_l``, ``l2_in_backward``), so the
    plan's steps are bit-identical to ``forward_propagation`` + ``back_propagation`` +
    ``gradient_descent_*``. A ``W_l`` or ``b_l`` that is not a C-contiguous, writeable array is
    replaced in the dict by a copy that is (the plan updates them in place), as the optimizers'
    own calls require."""
    from .._validation import num_layers
    from ..optimizers._update import state
    from ..optimizers.table import resolve

    spec = resolve(optimizer)
    L = num_layers(parameters)
    for key in (f"{name}{l}" for l in range(1, L + 1) for name in "Wb"):
        a = parameters[key]
        if not (a.flags.c_contiguous and a.flags.writeable):
            parameters[key] = np.array(a, order="C")
    W1 = parameters["W1"]
    plan = _core.Plan(W1.dtype, (W1.shape[0],))
    if FUSE_MIN_BYTES is not None:
        plan.fuse_min_bytes = FUSE_MIN_BYTES
    v, s, decay = [], [], []
    for l in range(1, L + 1):
        W, b = parameters[f"W{l}"], parameters[f"b{l}"]
        plan.dense(W, b, np.zeros_like(W), np.zeros_like(b))
        if l < L:
            plan.activation(activation)
        for name, value, decayed in ((f"W{l}", W, True), (f"b{l}", b, False)):
            v.append(state(parameters, f"v_d{name}", value) if "v" in spec.slots else None)
            s.append(state(parameters, f"s_d{name}", value) if "s" in spec.slots else None)
            decay.append(decayed)
    plan.set_loss("cross_entropy")
    plan.set_optimizer(spec.name, v, s, decay, l2_in_backward=True)
    return plan
