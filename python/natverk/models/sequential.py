"""The :class:`Sequential` model: a layer stack with fit / predict / evaluate / save."""

from __future__ import annotations

import os

import numpy as np

from .._divergence import as_max_loss, check_loss
from ..callbacks import Callback, EarlyStopping
from ..layers._base import as_int, as_seed, fresh_seed, register
from ..layers.container import Stack
from ..losses import Loss, get_loss
from ..optimizers.classes import Adam, Optimizer, _rate, get_optimizer
from ..schedules import Schedule
from . import _plan


def _as_inputs(X, name: str) -> np.ndarray:
    X = np.asarray(X)
    if X.dtype.kind not in "fiu":
        raise TypeError(f"{name} must be a real numeric array, got dtype {X.dtype}")
    if X.ndim < 1 or X.shape[0] == 0:
        raise ValueError(f"{name} must hold at least one example along axis 0, got shape {X.shape}")
    if X.dtype not in (np.float32, np.float64):
        X = X.astype(np.float64)
    return X


def _check_finite(X: np.ndarray, name: str) -> None:
    """fit checks its inputs up front: found by the first layer, a NaN in a late batch stopped
    training after the earlier batches had already changed the weights and optimizer state."""
    if X.dtype.kind == "f" and not np.isfinite(X).all():
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(X))[0])
        raise ValueError(f"{name} contains NaN or Inf (first at index {bad})")


def _as_batch_size(batch_size) -> int:
    return as_int(batch_size, "batch_size", 1)


def _as_callbacks(callbacks, early_stopping) -> list[Callback]:
    if isinstance(callbacks, Callback):
        callbacks = [callbacks]
    callbacks = list(callbacks)
    for i, cb in enumerate(callbacks):
        if not isinstance(cb, Callback):
            raise TypeError(f"callbacks[{i}] must be a natverk.callbacks.Callback, got {type(cb).__name__}")
    if early_stopping is not None:
        if isinstance(early_stopping, EarlyStopping):
            callbacks.append(early_stopping)
        elif isinstance(early_stopping, (int, np.integer)) and not isinstance(early_stopping, bool):
            callbacks.append(EarlyStopping(patience=int(early_stopping)))
        else:
            raise TypeError(f"early_stopping must be an EarlyStopping, a patience (int) or None, got {early_stopping!r}")
    return callbacks


def _as_learning_rate(lr, schedule, epoch: int) -> float:
    try:
        return _rate(lr, "learning rate", 0.0, np.inf, hi_open=True)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{schedule!r} gave an invalid learning rate for epoch {epoch}: {err}") from None


# Tags the augmentation stream so that it never coincides with the shuffling
# stream default_rng([seed, epoch]) (SeedSequence pads short entropy with zeros).
_AUGMENT_STREAM = 1


def _batch_rng(seed: int, epoch: int, batch: int) -> np.random.Generator:
    """The generator that augments batch ``batch`` of epoch ``epoch``.

    It depends only on these three numbers -- not on how many batches came
    before in this process -- so a run resumed from a checkpoint draws exactly
    the augmentations the uninterrupted run would have drawn.
    """
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_AUGMENT_STREAM, epoch, batch)))


