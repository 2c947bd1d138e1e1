"""Shared by the kernel-boundary tests (test_reliability_kernels.py, test_fuzz.py): a valid
baseline call of every natverk._core function, and what kind of argument each parameter is.

``valid_calls(dtype)`` maps every _core function that takes arrays to
``(kwargs of a valid call, required array args, optional array args, required array-list
args, optional array-list args)``, with fresh arrays on every call. ``SCALAR_ARGS`` says what
each remaining parameter is (a float, an int, an (h, w) pair, a flag, a str, a uint64 seed,
a list of flags, a float or None) and ``IN_PLACE`` which array arguments a function updates.
``NO_ARRAYS`` lists the run-time settings and queries. A new binding must be added here
(test_the_table_covers_every_core_function checks it).

The step plan's running methods and ``set_optimizer`` are in the tables too, as ``"Plan.step"``
and so on: :func:`core_function` gives for such a name a :class:`PlanCall`, which builds a fresh
plan of the thesis' MATLAB network for each call (the one natverk.train, the balance principle
and the lambda searches run) and records the arrays that plan updates in place (``held``). Its
building ops (dense, conv2d, ...) are checked by tests/test_plan.py (``PLAN_BUILDING``).
"""

from __future__ import annotations

import numpy as np

import natverk
import natverk._core as core


def rand_array(*shape, dtype=np.float64, seed=0):
    return np.random.default_rng(seed).uniform(0.1, 0.9, size=shape).astype(dtype)


