"""The training loop of the MATLAB ``Main`` script, as a function.

Every epoch shuffles the training set (MATLAB ``randperm``), walks it in
minibatches, and for each batch runs ``forward_propagation``,
``back_propagation`` and an optimizer step. Unlike the seed's loop, the
minibatches cover every example exactly once per epoch and are never empty
(the seed's ``end = min(start + mb, m) - 1`` drops one example per epoch and
makes an empty batch when ``mb`` divides ``m``).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ._divergence import as_max_loss, check_loss
from ._validation import as_activation, as_inputs, as_labels, as_lambda, network_layout
from .neuralnet import back_propagation, forward_propagation
from . import _core
from . import optimizers as _optimizers
from .optimizers.table import OPTIMIZERS as _TABLE
from .optimizers.table import resolve
from .utils.exponential_decay import exponential_decay

#: Every optimizer name train() accepts (the table's names and aliases).
OPTIMIZERS = tuple(sorted(a for spec in _TABLE.values() for a in spec.accepted))


def minibatches(m: int, batch_size: int, rng: np.random.Generator | None = None) -> list[np.ndarray]:
    """Index arrays of the minibatches of one epoch: a permutation of ``range(m)``
    (identity order when ``rng`` is None) cut into pieces of ``batch_size``;
    the last piece holds the remainder. Every index appears exactly once."""
    order = _epoch_order(m, batch_size, rng)
    return [order[i : i + int(batch_size)] for i in range(0, m, int(batch_size))]


def _epoch_order(m: int, batch_size: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """The rows of one epoch in the order :func:`minibatches` cuts them (one ``rng.permutation``
    draw, identity order when ``rng`` is None): what :func:`train`'s step plan walks."""
    if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"minibatch_size must be a positive integer, got {batch_size!r}")
    if m < 1:
        raise ValueError(f"there must be at least one training example, got {m}")
    return rng.permutation(m) if rng is not None else np.arange(m)


def apply_optimizer(gradients: Mapping[str, np.ndarray], parameters: dict, optimizer: str, learning_rate: float,
                    beta: float = 0.9, beta1: float = 0.9, beta2: float = 0.99, t: int = 1) -> dict:
    """``gradient_descent_<optimizer>`` by name, as the MATLAB ``Main`` script picks its
    optimizer (``t`` is Adam's step count, used only by Adam). The name, and which
    MATLAB function and hyper-parameters it takes, come from the optimizer table."""
    spec = resolve(optimizer)
    given = {"beta": beta, "beta1": beta1, "beta2": beta2}
    # the MATLAB functions take the table's hyper-parameters in its order (eps: their default)
    args = [given[h] for h in spec.hyper if h in given]
    if spec.name == "adam":
        args.append(t)
    return getattr(_optimizers, spec.matlab)(gradients, parameters, learning_rate, *args)


def train_step_by_step(parameters: dict, X, y, learning_rate: float, lambda_: float = 0.0,
                       activation: str = "relu", optimizer: str = "adam", beta: float = 0.9,
                       beta1: float = 0.9, beta2: float = 0.99, t: int = 1) -> float:
    """One minibatch step exactly as the MATLAB ``Main`` loop spells it: forward_propagation,
    back_propagation, gradient_descent_<optimizer>. :func:`train` runs the same maths in the
    C++ step plan (``natverk.models._plan.matlab_plan``), a whole epoch per call; the tests
    check the two agree bit for bit."""
    _, loss, cache = forward_propagation(X, y, parameters, lambda_, activation)
    gradients = back_propagation(cache, y, parameters, lambda_, activation)
    apply_optimizer(gradients, parameters, optimizer, learning_rate, beta, beta1, beta2, t)
    return loss


