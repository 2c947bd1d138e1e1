"""Plots of a training run: :func:`plot_history` (Keras users' ``plt.plot(history.history["loss"])``).

No pyplot: a :class:`matplotlib.figure.Figure` is built directly, so this works headless and
never opens a window; save it with ``fig.savefig(path)`` (or show it in a notebook).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

__all__ = ["plot_history"]

# the panels, in order: (title, training key, validation key)
_PANELS = (("loss", "loss", "val_loss"), ("accuracy", "accuracy", "val_accuracy"), ("learning rate", "lr", None))


def _series(history: Mapping, key: str, n: int) -> np.ndarray | None:
    if key not in history:
        return None
    values = history[key]
    try:
        a = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"history[{key!r}] must be a list of numbers, got {values!r:.100}") from None
    if a.shape != (n,):
        raise ValueError(f"history[{key!r}] has {a.size} values, but history['epoch'] has {n} epochs")
    return None if np.isnan(a).all() else a  # MSE on one output logs NaN accuracies: no panel


def plot_history(history: Mapping, title: str | None = None):
    """A Figure of a :meth:`Sequential.fit <natverk.models.Sequential.fit>` history: the loss, the
    accuracy and (with a schedule) the learning rate per epoch, the validation curves beside the
    training ones; the epoch that :class:`~natverk.callbacks.EarlyStopping` judged best is marked.

    ``history`` is the dict ``fit`` returned (or one with the same keys: ``epoch`` and ``loss``
    at least). Returns a :class:`matplotlib.figure.Figure` (no pyplot).
    """
    if not isinstance(history, Mapping):
        raise TypeError(f"history must be the dict Sequential.fit returns, got {type(history).__name__}")
    if "loss" not in history:
        raise ValueError(f"history has no 'loss' list: pass the dict Sequential.fit returns (keys {sorted(history)})")
    n = len(history["loss"])
    if n == 0:
        raise ValueError("history holds no epochs (fit ran for 0 epochs)")
    epochs = _series(history, "epoch", n) if "epoch" in history else np.arange(1, n + 1, dtype=np.float64)
    panels = []
    for name, train_key, val_key in _PANELS:
        train = _series(history, train_key, n)
        val = _series(history, val_key, n) if val_key else None
        if train is not None or val is not None:
            panels.append((name, train, val))

    from matplotlib.figure import Figure

    try:
        fig = Figure(figsize=(4.2 * len(panels), 3.4), layout="constrained")
    except TypeError:  # matplotlib < 3.6
        fig = Figure(figsize=(4.2 * len(panels), 3.4), constrained_layout=True)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    best = history.get("best_epoch")
    for ax, (name, train, val) in zip(axes, panels):
        if train is not None:
            ax.plot(epochs, train, marker="." if n < 30 else None, label="training")
        if val is not None:
            ax.plot(epochs, val, marker="." if n < 30 else None, label="validation")
        if isinstance(best, (int, np.integer)) and not isinstance(best, bool) and name != "learning rate":
            ax.axvline(best, color="0.5", linestyle=":", label=f"best epoch ({best})")
        if name == "loss" and train is not None and np.all(train > 0) and train.max() / train.min() > 100:
            ax.set_yscale("log")  # losses that fall by orders of magnitude
        ax.set_xlabel("epoch")
        ax.set_title(name)
        ax.grid(True, alpha=0.3)
        if val is not None or (best is not None and name != "learning rate"):
            ax.legend()
    if title:
        fig.suptitle(title)
    if n == 1:  # one point: one tick, not a fractional axis
        for ax in axes:
            ax.set_xticks([float(epochs[0])])
    return fig