def valid_calls(dtype=np.float64):
    """name -> (kwargs of a valid call, required array args, optional array args,
    required array-list args, optional array-list args). Fresh arrays on every call."""
    f = lambda *shape, seed=0: rand_array(*shape, dtype=dtype, seed=seed)  # noqa: E731
    x4 = f(2, 3, 6, 6)
    _, argmax = core.maxpool2d_forward(x4, (2, 2), (2, 2))
    labels = np.array([0, 1, 2, 1])
    pair = dict(pred=f(4, 3), target=f(4, 3, seed=1))
    logits = dict(z=f(4, 3), target=f(4, 3, seed=1))
    state = lambda: [f(3, 5), f(1, 5), f(5, 3), f(1, 3)]  # noqa: E731  (PlanCall's W1, b1, W2, b2)
    hyper = dict(learning_rate=0.01, t=1, weight_decay=0.01)
    return {
        "gemm": (dict(A=f(3, 4), B=f(4, 2), C=f(3, 2), beta=1.0), ["A", "B"], ["C"], [], []),
        "activation_forward": (dict(x=f(3, 4), kind="relu"), ["x"], [], [], []),
        "activation_backward": (dict(dh=f(3, 4), h=f(3, 4), kind="relu"), ["dh", "h"], [], [], []),
        "softmax": (dict(z=f(3, 4)), ["z"], [], [], []),
        "dense_forward": (dict(X=f(5, 3), W=f(3, 2), b=f(2)), ["X", "W", "b"], [], [], []),
        "dense_backward": (dict(dZ=f(5, 2), X=f(5, 3), W=f(3, 2), lambda_=0.1), ["dZ", "X", "W"], [], [], []),
        "bias_add": (dict(Z=f(5, 2), b=f(2)), ["Z", "b"], [], [], []),
        "bias_grad": (dict(dZ=f(5, 2)), ["dZ"], [], [], []),
        "conv2d_forward": (dict(x=x4, weight=f(4, 3, 3, 3), bias=f(4)), ["x", "weight"], ["bias"], [], []),
        "conv2d_backward": (dict(dy=f(2, 4, 4, 4), x=x4, weight=f(4, 3, 3, 3)), ["dy", "x", "weight"], [], [], []),
        "conv2d_algorithm": (dict(x=x4, weight=f(4, 3, 3, 3)), ["x", "weight"], [], [], []),
        "maxpool2d_forward": (dict(x=x4, kernel_size=(2, 2), stride=(2, 2)), ["x"], [], [], []),
        "maxpool2d_backward": (dict(dy=f(2, 3, 3, 3), argmax=argmax, x=x4, kernel_size=(2, 2), stride=(2, 2),
                                    relu_output=f(2, 3, 3, 3, seed=2)), ["dy", "argmax", "x"], ["relu_output"], [], []),
        "avgpool2d_forward": (dict(x=x4, kernel_size=(2, 2), stride=(2, 2)), ["x"], [], [], []),
        "avgpool2d_backward": (dict(dy=f(2, 3, 3, 3), x=x4, kernel_size=(2, 2), stride=(2, 2)), ["dy", "x"], [], [], []),
        "global_avgpool_forward": (dict(x=x4), ["x"], [], [], []),
        "global_avgpool_backward": (dict(dy=f(2, 3), x=x4), ["dy", "x"], [], [], []),
        "batchnorm_forward": (dict(x=x4, gamma=f(3), beta=f(3), running_mean=f(3), running_var=f(3), training=True),
                              ["x", "gamma", "beta", "running_mean", "running_var"], [], [], []),
        "batchnorm_backward": (dict(dy=f(2, 3, 6, 6, seed=1), x=x4, mean=f(3), invstd=f(3), gamma=f(3), training=True),
                               ["dy", "x", "mean", "invstd", "gamma"], [], [], []),
        "dropout_forward": (dict(x=f(3, 4), p=0.5, seed=1), ["x"], [], [], []),
        "dropout_backward": (dict(dy=f(3, 4), mask=np.ones((3, 4), np.uint8), p=0.5), ["dy", "mask"], [], [], []),
        "add": (dict(a=f(3, 4), b=f(3, 4)), ["a", "b"], [], [], []),
        "softmax_cross_entropy": (dict(z=f(4, 3), y=labels, class_weights=f(3)), ["z", "y"], ["class_weights"], [], []),
        "softmax_cross_entropy_backward": (dict(probs=f(4, 3), y=labels, class_weights=f(3)), ["probs", "y"],
                                           ["class_weights"], [], []),
        "mse": (dict(pair), ["pred", "target"], [], [], []),
        "mse_backward": (dict(pair), ["pred", "target"], [], [], []),
        "binary_cross_entropy": (dict(pair), ["pred", "target"], [], [], []),
        "binary_cross_entropy_backward": (dict(pair), ["pred", "target"], [], [], []),
        "binary_cross_entropy_with_logits": (dict(logits), ["z", "target"], [], [], []),
        "binary_cross_entropy_with_logits_backward": (dict(logits), ["z", "target"], [], [], []),
        "sum_of_squares": (dict(w=f(3, 4)), ["w"], [], [], []),
        "sgd_update": (dict(w=f(3, 4), g=f(3, 4), learning_rate=0.1, weight_decay=0.01), ["w", "g"], [], [], []),
        "momentum_update": (dict(w=f(3, 4), v=f(3, 4), g=f(3, 4), learning_rate=0.1, beta=0.9, weight_decay=0.01),
                            ["w", "v", "g"], [], [], []),
        "rmsprop_update": (dict(w=f(3, 4), s=f(3, 4), g=f(3, 4), learning_rate=0.1, beta2=0.99, eps=1e-8,
                                weight_decay=0.01), ["w", "s", "g"], [], [], []),
        "adam_update": (dict(w=f(3, 4), v=f(3, 4), s=f(3, 4), g=f(3, 4), learning_rate=0.1, beta1=0.9, beta2=0.99,
                             t=1, eps=1e-8, weight_decay=0.01), ["w", "v", "s", "g"], [], [], []),
        # the step plan (PlanCall): a fresh 3-5-3 network per call
        "Plan.set_optimizer": (dict(kind="adam", v=state(), s=state(), decay=[True, False, True, False],
                                    l2_in_backward=True), [], [], ["v", "s"], []),
        "Plan.step": (dict(X=f(4, 3), y=labels, accuracy_targets=labels.copy(), eps=1e-8, **hyper), ["X", "y"],
                      ["accuracy_targets"], [], []),
        "Plan.gradients": (dict(X=f(4, 3), y=labels, weight_decay=0.01, accuracy_targets=labels.copy()), ["X", "y"],
                           ["accuracy_targets"], [], []),
        "Plan.forward_loss": (dict(X=f(4, 3), y=labels, rows=np.array([3, 0, 2]), accuracy_targets=labels.copy()),
                              ["X", "y"], ["rows", "accuracy_targets"], [], []),
        "Plan.backward_update": (dict(eps=1e-8, **hyper), [], [], [], []),
        "Plan.forward": (dict(X=f(4, 3)), ["X"], [], [], []),
        "Plan.epoch": (dict(X=f(4, 3), y=labels, order=np.array([3, 0, 2, 1]), batch_size=3,
                            accuracy_targets=labels.copy(), eps=1e-8, **hyper), ["X", "y", "order"],
                       ["accuracy_targets"], [], []),
    }