def _plan_accuracy(plan, X: np.ndarray, y: np.ndarray) -> float:
    """``check_accuracy(X, y, parameters)[0]`` through ``train``'s plan, which holds the same
    parameters: the logits of EVAL_ROWS rows a call (a row's logits are the bits
    forward_propagation gives it, whatever the chunk: tests/test_plan.py), the same softmax
    and arg-max, and the same count over the same m. Through forward_propagation, the per-call
    kernels over all of X at once allocated every layer's activations for all m rows; this way a
    one-epoch ``train()`` of (a) ran 2 % faster, of (c) 8 % (benchmarks/README.md, paired A/B)."""
    from .models._plan import EVAL_ROWS

    correct = 0
    for i in range(0, X.shape[0], EVAL_ROWS):
        probs = _core.softmax(plan.forward(X[i : i + EVAL_ROWS]))
        correct += int(np.count_nonzero(np.argmax(probs, axis=1) == y[i : i + EVAL_ROWS]))
    return correct / X.shape[0]


def train(
    parameters: dict,
    X_train,
    y_train,
    epochs: int,
    learning_rate: float,
    minibatch_size: int = 128,
    lambda_: float = 0.0,
    activation: str = "relu",
    optimizer: str = "adam",
    beta: float = 0.9,
    beta1: float = 0.9,
    beta2: float = 0.99,
    lr_decay: bool = False,
    seed: int | np.random.Generator | None = None,
    eval_every: int | None = None,
    X_val=None,
    y_val=None,
    verbose: int | str = "auto",
    adam_t: int = 0,
    max_loss: float | None = None,
) -> dict:
    """Train ``parameters`` in place, as the MATLAB Main script's loop does.

    Parameters
    ----------
    parameters : dict
        From :func:`initialize_weights`; updated in place.
    X_train, y_train : arrays
        Examples (m x n0) and integer labels.
    epochs, learning_rate, minibatch_size, lambda_, activation
        As in the Main script (which uses 10000, 1e-4, 128, 0, "relu").
    optimizer : {"vanilla" (= "sgd"), "momentum", "rmsprop", "adam"}
        Any name of the optimizer table (:mod:`natverk.optimizers.table`).
    beta, beta1, beta2 : float
        Momentum's beta; Adam's (and RMSprop's beta2) moments.
    lr_decay : bool
        Apply :func:`exponential_decay` to the learning rate every epoch.
    seed : int, Generator or None
        Seeds the shuffling; the same seed and initial weights give the same run.
    eval_every : int or None
        Record the training (and validation) accuracy every this many epochs
        and at the end; default about 100 times per run.
    verbose : 0, 1, 2 or "auto"
        0 silent, 1 a progress bar, 2 a line at each tenth of the run (as
        ``Sequential.fit``'s one line per epoch, without flooding a log). "auto"
        (the default) is 1 in a terminal or a notebook and 2 otherwise.
    adam_t : int
        Adam steps already taken (to continue a run); the count is returned.
    max_loss : float or None
        Stop with :class:`~natverk.DivergenceError` when a minibatch's loss
        exceeds this, even while it is finite (a NaN or Inf loss always stops).
        The batch whose loss stops training is not applied: ``parameters``
        hold the last good step's weights.

    Notes
    -----
    Each epoch runs in one call of the C++ step plan
    (:func:`natverk.models._plan.matlab_plan`): forward, loss, backward and the
    update of every minibatch, over ``parameters``' own arrays, bit-identical to
    :func:`train_step_by_step` (``forward_propagation`` + ``back_propagation`` +
    ``gradient_descent_*``) batch after batch.

    Returns
    -------
    dict
        ``epoch`` (the epochs evaluated), ``loss`` (mean batch loss of those
        epochs: ``data_loss``, the cross-entropy, plus ``penalty``, the L2
        term ``lambda_ / 2 * sum ||W_l||^2`` of eq. 9), ``train_accuracy``, ``val_accuracy`` (when validation data is
        given) and ``adam_t``.
    """
    dtype, L = network_layout(parameters)
    activation = as_activation(activation)
    lambda_ = as_lambda(lambda_)
    spec = resolve(optimizer)
    if isinstance(epochs, bool) or int(epochs) != epochs or epochs < 0:
        raise ValueError(f"epochs must be a non-negative integer, got {epochs!r}")
    epochs = int(epochs)
    X = as_inputs(X_train, dtype, parameters["W1"].shape[0], "X_train")
    n_classes = parameters[f"W{L}"].shape[1]
    y = as_labels(y_train, X.shape[0], n_classes, "y_train")
    has_val = X_val is not None
    if has_val:
        X_val = as_inputs(X_val, dtype, parameters["W1"].shape[0], "X_val")
        y_val = as_labels(y_val, X_val.shape[0], n_classes, "y_val")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    max_loss = as_max_loss(max_loss)
    every = max(1, epochs // 100) if eval_every is None else int(eval_every)
    if every < 1:
        raise ValueError(f"eval_every must be >= 1, got {eval_every}")

    # forward_propagation + back_propagation + gradient_descent_<optimizer> as one C++ plan over
    # the dict's own arrays (bit-identical to the three calls: see train_step_by_step)
    from .models._plan import matlab_plan

    plan = matlab_plan(parameters, activation, spec.name)

    history: dict[str, list] = {"epoch": [], "loss": [], "data_loss": [], "penalty": [], "train_accuracy": []}
    if has_val:
        history["val_accuracy"] = []
    t = int(adam_t)

    from .models.sequential import _as_verbose  # the one rule for "auto" (here: no import cycle)

    verbose = _as_verbose(verbose)
    line_every = max(1, epochs // 10)  # verbose=2: about ten lines per run
    bar = None
    epoch_iter: object = range(1, epochs + 1)
    if verbose == 1:
        from tqdm.auto import tqdm

        bar = tqdm(epoch_iter, desc="training", unit="epoch", leave=True)
        epoch_iter = bar
    for epoch in epoch_iter:  # type: ignore[attr-defined]
        lr = exponential_decay(learning_rate, epoch) if lr_decay else learning_rate
        # every minibatch of the epoch in one call; it stops before the update of a batch whose
        # loss is not finite (or exceeds max_loss), which check_loss then reports
        r = plan.epoch(X, y, _epoch_order(X.shape[0], minibatch_size, rng), int(minibatch_size), learning_rate=lr,
                       beta=beta, beta1=beta1, beta2=beta2, t=t + 1, weight_decay=lambda_, max_loss=max_loss,
                       check_finite=False)
        if spec.name == "adam":
            t += int(r["steps"])
        data_losses, penalties = r["data_loss"], r["penalty"]
        losses = data_losses + penalties  # data_loss + lambda/2 psi, per batch
        if r["interrupt"] is not None:
            raise r["interrupt"]
        if r["stopped"] is not None:
            if r["error"] is not None:
                raise ValueError(r["error"])
            step = int(r["stopped"])
            check_loss(float(losses[step]), epoch=epoch, step=step + 1, learning_rate=lr, max_loss=max_loss)
        if epoch % every == 0 or epoch == epochs:
            acc = _plan_accuracy(plan, X, y)
            history["epoch"].append(epoch)
            history["loss"].append(float(np.mean(losses)))
            history["data_loss"].append(float(np.mean(data_losses)))
            history["penalty"].append(float(np.mean(penalties)))
            history["train_accuracy"].append(acc)
            postfix = {"loss": f"{np.mean(losses):.4f}", "train_acc": f"{acc:.3f}"}
            if has_val:
                val_acc = _plan_accuracy(plan, X_val, y_val)
                history["val_accuracy"].append(val_acc)
                postfix["val_acc"] = f"{val_acc:.3f}"
            if bar is not None:
                bar.set_postfix(postfix)
            elif verbose == 2 and (epoch % line_every < every or epoch == epochs):
                print(f"Epoch {epoch}/{epochs} - " + " - ".join(f"{k}: {v}" for k, v in postfix.items()), flush=True)
    if bar is not None:
        bar.close()
    history["adam_t"] = t
    return history
