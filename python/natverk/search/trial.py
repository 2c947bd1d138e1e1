"""A trial: train one network with a given lambda, report its accuracies.

A search (thesis §2.5) trains the same network once per candidate lambda and
compares them. Anything that is a picklable callable ``trial_fn(lambda_, seed)
-> dict`` with ``train_accuracy``, ``val_accuracy`` and ``test_accuracy`` can
be searched; :class:`MLPTrial` is the ready-made one for the MATLAB-style API
(``initialize_weights`` + ``train`` + ``check_accuracy``), i.e. the thesis'
own experiment of Tables 2-3.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from .._config import get_num_threads, set_num_threads
from .._validation import as_activation, first_non_finite
from ..neuralnet import initialize_weights
from ..optimizers.table import resolve
from ..train import train
from ..utils.check_accuracy import check_accuracy

__all__ = ["MLPTrial", "num_threads", "split_seed"]


def split_seed(seed: int | np.random.SeedSequence) -> tuple[np.random.Generator, np.random.Generator]:
    """Two independent generators from one trial seed: (initial weights, shuffling).

    ``initialize_weights(seed=s)`` and ``train(seed=s)`` with the same integer
    would draw from the *same* stream; spawning keeps the initial weights and
    the minibatch order independent while one integer still reproduces both.
    :func:`balance_principle` uses the same split, so with equal seeds it
    starts from the same weights and visits the same minibatches as a trial.
    """
    if not isinstance(seed, np.random.SeedSequence):
        seed = np.random.SeedSequence(int(seed))
    init, shuffle = seed.spawn(2)
    return np.random.default_rng(init), np.random.default_rng(shuffle)


# In-process trials (a serial search, or Dask's threaded workers) share one
# C++ pool whose size is process-wide: count how many trials are inside
# `num_threads` so that the last one out restores the caller's setting, no
# matter how the threads interleave.
_threads_lock = threading.Lock()
_threads_depth = 0
_threads_saved = 0


@contextmanager
def num_threads(n: int | None) -> Iterator[None]:
    """Run the block with natverk's kernels on ``n`` threads, then restore.

    ``None`` leaves the setting alone. Parallel trials each use one thread
    (``n=1``) so that ``jobs`` processes x ``n`` threads never oversubscribe
    the cores; it also makes every reduction run in one chunk, so a trial's
    numbers do not depend on where it ran.
    """
    global _threads_depth, _threads_saved
    if n is None:
        yield
        return
    with _threads_lock:
        if _threads_depth == 0:
            _threads_saved = get_num_threads()
        _threads_depth += 1
        if get_num_threads() != n:
            set_num_threads(n)
    try:
        yield
    finally:
        with _threads_lock:
            _threads_depth -= 1
            if _threads_depth == 0 and get_num_threads() != _threads_saved:
                set_num_threads(_threads_saved)


class MLPTrial:
    """Train the thesis' fully connected network with one lambda (picklable).

    ``MLPTrial(...)(lambda_, seed)`` does what the thesis did for each lambda
    in §4.1-4.2: ``initialize_weights(nodes)``, ``train(...)`` with L2
    strength ``lambda_`` (loss = cross-entropy + lambda/2 sum ||W_l||^2),
    then ``check_accuracy`` on the training, validation and test sets.

    Parameters
    ----------
    X_train, y_train : arrays
        Training examples (m x n0) and labels 0..K-1.
    X_val, y_val : arrays or None
        Validation set the search selects lambda on; ``None`` gives a NaN
        ``val_accuracy`` (then pick with ``best_by("test_accuracy")``).
    X_test, y_test : arrays or None
        Test set, reported only; ``None`` gives a NaN ``test_accuracy``.
    nodes : sequence of int
        Layer widths, e.g. ``[2, 250, 100, 50, 2]``.
    epochs, learning_rate, minibatch_size, activation, optimizer
        As for :func:`natverk.train` (Main script: 10000, 1e-4, 128, relu, adam).
    dtype : float32 or float64
    threads : int or None
        natverk kernel threads inside the trial (default 1, see
        :func:`num_threads`); ``None`` leaves the process setting alone.
    beta, beta1, beta2, lr_decay
        Passed on to :func:`natverk.train`.

    Notes
    -----
    The trial seed is split (:func:`split_seed`) into the weight
    initialisation and the shuffling, so ``trial(lam, seed)`` is a pure
    function of its arguments: the same call in a worker process, a Dask
    worker or here gives the same numbers.
    """

    def __init__(
        self,
        X_train,
        y_train,
        X_val,
        y_val,
        X_test,
        y_test,
        nodes: Sequence[int],
        epochs: int,
        learning_rate: float,
        minibatch_size: int = 128,
        activation: str = "relu",
        optimizer: str = "adam",
        dtype: Any = np.float64,
        threads: int | None = 1,
        *,
        beta: float = 0.9,
        beta1: float = 0.9,
        beta2: float = 0.99,
        lr_decay: bool = False,
    ) -> None:
        self.nodes = [int(n) for n in nodes]
        if len(self.nodes) < 2 or any(n < 1 for n in self.nodes):
            raise ValueError(f"nodes must be at least two positive widths, got {list(nodes)}")
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise TypeError(f"dtype must be float32 or float64, got {self.dtype}")
        self.X_train, self.y_train = _pair(X_train, y_train, "train", self.nodes[0], self.dtype, required=True)
        self.X_val, self.y_val = _pair(X_val, y_val, "val", self.nodes[0], self.dtype)
        self.X_test, self.y_test = _pair(X_test, y_test, "test", self.nodes[0], self.dtype)
        if isinstance(epochs, bool) or int(epochs) != epochs or epochs < 1:
            raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
        self.epochs = int(epochs)
        learning_rate = float(learning_rate)
        if not (math.isfinite(learning_rate) and learning_rate > 0):
            raise ValueError(f"learning_rate must be finite and > 0, got {learning_rate}")
        self.learning_rate = learning_rate
        if isinstance(minibatch_size, bool) or int(minibatch_size) != minibatch_size or minibatch_size < 1:
            raise ValueError(f"minibatch_size must be a positive integer, got {minibatch_size!r}")
        self.minibatch_size = int(minibatch_size)
        self.activation = as_activation(activation)  # any case, as train() reads it
        resolve(optimizer)  # one of the optimizer table's names (ValueError otherwise)
        self.optimizer = optimizer
        if threads is not None and (isinstance(threads, bool) or int(threads) != threads or threads < 1):
            raise ValueError(f"threads must be a positive integer or None, got {threads!r}")
        self.threads = None if threads is None else int(threads)
        self.beta, self.beta1, self.beta2 = float(beta), float(beta1), float(beta2)
        self.lr_decay = bool(lr_decay)

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Unpickled (in a pool or Dask worker), NumPy >= 2 gives the arrays new
        # dtype objects, and natverk's C++ bindings recognise float64/float32 by
        # dtype *identity* (cpp/bindings/checks.h, has_dtype): re-view every
        # array with NumPy's canonical dtype so the kernels accept it.
        state = {k: _canonical(v) if isinstance(v, np.ndarray) else v for k, v in state.items()}
        state["dtype"] = np.dtype(state["dtype"].str)
        self.__dict__.update(state)

    def __repr__(self) -> str:
        return (
            f"MLPTrial(nodes={self.nodes}, m_train={len(self.y_train)}, epochs={self.epochs}, "
            f"learning_rate={self.learning_rate}, minibatch_size={self.minibatch_size}, "
            f"activation={self.activation!r}, optimizer={self.optimizer!r}, threads={self.threads})"
        )

    def __call__(self, lambda_: float, seed: int) -> dict[str, float]:
        """Train with L2 strength ``lambda_`` from ``seed``; return the accuracies.

        Returns ``train_accuracy``, ``val_accuracy``, ``test_accuracy`` and
        ``final_loss`` (mean minibatch loss, penalty included, of the last epoch).
        """
        with num_threads(self.threads):
            parameters, history = self.fit(lambda_, seed)
            return {
                **accuracies(parameters, self, self.activation),
                "final_loss": float(history["loss"][-1]),
            }

    def fit(self, lambda_: float, seed: int) -> tuple[dict, dict]:
        """The network ``trial(lambda_, seed)`` scores: ``(parameters, history)``.

        The one place a trial trains, so a report that draws a row's network
        (a decision-boundary figure) gets the very weights the row's numbers came from.
        """
        init_rng, shuffle_rng = split_seed(seed)
        with num_threads(self.threads):
            parameters = initialize_weights(self.nodes, seed=init_rng, dtype=self.dtype)
            history = train(
                parameters,
                self.X_train,
                self.y_train,
                self.epochs,
                self.learning_rate,
                self.minibatch_size,
                lambda_,
                self.activation,
                self.optimizer,
                beta=self.beta,
                beta1=self.beta1,
                beta2=self.beta2,
                lr_decay=self.lr_decay,
                seed=shuffle_rng,
                eval_every=self.epochs,  # accuracy once, at the end: the search reports only that
                verbose=0,
            )
        return parameters, history


def accuracies(parameters: dict, data: Any, activation: str) -> dict[str, float]:
    """Train/val/test accuracy of ``parameters`` on ``data``'s ``X_*``/``y_*``
    attributes (NaN for a set that is None)."""
    out = {}
    for split in ("train", "val", "test"):
        X, y = getattr(data, f"X_{split}"), getattr(data, f"y_{split}")
        out[f"{split}_accuracy"] = math.nan if X is None else check_accuracy(X, y, parameters, 0.0, activation)[0]
    return out


def _pair(X, y, split: str, n_features: int, dtype: np.dtype, required: bool = False):
    """Check one (X, y) split up front, so a bad array fails here and not in
    every worker; returns contiguous arrays (cheap to pickle) or (None, None)."""
    if X is None and y is None and not required:
        return None, None
    if X is None or y is None:
        raise ValueError(f"X_{split} and y_{split} must be given together")
    X = _canonical(np.ascontiguousarray(X, dtype=dtype))
    y = _canonical(np.ascontiguousarray(y).reshape(-1))
    if X.ndim != 2 or X.shape[1] != n_features:
        raise ValueError(f"X_{split} must be (m x {n_features}) for nodes[0] = {n_features}, got shape {X.shape}")
    if X.shape[0] == 0 or y.shape[0] != X.shape[0]:
        raise ValueError(f"X_{split} has {X.shape[0]} rows but y_{split} has {y.shape[0]} labels")
    bad = first_non_finite(X)
    if bad is not None:
        raise ValueError(f"X_{split} contains NaN or Inf (first at index {bad})")
    return X, y


def _canonical(a: np.ndarray) -> np.ndarray:
    """``a`` viewed with NumPy's canonical dtype object (no copy); see
    :meth:`MLPTrial.__setstate__` for why."""
    canonical = np.dtype(a.dtype.str)
    return a if a.dtype is canonical else a.view(canonical)