# The plan's building ops: their arguments are checked by tests/test_plan.py
# (test_bad_building_raises_clear_errors), not through these tables.
PLAN_BUILDING = {"dense", "activation", "dropout", "flatten", "conv2d", "maxpool2d", "avgpool2d",
                 "global_avgpool2d", "batchnorm", "begin_residual", "end_residual", "set_loss"}


def plan_methods() -> set[str]:
    """The public methods of natverk._core.Plan, as "Plan.<name>"."""
    return {f"Plan.{n}" for n in dir(core.Plan) if not n.startswith("_") and callable(getattr(core.Plan, n))}


class PlanCall:
    """A method of natverk._core.Plan, called as the tables call a _core function:
    ``PlanCall("Plan.step", dtype)(**kwargs)``.

    Each instance builds its own plan of the thesis' MATLAB network (3-5-3, relu, softmax
    cross-entropy, Adam with L2 in the backward pass: models._plan.matlab_plan, what natverk.train
    runs) over fresh arrays, gets it ready for the method (no optimizer yet for set_optimizer, a
    pending forward_loss for backward_update) and is called once. ``held`` are the arrays the plan
    updates in place: weights, biases and the optimizer state."""

    def __init__(self, name: str, dtype=np.float64):
        from natverk.models._plan import matlab_plan

        self.method = name.split(".", 1)[1]
        f = lambda *shape, seed=0: rand_array(*shape, dtype=dtype, seed=seed)  # noqa: E731
        params = {"W1": f(3, 5, seed=1), "b1": f(1, 5, seed=2), "W2": f(5, 3, seed=3), "b2": f(1, 3, seed=4)}
        if self.method == "set_optimizer":
            self.plan = core.Plan(dtype, (3,))
            for l in (1, 2):
                W, b = params[f"W{l}"], params[f"b{l}"]
                self.plan.dense(W, b, np.zeros_like(W), np.zeros_like(b))
                if l == 1:
                    self.plan.activation("relu")
            self.plan.set_loss("cross_entropy")
        else:
            self.plan = matlab_plan(params, "relu", "adam")
            for key in [k for k in params if k.startswith(("v_", "s_"))]:
                params[key][...] = f(*params[key].shape, seed=len(key)) * (0.1 if key.startswith("v_") else 0.01)
        if self.method == "backward_update":
            self.plan.forward_loss(f(4, 3, seed=5), np.array([0, 2, 1, 1]))
        self.held = [params[k] for k in sorted(params)]

    def __call__(self, **kwargs):
        return getattr(self.plan, self.method)(**kwargs)


def core_function(name: str, dtype=np.float64):
    """What the tables' ``name`` calls: the _core function, or a fresh :class:`PlanCall`
    (``dtype``: its network's) for a ``"Plan.<method>"`` name. One PlanCall per call."""
    return PlanCall(name, dtype) if name.startswith("Plan.") else getattr(core, name)


def held_arrays(func) -> list:
    """The arrays a PlanCall's plan updates in place (none for a _core function: see IN_PLACE)."""
    return list(getattr(func, "held", []))


# run-time settings and queries: no array arguments
NO_ARRAYS = {"set_num_threads", "get_num_threads", "hardware_threads", "simd_level", "best_simd_level",
             "set_simd_level", "gemm_blocking", "dropout_call_seed", "set_conv_algo", "get_conv_algo"}


def public_functions():
    # functions only: the step plan's methods are the "Plan.<name>" entries (plan_methods)
    return {n for n in dir(core) if not n.startswith("_") and callable(getattr(core, n))
            and not isinstance(getattr(core, n), type)}


# parameter -> kind, for every parameter that is not an array: "float", "int", "pair", "bool",
# "str", "seed" (0 <= seed < 2**64), "flags" (a list of bools, one per plan parameter),
# "optional_float" (a float or None). Parameters left out of a call keep their defaults.
_HYPER = {"learning_rate": "float", "beta": "float", "beta1": "float", "beta2": "float", "eps": "float", "t": "int",
          "weight_decay": "float"}  # the plan's optimizer step (step, epoch, backward_update)
