"""The balance principle (zero-crossing method): lambda chosen while training.

Thesis §2.5, "Balansmetoden", eq. 46-47. With the Tikhonov functional

    J_lambda(x) = phi(x) + lambda psi(x)                               (46)

(phi the data misfit, psi the penalty, x the network's weights) one guesses
lambda_0 and, after each training iteration, sets

    lambda_{k+1} = phi(x_k) / (gamma psi(x_k))                         (47)

with gamma = 1 in the thesis ("Zero Crossing Method"). At a fixed point the
penalty term lambda psi equals phi / gamma: data fit and regularisation are in
balance. No network is trained twice, unlike a grid search.

Our loss (:func:`natverk.forward_propagation`) is

    loss = mean_i(-log probs[i, y_i]) + lambda/2 sum_l ||W_l||_F^2

— the penalty is *not* divided by the minibatch size m and carries a 1/2 —
so to make it eq. 46 exactly we take

    phi(x) = mean cross-entropy (``cache["no_reg_loss"]``),
    psi(x) = 1/2 sum_l ||W_l||_F^2 (``cache["psi"] / 2``; biases are not penalised).

(The thesis writes phi as 1/2 ||y_hat - y||^2 and psi = ||W||; ours are the
same roles for the cross-entropy network it trained. Using the plain sum of
squares as psi instead is the same as gamma = 2 here.)
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._divergence import check_loss
from .._validation import as_labels
from ..models._plan import matlab_plan
from ..neuralnet import forward_propagation, initialize_weights
from ..optimizers.table import resolve
from ..train import minibatches
from ..utils.exponential_decay import exponential_decay
from ._result import SearchResult
from .trial import MLPTrial, accuracies, num_threads, split_seed

__all__ = ["BalanceResult", "balance_lambda", "balance_principle"]


def balance_lambda(phi: float, psi: float, gamma: float = 1.0, lambda_max: float | None = None) -> float:
    """Eq. 47: ``phi / (gamma psi)``, checked to be finite, capped at ``lambda_max``."""
    if not (math.isfinite(phi) and math.isfinite(psi)):
        raise FloatingPointError(f"phi = {phi}, psi = {psi}: the training diverged, lower the learning rate")
    if psi <= 0:
        raise FloatingPointError("psi = 0 (every weight is zero): the balance principle's lambda is undefined")
    lam = phi / (gamma * psi)
    if not math.isfinite(lam):
        raise FloatingPointError(f"lambda = phi / (gamma psi) = {phi} / ({gamma} * {psi}) overflowed")
    return lam if lambda_max is None else min(lam, lambda_max)


@dataclass
class BalanceResult:
    """What :func:`balance_principle` returns.

    Attributes
    ----------
    lambda_ : float
        The lambda of the last training iteration: the "dynamic lambda" of the
        thesis' Tables 2-3.
    lambdas, phi, psi : ndarray
        Per update (every iteration, or every epoch with ``update="epoch"``):
        the lambda the gradient step used, and phi, psi at the parameters
        it was computed from (psi = 1/2 sum ||W_l||^2, see the module notes).
    epoch_lambdas : ndarray
        The lambda in use at the end of each epoch.
    row : dict
        ``lambda`` (= ``lambda_``), ``seed``, ``train_accuracy``,
        ``val_accuracy``, ``test_accuracy``, ``time_s``: a search row.
    parameters : dict
        The trained network.
    gamma, update : float, str
        The settings it ran with.
    """

    lambda_: float
    lambdas: np.ndarray
    phi: np.ndarray
    psi: np.ndarray
    epoch_lambdas: np.ndarray
    row: dict[str, Any]
    parameters: dict[str, np.ndarray] = field(repr=False)
    gamma: float = 1.0
    update: str = "iteration"

    def to_search_result(self) -> SearchResult:
        """The one-row :class:`SearchResult` (for tables beside the searches)."""
        return SearchResult([self.row], method="balance", info={"gamma": self.gamma, "update": self.update})

    def to_markdown(self, digits: int = 4) -> str:
        return self.to_search_result().to_markdown("rows", digits)


def balance_principle(
    X_train,
    y_train,
    nodes: Sequence[int],
    *,
    epochs: int,
    learning_rate: float,
    minibatch_size: int = 128,
    gamma: float = 1.0,
    lambda0: float | None = None,
    X_val=None,
    y_val=None,
    X_test=None,
    y_test=None,
    seed: int = 0,
    activation: str = "relu",
    optimizer: str = "adam",
    beta: float = 0.9,
    beta1: float = 0.9,
    beta2: float = 0.99,
    lr_decay: bool = False,
    update: str = "iteration",
    lambda_max: float | None = None,
    dtype: Any = np.float64,
    threads: int | None = None,
    callback: Callable[[dict[str, Any]], None] | None = None,
) -> BalanceResult:
    """Train one network choosing lambda by the balance principle (thesis §2.5, eq. 47).

    It trains with :func:`natverk.train`'s step plan
    (:func:`natverk.models._plan.matlab_plan`: shuffle every epoch, walk
    minibatches, forward, backward, optimizer step), each step in two halves
    (``forward_loss``, then ``backward_update`` with the lambda chosen from
    it), so lambda is updated as it goes:

    ``update="iteration"`` (the thesis): iteration k computes the forward pass
    on its minibatch at the current weights x_k, sets
    ``lambda_k = phi(x_k) / (gamma psi(x_k))`` and takes the gradient step with
    it. So lambda_k is eq. 47's lambda_{k+1}, evaluated at the weights the
    previous iteration (trained with lambda_{k-1}) left; phi is the minibatch's
    data loss, an unbiased estimate of the training-set one that costs no extra
    forward pass. ``lambda0`` (a guess) replaces the formula in iteration 0
    only; ``None`` (default) uses the formula there too.

    ``update="epoch"``: lambda is held for a whole epoch and updated at its end
    from phi and psi of the *whole* training set at the current weights (less
    noisy, one extra forward pass per epoch); the first epoch uses ``lambda0``
    or, if None, the formula at the initial weights.

    Parameters
    ----------
    X_train, y_train, nodes
        Data and layer widths, as for :class:`MLPTrial`.
    epochs, learning_rate, minibatch_size, activation, optimizer, beta, beta1, beta2, lr_decay
        As for :func:`natverk.train`.
    gamma : float
        The balance constant, > 0; 1 is the zero-crossing method the thesis used.
    lambda0 : float or None
        Initial guess (>= 0), see above.
    X_val, y_val, X_test, y_test : arrays or None
        Evaluated at the end (NaN accuracy when not given).
    seed : int
        Split as in :class:`MLPTrial` (:func:`split_seed`): with equal seeds
        both start from the same weights and visit the same minibatches.
    update : {"iteration", "epoch"}
    lambda_max : float or None
        Cap on lambda (None: none, as in the thesis). The iteration has a
        positive feedback: a larger lambda shrinks the weights, which shrinks
        psi and raises the next lambda. On networks with few weights (small
        psi) that are still near their initial loss this can run away until
        the weights collapse to zero (measured: ``[2, 8, 2]`` on 100 linear
        points, lambda 0.18 -> 1.3 in 20 epochs, 62 % accuracy); a cap stops
        it. On the thesis' ``[2, 250, 100, 50, K]`` psi is ~400 and lambda
        instead falls as the network fits (phi -> 0).
    dtype : float32 or float64
    threads : int or None
        natverk kernel threads during the run (restored afterwards); None
        leaves the setting alone.
    callback : callable or None
        Called before every gradient step with a dict ``iteration``,
        ``epoch``, ``batch`` (the minibatch's row indices), ``parameters``
        (the live weights x_k: copy what you keep), ``lambda_``, ``phi``,
        ``psi``.

    Returns
    -------
    BalanceResult

    Raises
    ------
    FloatingPointError
        If phi, psi or lambda stop being finite (too high a learning rate).
    """
    # MLPTrial validates the data and hyper-parameters the same way a search does.
    spec = MLPTrial(
        X_train, y_train, X_val, y_val, X_test, y_test, nodes, epochs, learning_rate,
        minibatch_size, activation, optimizer, dtype, threads,
        beta=beta, beta1=beta1, beta2=beta2, lr_decay=lr_decay,
    )  # fmt: skip
    gamma = float(gamma)
    if not (math.isfinite(gamma) and gamma > 0):
        raise ValueError(f"gamma must be finite and > 0, got {gamma}")
    if lambda0 is not None:
        lambda0 = float(lambda0)
        if not (math.isfinite(lambda0) and lambda0 >= 0):
            raise ValueError(f"lambda0 must be None or finite and >= 0, got {lambda0}")
    if lambda_max is not None:
        lambda_max = float(lambda_max)
        if not (lambda_max > 0 and not math.isnan(lambda_max)):
            raise ValueError(f"lambda_max must be None or > 0, got {lambda_max}")
    if update not in ("iteration", "epoch"):
        raise ValueError(f"update must be 'iteration' or 'epoch', got {update!r}")
    if isinstance(seed, bool) or int(seed) != seed or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    seed = int(seed)

    start = time.perf_counter()
    init_rng, shuffle_rng = split_seed(seed)
    X = spec.X_train
    y = as_labels(spec.y_train, X.shape[0], spec.nodes[-1], "y_train")
    adam = resolve(spec.optimizer).name == "adam"
    lambdas: list[float] = []
    phis: list[float] = []
    psis: list[float] = []
    epoch_lambdas: list[float] = []
    with num_threads(spec.threads):
        parameters = initialize_weights(spec.nodes, seed=init_rng, dtype=spec.dtype)
        # train()'s plan over the dict's own arrays: the lambda of each step is its weight decay,
        # entering as back_propagation's L2 gradient does
        plan = matlab_plan(parameters, spec.activation, spec.optimizer)
        if update == "epoch":
            phi, psi = _phi_psi(X, y, parameters, spec.activation)
            lam = lambda0 if lambda0 is not None else balance_lambda(phi, psi, gamma, lambda_max)
            lambdas.append(lam)
            phis.append(phi)
            psis.append(psi)
        t = 0
        iteration = 0
        for epoch in range(1, spec.epochs + 1):
            lr = exponential_decay(spec.learning_rate, epoch) if spec.lr_decay else spec.learning_rate
            for step, idx in enumerate(minibatches(X.shape[0], spec.minibatch_size, shuffle_rng), start=1):
                # x_k's phi and psi from the step's own forward pass (X was checked by MLPTrial)
                phi, sum_sq, _ = plan.forward_loss(X, y, rows=idx, check_finite=False)
                phi, psi = _checked(phi, 0.5 * sum_sq, (epoch, step, lr))
                if update == "iteration":
                    lam = (
                        lambda0
                        if (iteration == 0 and lambda0 is not None)
                        else balance_lambda(phi, psi, gamma, lambda_max)
                    )
                    lambdas.append(lam)
                    phis.append(phi)
                    psis.append(psi)
                if callback is not None:
                    callback({
                        "iteration": iteration, "epoch": epoch, "batch": idx, "parameters": parameters,
                        "lambda_": lam, "phi": phi, "psi": psi,
                    })  # fmt: skip
                t += adam  # Adam's step count (the other optimizers ignore t)
                plan.backward_update(lr, beta=spec.beta, beta1=spec.beta1, beta2=spec.beta2, t=max(t, 1),
                                     weight_decay=lam)
                iteration += 1
            epoch_lambdas.append(lam)
            if update == "epoch" and epoch < spec.epochs:
                phi, psi = _phi_psi(X, y, parameters, spec.activation)
                lam = balance_lambda(phi, psi, gamma, lambda_max)
                lambdas.append(lam)
                phis.append(phi)
                psis.append(psi)
        row = {"lambda": float(lam), "seed": seed, **accuracies(parameters, spec, spec.activation)}
    row["time_s"] = time.perf_counter() - start
    return BalanceResult(
        lambda_=float(lam),
        lambdas=np.array(lambdas, dtype=np.float64),
        phi=np.array(phis, dtype=np.float64),
        psi=np.array(psis, dtype=np.float64),
        epoch_lambdas=np.array(epoch_lambdas, dtype=np.float64),
        row=row,
        parameters=parameters,
        gamma=gamma,
        update=update,
    )


def _phi_psi(X, y, parameters, activation):
    """phi (mean cross-entropy) and psi (1/2 sum ||W_l||^2) of the whole training set at
    ``parameters`` (``update="epoch"``).

    ``forward_propagation`` with lambda = 0 (its probs and cache do not depend on lambda, and phi
    must be the loss without the penalty), not the plan: the plan's training buffers, gradient
    buffers included, would grow to the whole training set for the rest of the run."""
    _, _, cache = forward_propagation(X, y, parameters, 0.0, activation)
    return _checked(float(cache["no_reg_loss"]), 0.5 * float(cache["psi"]))


def _checked(phi, psi, where=None):
    """``(phi, psi)``, raising when either is not finite (a diverged run): the shared
    DivergenceError where ``where = (epoch, step, learning_rate)`` of a minibatch is known,
    FloatingPointError otherwise."""
    if where is not None:
        epoch, step, lr = where
        check_loss(phi, epoch=epoch, step=step, learning_rate=lr)
        check_loss(psi, epoch=epoch, step=step, learning_rate=lr, what="psi = 1/2 sum ||W||^2")
    if not (math.isfinite(phi) and math.isfinite(psi)):
        raise FloatingPointError(f"phi = {phi}, psi = {psi}: the training diverged, lower the learning rate")
    return phi, psi
