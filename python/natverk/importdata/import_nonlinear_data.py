"""Mirror of MATLAB `import_nonlinear_data.m`: train and test sets of spiral data.

Thesis appendix C, section 5.1. Both sets come from
:func:`natverk.simulatedata.generate_nonlinear_2d`; optionally each is drawn
in its own figure with one marker and colour per class.
"""

from __future__ import annotations

import colorsys
from typing import Any

import numpy as np

from ..simulatedata.generate_linear_2d import _rng
from ..simulatedata.generate_nonlinear_2d import generate_nonlinear_2d
from .import_linear_data import _bool

__all__ = ["import_nonlinear_data"]

# The thesis' class markers and (darker) colours, as in decision_boundary.m.
_MARKERS = ("x", "o", ".", "+", "s", "^", "v", "d")
_COLOURS = ((0.9, 0.27, 0.9), (0.27, 0.27, 0.9), (0.9, 0.27, 0.27), (0.9, 0.72, 0.18))


def import_nonlinear_data(
    n_per_class: int,
    dims: int = 2,
    n_classes: int = 4,
    noise_rate: float = 0.1,
    plot_data: bool = False,
    seed: int | np.random.Generator | np.random.SeedSequence | None = None,
    dtype: Any = np.float64,
    label_noise: float = 0.2,
) -> tuple[Any, ...]:
    """Mirror of MATLAB `import_nonlinear_data.m`: spiral train and test data.

    Parameters
    ----------
    n_per_class : int
        Points per class in *each* of the training and test sets.
    dims : int, default 2
        Must be 2 (see :func:`~natverk.simulatedata.generate_nonlinear_2d`).
    n_classes : int, default 4
        Number of spiral arms / classes.
    noise_rate : float, default 0.1
        Multiplicative noise on the second coordinate (``>= 0``).
    plot_data : bool, default False
        If True, also build two matplotlib figures, "Training data" and
        "Test data".
    seed : int, numpy.random.Generator, numpy.random.SeedSequence or None
        Seeds one generator from which the training set and then the test
        set are drawn, so one seed reproduces both and the two differ.
    dtype : numpy floating dtype, default float64
        dtype of ``X_train`` and ``X_test``.
    label_noise : float, default 0.2
        Probability that a label is replaced by a random class (the MATLAB
        code hard-codes 0.2).

    Returns
    -------
    X_train, y_train, X_test, y_test
        ``X_*`` of shape (N*K, 2) and dtype ``dtype``; ``y_*`` int64 of
        shape (N*K,).
    (fig_train, fig_test)
        Only when ``plot_data`` is True, as a fifth element: two
        :class:`matplotlib.figure.Figure` objects.

    Notes
    -----
    The MATLAB argument order is ``(N, D, K, plot_data, noise_rate)``; here
    ``noise_rate`` comes before ``plot_data``, matching
    :func:`~natverk.importdata.import_linear_data`. The figures use
    matplotlib's object API (no pyplot state), so this works headless.
    """
    plot_data = _bool(plot_data, "plot_data")
    rng = _rng(seed)

    kwargs = {
        "dims": dims,
        "n_classes": n_classes,
        "noise_rate": noise_rate,
        "label_noise": label_noise,
        "seed": rng,
        "dtype": dtype,
    }
    X_train, y_train = generate_nonlinear_2d(n_per_class, **kwargs)
    X_test, y_test = generate_nonlinear_2d(n_per_class, **kwargs)

    if not plot_data:
        return X_train, y_train, X_test, y_test
    figures = (
        _plot_classes(X_train, y_train, int(n_classes), "Training data"),
        _plot_classes(X_test, y_test, int(n_classes), "Test data"),
    )
    return X_train, y_train, X_test, y_test, figures


def _class_colour(k: int) -> tuple[float, float, float]:
    """Colour of class ``k``: the thesis' four, then evenly spread hues."""
    if k < len(_COLOURS):
        return _COLOURS[k]
    # Golden-ratio hue steps keep any number of extra classes distinguishable.
    hue = (0.11 + 0.618034 * k) % 1.0
    return colorsys.hsv_to_rgb(hue, 0.75, 0.85)


def _plot_classes(X: np.ndarray, y: np.ndarray, n_classes: int, title: str) -> Any:
    """Scatter each class with its own marker and colour in a new Figure."""
    # Imported here so that generating data never requires matplotlib.
    from matplotlib.figure import Figure

    fig = Figure()
    ax = fig.add_subplot()
    for k in range(n_classes):
        mask = y == k
        ax.plot(
            X[mask, 0],
            X[mask, 1],
            linestyle="none",
            marker=_MARKERS[k % len(_MARKERS)],
            color=_class_colour(k),
            label=f"class {k}",
        )
    ax.set_title(title)
    return fig