SCALAR_ARGS: dict[str, dict[str, str]] = {
    "gemm": {"alpha": "float", "beta": "float", "trans_a": "bool", "trans_b": "bool"},
    "activation_forward": {"kind": "str"},
    "activation_backward": {"kind": "str"},
    "softmax": {},
    "dense_forward": {"activation": "str"},
    "dense_backward": {"lambda_": "float", "need_dX": "bool", "relu_mask": "bool"},
    "bias_add": {},
    "bias_grad": {},
    "conv2d_forward": {"stride": "pair", "padding": "pair", "dilation": "pair", "groups": "int"},
    "conv2d_backward": {"stride": "pair", "padding": "pair", "dilation": "pair", "groups": "int",
                        "need_dx": "bool", "need_dw": "bool", "need_db": "bool"},
    "conv2d_algorithm": {"stride": "pair", "padding": "pair", "dilation": "pair", "groups": "int"},
    "maxpool2d_forward": {"kernel_size": "pair", "stride": "pair", "padding": "pair"},
    "maxpool2d_backward": {"kernel_size": "pair", "stride": "pair", "padding": "pair"},
    "avgpool2d_forward": {"kernel_size": "pair", "stride": "pair", "padding": "pair"},
    "avgpool2d_backward": {"kernel_size": "pair", "stride": "pair", "padding": "pair"},
    "global_avgpool_forward": {},
    "global_avgpool_backward": {},
    "batchnorm_forward": {"training": "bool", "eps": "float", "momentum": "float"},
    "batchnorm_backward": {"training": "bool"},
    "dropout_forward": {"p": "float", "seed": "seed"},
    "dropout_backward": {"p": "float"},
    "add": {},
    "softmax_cross_entropy": {},
    "softmax_cross_entropy_backward": {},
    "mse": {"reduction": "str"},
    "mse_backward": {"reduction": "str"},
    "binary_cross_entropy": {"reduction": "str"},
    "binary_cross_entropy_backward": {"reduction": "str"},
    "binary_cross_entropy_with_logits": {"reduction": "str"},
    "binary_cross_entropy_with_logits_backward": {"reduction": "str"},
    "sum_of_squares": {},
    "sgd_update": {"learning_rate": "float", "weight_decay": "float"},
    "momentum_update": {"learning_rate": "float", "beta": "float", "weight_decay": "float"},
    "rmsprop_update": {"learning_rate": "float", "beta2": "float", "eps": "float", "weight_decay": "float"},
    "adam_update": {"learning_rate": "float", "beta1": "float", "beta2": "float", "t": "int", "eps": "float",
                    "weight_decay": "float"},
    "Plan.set_optimizer": {"kind": "str", "decay": "flags", "l2_in_backward": "bool"},
    "Plan.step": {**_HYPER, "max_loss": "optional_float", "check_finite": "bool"},
    "Plan.gradients": {"weight_decay": "float"},
    "Plan.forward_loss": {"check_finite": "bool"},
    "Plan.backward_update": dict(_HYPER),
    "Plan.forward": {},
    "Plan.epoch": {**_HYPER, "batch_size": "int", "max_loss": "optional_float", "check_finite": "bool"},
    "set_num_threads": {"n": "int"},
    "get_num_threads": {},
    "hardware_threads": {},
    "simd_level": {},
    "best_simd_level": {},
    "set_simd_level": {"level": "str"},
    "set_conv_algo": {"algorithm": "str"},
    "get_conv_algo": {},
    "gemm_blocking": {"dtype": "str"},
    "dropout_call_seed": {"seed": "seed", "call": "seed"},
}

# array arguments a function writes (or may write) in place
IN_PLACE: dict[str, tuple[str, ...]] = {
    "gemm": ("C",),
    "bias_add": ("Z",),
    "batchnorm_forward": ("running_mean", "running_var"),
    "sgd_update": ("w",),
    "momentum_update": ("w", "v"),
    "rmsprop_update": ("w", "s"),
    "adam_update": ("w", "v", "s"),
}  # a Plan method's: PlanCall.held