def _augment(augment, xb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out = np.asarray(augment(xb, rng))
    if out.ndim < 1 or out.shape[0] != xb.shape[0]:
        raise ValueError(f"augment turned a batch of shape {xb.shape} into shape {out.shape}: it must keep the batch size")
    return out


def _postfix(logs: dict) -> dict:
    """The progress bar's summary of an epoch."""
    out = {"epoch": logs["epoch"], "loss": f"{logs['loss']:.4f}", "acc": f"{logs['accuracy']:.3f}"}
    if "val_loss" in logs:
        out.update(val_loss=f"{logs['val_loss']:.4f}", val_acc=f"{logs['val_accuracy']:.3f}")
    if "lr" in logs:
        out["lr"] = f"{logs['lr']:.3g}"
    return out


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
    ``optimizer`` (with its state and learning rate), ``lr_schedule``,
    ``loss``, ``epoch`` (epochs trained so far) and ``seed`` (the shuffling
    seed). Epoch ``e``'s shuffle is a permutation drawn from
    ``numpy.random.default_rng([seed, e])``, its learning rate is
    ``lr_schedule(e)`` and batch ``b``'s augmentation draws from a generator
    seeded by ``(seed, e, b)``, so calling ``fit`` for 3 epochs and then 2
    more -- or saving after 3 (:class:`~natverk.callbacks.ModelCheckpoint`),
    loading and fitting 2 more -- gives bit-identical weights to fitting 5
    epochs at once.
    """

    def __init__(self, *layers):
        super().__init__(*layers)
        self.optimizer: Optimizer | None = None
        self.loss: Loss | None = None
        self.epoch = 0
        self.seed: int | None = None
        self.lr_schedule: Schedule | None = None
        self.stop_training = False  # set by a callback to end fit after the current epoch

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
        *,
        lr_schedule: Schedule | None = None,
        augment=None,
        callbacks=(),
        early_stopping: EarlyStopping | int | None = None,
        max_loss: float | None = None,
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
        lr_schedule : natverk.schedules.Schedule or None
            Sets ``optimizer.learning_rate = lr_schedule(self.epoch)`` at the
            start of every epoch, ``self.epoch`` counting every epoch trained
            so far (thesis' ``exponential_decay``: digest §1). None continues
            with ``self.lr_schedule`` (e.g. after :func:`load`), if any; set
            ``model.lr_schedule = None`` to train without one again. Kept as
            ``self.lr_schedule`` and saved with the model.
        augment : callable or None
            ``augment(X_batch, rng)`` transforms every training batch, e.g. a
            :mod:`natverk.augmentation` transform (thesis §2.4.4). ``rng`` is
            a generator seeded by ``(seed, epoch, batch index)``, so training
            is reproducible and a resumed run draws the same augmentations.
            Validation data is never augmented. Like ``X`` and ``y``, pass it
            to every ``fit`` call (it is not saved with the model).
        callbacks : sequence of natverk.callbacks.Callback
            Called after every epoch (see :mod:`natverk.callbacks`); a
            callback ends training by setting ``model.stop_training = True``.
        early_stopping : EarlyStopping, int or None
            Shorthand for adding an :class:`~natverk.callbacks.EarlyStopping`
            to ``callbacks``; an int is its patience (monitoring "val_loss").
        max_loss : float or None
            Stop with :class:`~natverk.DivergenceError` when a batch's loss
            exceeds this, even while it is finite. A NaN or Inf loss always
            stops training with that error, naming the epoch and step.

        Returns
        -------
        dict
            Per-epoch lists: ``epoch`` (1-based, counting earlier fits),
            ``data_loss`` (the loss function's value), ``penalty`` (the
            optimizer's L2 penalty ``weight_decay / 2 * sum ||W||^2`` over the
            decayed weights, thesis eq. 9; 0 without weight decay), ``loss``
            (their sum, what the gradient descends) and ``accuracy`` (means over
            the epoch's training batches, in training mode, each batch's penalty
            at the weights before its update), ``val_loss`` (the data loss:
            no penalty) / ``val_accuracy`` with
            validation data and ``lr`` with a schedule; callbacks may add more
            (``EarlyStopping``: ``best_epoch`` and ``stopped_epoch``).
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
        schedule = self.lr_schedule if lr_schedule is None else lr_schedule
        if schedule is not None and not isinstance(schedule, Schedule):
            raise TypeError(
                f"lr_schedule must be a natverk.schedules.Schedule (so that it can be saved), got {schedule!r:.100}"
            )
        if augment is not None and not callable(augment):
            raise TypeError(f"augment must be callable as augment(X_batch, rng), got {augment!r:.100}")
        callbacks = _as_callbacks(callbacks, early_stopping)
        max_loss = as_max_loss(max_loss)
        X = _as_inputs(X, "X")
        _check_finite(X, "X")
        N = X.shape[0]
        # Probe the output shape (evaluation mode: no state changes) so the
        # targets are checked once, up front, rather than batch by batch. The
        # probe is augmented too, in case augmentation changes the image size
        # (a crop); its generator is a throw-away one, not the training one.
        probe = X[:1] if augment is None else _augment(augment, X[:1], np.random.default_rng(0))
        out_shape = (N,) + self.forward(probe, training=False).shape[1:]
        targets = loss_fn.check_targets(y, out_shape)
        val = None
        if validation_data is not None:
            if not (isinstance(validation_data, (tuple, list)) and len(validation_data) == 2):
                raise ValueError("validation_data must be a pair (X_val, y_val)")
            Xv = _as_inputs(validation_data[0], "validation X")
            _check_finite(Xv, "validation X")
            val = (Xv, validation_data[1])
            loss_fn.check_targets(val[1], (Xv.shape[0],) + out_shape[1:])

        self.optimizer, self.loss, self.seed, self.lr_schedule = opt, loss_fn, seed, schedule
        history: dict[str, list] = {"epoch": [], "loss": [], "data_loss": [], "penalty": [], "accuracy": []}
        if val is not None:
            history["val_loss"], history["val_accuracy"] = [], []
        if schedule is not None:
            history["lr"] = []
        self.stop_training = False
        for cb in callbacks:
            cb.on_train_begin(self, history)
        # The C++ step plan (issue 11): every layer's kernels in one call per step, and without
        # augmentation one call per epoch; bit-identical to the layer loop below, which stays
        # for what the plan does not run (a layer class of one's own, a custom loss, ...).
        plan = _plan.plan_for_fit(self, opt, loss_fn, X, targets, bs, probe.shape[1:], augment)
        n_batches = -(-N // bs)
        bar = None
        if verbose:
            from tqdm.auto import tqdm

            bar = tqdm(total=int(epochs) * n_batches, desc="fit", unit="batch", leave=True)
        try:
            for _ in range(int(epochs)):
                e = self.epoch
                if schedule is not None:
                    opt.learning_rate = _as_learning_rate(schedule(e), schedule, e)
                order = np.random.default_rng([seed, e]).permutation(N) if shuffle else np.arange(N)
                total_loss = total_penalty = total_correct = 0.0
                if plan is not None and not plan.valid():  # a callback replaced an array: plan again
                    plan = _plan.plan_for_fit(self, opt, loss_fn, X, targets, bs, probe.shape[1:], augment)
                if plan is not None and augment is None:
                    # the whole epoch in one call; it stops before the update of a batch whose loss
                    # fails the check, which check_loss then reports as the layer loop would
                    r = plan.epoch(order, bs, max_loss)
                    if bar is not None:
                        bar.update(int(r["steps"]))
                    if r["interrupt"] is not None:
                        raise r["interrupt"]
                    for b in range(int(r["steps"])):
                        rows = int(r["rows"][b])
                        total_loss += float(r["data_loss"][b]) * rows
                        total_penalty += float(r["penalty"][b]) * rows
                        total_correct += plan.accuracy(int(r["correct"][b]), rows) * rows
                    if r["stopped"] is not None:
                        if r["error"] is not None:
                            raise ValueError(r["error"])
                        b = int(r["stopped"])
                        check_loss(float(r["data_loss"][b] + r["penalty"][b]), epoch=e + 1, step=b + 1,
                                   learning_rate=opt.learning_rate, max_loss=max_loss)
                for b, start in enumerate(range(0, N, bs) if plan is None or augment is not None else ()):
                    idx = order[start : start + bs]
                    xb, tb = X[idx], targets[idx]
                    if augment is not None:
                        xb = _augment(augment, xb, _batch_rng(seed, e, b))
                    if plan is not None and plan.accepts(xb):
                        # one step through the plan (the augmentation needs Python per batch)
                        batch_loss, batch_penalty, correct, updated = plan.step(
                            np.ascontiguousarray(xb, dtype=plan.dtype), plan.y[idx],
                            None if plan.acc is None else plan.acc[idx], max_loss)
                        if not updated:
                            check_loss(batch_loss + batch_penalty, epoch=e + 1, step=b + 1,
                                       learning_rate=opt.learning_rate, max_loss=max_loss)
                        batch_accuracy = plan.accuracy(correct, len(idx))
                    else:
                        if plan is not None:
                            plan.commit_state()  # the layer loop's optimizer step uses the plan's arrays
                        out = self.forward(xb, training=True)
                        # targets were checked once above; a NaN/Inf output gives a NaN loss,
                        # which check_loss reports as the divergence it is
                        with np.errstate(invalid="ignore", over="ignore"):
                            batch_loss = loss_fn.forward_trusted(np.ascontiguousarray(out), tb)
                        params = self.parameters()
                        # the thesis' L2 penalty (eq. 9) at the weights this batch's gradient is taken at
                        batch_penalty = opt.penalty(params)
                        check_loss(batch_loss + batch_penalty, epoch=e + 1, step=b + 1,
                                   learning_rate=opt.learning_rate, max_loss=max_loss)
                        self.backward(loss_fn.backward(), need_input_grad=False)
                        opt.step(self.parameters())
                        batch_accuracy = loss_fn.accuracy(out, tb)
                    total_loss += batch_loss * len(idx)
                    total_penalty += batch_penalty * len(idx)
                    total_correct += batch_accuracy * len(idx)
                    if bar is not None:
                        bar.update(1)
                self.epoch = e + 1
                logs = {"epoch": self.epoch, "loss": (total_loss + total_penalty) / N, "data_loss": total_loss / N,
                        "penalty": total_penalty / N, "accuracy": total_correct / N}
                if val is not None:
                    logs["val_loss"], logs["val_accuracy"] = self.evaluate(val[0], val[1], loss_fn)
                if schedule is not None:
                    logs["lr"] = opt.learning_rate
                for key, value in logs.items():
                    history[key].append(value)
                if bar is not None:
                    bar.set_postfix(_postfix(logs))
                cb_logs = dict(logs)  # one copy for the callbacks: they may add to it, not alter the history
                for cb in callbacks:
                    cb.on_epoch_end(self, cb_logs)
                if self.stop_training:
                    break
        finally:
            if bar is not None:
                bar.close()
        for cb in callbacks:
            cb.on_train_end(self, history)
        return history

    # -- saving --------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> str:
        """Write the model to ONE ``.npz`` file at ``path`` (exactly; no suffix is added).

        The file holds the architecture (layer class names and configs, as
        JSON), all parameters and buffers (running statistics, dropout
        counters), the optimizer and its state, the learning-rate schedule,
        the loss, ``epoch`` and ``seed``. It is written to a temporary file in the same folder and
        moved into place with ``os.replace``, so ``path`` always holds either
        the old or the new complete file. Returns ``path``. Load with
        :func:`natverk.load`.
        """
        from ._io import save_model

        return save_model(self, path)
