"""The :class:`Sequential` model: a layer stack with fit / predict / evaluate / save."""

from __future__ import annotations

import os

import numpy as np

from ..layers._base import as_int, as_seed, fresh_seed, register
from ..layers.container import Stack
from ..losses import Loss, get_loss
from ..optimizers.classes import Adam, Optimizer, get_optimizer


def _as_inputs(X, name: str) -> np.ndarray:
    X = np.asarray(X)
    if X.dtype.kind not in "fiu":
        raise TypeError(f"{name} must be a real numeric array, got dtype {X.dtype}")
    if X.ndim < 1 or X.shape[0] == 0:
        raise ValueError(f"{name} must hold at least one example along axis 0, got shape {X.shape}")
    if X.dtype not in (np.float32, np.float64):
        X = X.astype(np.float64)
    return X


def _as_batch_size(batch_size) -> int:
    return as_int(batch_size, "batch_size", 1)


@register
class Sequential(Stack):
    """Layers applied in order, with training and saving.

    >>> from natverk.layers import Conv2D, ReLU, MaxPool2D, Flatten, Dense
    >>> model = Sequential(Conv2D(1, 8, 3, padding=1, seed=0), ReLU(), MaxPool2D(2),
    ...                    Flatten(), Dense(8 * 4 * 4, 2, seed=1))
    >>> history = model.fit(X, y, epochs=5, batch_size=32, optimizer=Adam(1e-2), seed=0)  # doctest: +SKIP

    Parameter names are prefixed with the layer index (``"0.W"``, ``"0.b"``,
    ``"4.W"``...). ``train()`` / ``eval()`` set the mode ``forward`` uses when
    its ``training`` argument is None; ``fit`` always trains in training mode
    and ``predict`` / ``evaluate`` always run in evaluation mode, whatever the
    current mode.

    Attributes kept between ``fit`` calls and saved by :meth:`save`:
    ``optimizer`` (with its state), ``loss``, ``epoch`` (epochs trained so
    far) and ``seed`` (the shuffling seed). Epoch ``e``'s shuffle is a
    permutation drawn from ``numpy.random.default_rng([seed, e])``, so calling
    ``fit`` for 3 epochs and then 2 more -- or saving after 3, loading and
    fitting 2 more -- gives bit-identical weights to fitting 5 epochs at once.
    """

    def __init__(self, *layers):
        super().__init__(*layers)
        self.optimizer: Optimizer | None = None
        self.loss: Loss | None = None
        self.epoch = 0
        self.seed: int | None = None

    # -- inference -----------------------------------------------------------------
    def predict_logits(self, X, batch_size: int = 1000) -> np.ndarray:
        """The network's outputs for ``X`` in evaluation mode, computed ``batch_size`` rows at a time."""
        X = _as_inputs(X, "X")
        bs = _as_batch_size(batch_size)
        outs = [self.forward(X[i : i + bs], training=False) for i in range(0, X.shape[0], bs)]
        return np.concatenate(outs, axis=0)

    def predict(self, X, batch_size: int = 1000) -> np.ndarray:
        """Class indices (int64): the argmax of the outputs, or ``output > 0`` for a single output."""
        return Loss().predict(self.predict_logits(X, batch_size))

    def evaluate(self, X, y, loss="cross_entropy", batch_size: int = 1000) -> tuple[float, float]:
        """``(loss, accuracy)`` on (X, y) in evaluation mode (accuracy as the loss defines it)."""
        loss_fn = get_loss(loss)
        X = _as_inputs(X, "X")
        out = self.predict_logits(X, batch_size)
        targets = loss_fn.check_targets(y, out.shape)
        return loss_fn.forward(out, targets), loss_fn.accuracy(out, targets)

    # -- training ------------------------------------------------------------------
    def fit(
        self,
        X,
        y,
        epochs: int,
        batch_size: int = 32,
        optimizer: Optimizer | str | None = None,
        loss="cross_entropy",
        validation_data=None,
        shuffle: bool = True,
        seed: int | None = None,
        verbose: int = 1,
    ) -> dict[str, list]:
        """Train for ``epochs`` more epochs of minibatch gradient descent.

        Every epoch walks a permutation of the examples (identity order with
        ``shuffle=False``) in minibatches of ``batch_size``; every example is
        used exactly once per epoch, the last batch holds the remainder.

        Parameters
        ----------
        X, y : arrays
            Inputs (N, ...) and targets: integer labels for cross-entropy,
            float arrays shaped like the outputs for "mse" / "bce".
        optimizer : Optimizer, name or None
            None continues with ``self.optimizer`` (e.g. after :func:`load`),
            or a fresh ``Adam()`` if there is none. Kept as ``self.optimizer``.
        loss : name or Loss
            "cross_entropy", "mse", "bce" or a :class:`~natverk.losses.Loss`.
        validation_data : (X_val, y_val) or None
            Evaluated after every epoch (evaluation mode).
        seed : int or None
            The shuffling seed; None reuses ``self.seed`` or draws a new one.
        verbose : int
            0 silent, 1 a tqdm progress bar.

        Returns
        -------
        dict
            Per-epoch lists: ``epoch`` (1-based, counting earlier fits),
            ``loss`` and ``accuracy`` (means over the epoch's training batches,
            in training mode), and ``val_loss`` / ``val_accuracy`` with
            validation data.
        """
        if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 0:
            raise ValueError(f"epochs must be a non-negative integer, got {epochs!r}")
        bs = _as_batch_size(batch_size)
        opt = get_optimizer(optimizer) if optimizer is not None else (self.optimizer or Adam())
        loss_fn = get_loss(loss)
        seed = as_seed(seed)
        if seed is None:
            seed = self.seed if self.seed is not None else fresh_seed()
        if verbose not in (0, 1, 2, True, False):
            raise ValueError(f"verbose must be 0 or 1, got {verbose!r}")
        X = _as_inputs(X, "X")
        N = X.shape[0]
        # Probe the output shape (evaluation mode: no state changes) so the
        # targets are checked once, up front, rather than batch by batch.
        out_shape = (N,) + self.forward(X[:1], training=False).shape[1:]
        targets = loss_fn.check_targets(y, out_shape)
        val = None
        if validation_data is not None:
            if not (isinstance(validation_data, (tuple, list)) and len(validation_data) == 2):
                raise ValueError("validation_data must be a pair (X_val, y_val)")
            Xv = _as_inputs(validation_data[0], "validation X")
            val = (Xv, validation_data[1])
            loss_fn.check_targets(val[1], (Xv.shape[0],) + out_shape[1:])

        self.optimizer, self.loss, self.seed = opt, loss_fn, seed
        history: dict[str, list] = {"epoch": [], "loss": [], "accuracy": []}
        if val is not None:
            history["val_loss"], history["val_accuracy"] = [], []
        n_batches = -(-N // bs)
        bar = None
        if verbose:
            from tqdm.auto import tqdm

            bar = tqdm(total=int(epochs) * n_batches, desc="fit", unit="batch", leave=True)
        try:
            for _ in range(int(epochs)):
                e = self.epoch
                order = np.random.default_rng([seed, e]).permutation(N) if shuffle else np.arange(N)
                total_loss = total_correct = 0.0
                for start in range(0, N, bs):
                    idx = order[start : start + bs]
                    xb, tb = X[idx], targets[idx]
                    out = self.forward(xb, training=True)
                    batch_loss = loss_fn.forward(out, tb)
                    if not np.isfinite(batch_loss):
                        raise FloatingPointError(
                            f"the loss became {batch_loss} in epoch {e + 1}: lower the learning rate"
                        )
                    self.backward(loss_fn.backward())
                    opt.step(self.parameters())
                    total_loss += batch_loss * len(idx)
                    total_correct += loss_fn.accuracy(out, tb) * len(idx)
                    if bar is not None:
                        bar.update(1)
                self.epoch = e + 1
                history["epoch"].append(self.epoch)
                history["loss"].append(total_loss / N)
                history["accuracy"].append(total_correct / N)
                postfix = {"epoch": self.epoch, "loss": f"{total_loss / N:.4f}", "acc": f"{total_correct / N:.3f}"}
                if val is not None:
                    vl, va = self.evaluate(val[0], val[1], loss_fn)
                    history["val_loss"].append(vl)
                    history["val_accuracy"].append(va)
                    postfix.update(val_loss=f"{vl:.4f}", val_acc=f"{va:.3f}")
                if bar is not None:
                    bar.set_postfix(postfix)
        finally:
            if bar is not None:
                bar.close()
        return history

    # -- saving --------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> str:
        """Write the model to ONE ``.npz`` file at ``path`` (exactly; no suffix is added).

        The file holds the architecture (layer class names and configs, as
        JSON), all parameters and buffers (running statistics, dropout
        counters), the optimizer and its state, the loss, ``epoch`` and
        ``seed``. It is written to a temporary file in the same folder and
        moved into place with ``os.replace``, so ``path`` always holds either
        the old or the new complete file. Returns ``path``. Load with
        :func:`natverk.load`.
        """
        from ._io import save_model

        return save_model(self, path)
