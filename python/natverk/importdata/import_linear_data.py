"""Mirror of MATLAB `import_linear_data.m`: train and test sets of linear 2-D data.

Thesis appendix C, section 5.2. Both sets come from
:func:`natverk.simulatedata.generate_linear_2d` with the same line and noise;
optionally each is drawn in its own figure (class 0 red 'x', class 1 blue 'o').
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..simulatedata.generate_linear_2d import _rng, generate_linear_2d

__all__ = ["import_linear_data"]


def import_linear_data(
    points: int,
    a: float,
    b: float,
    c: float,
    noise_rate: float,
    plot_data: bool = False,
    seed: int | np.random.Generator | np.random.SeedSequence | None = None,
    dtype: Any = np.float64,
) -> tuple[Any, ...]:
    """Mirror of MATLAB `import_linear_data.m`: linear 2-D train and test data.

    Parameters
    ----------
    points : int
        Examples in *each* of the training and test sets.
    a, b, c : float
        Separating line ``a*x + b*y + c = 0`` (see
        :func:`~natverk.simulatedata.generate_linear_2d`).
    noise_rate : float
        Multiplicative noise on the second coordinate (``>= 0``).
    plot_data : bool, default False
        If True, also build two matplotlib figures, "Training data" and
        "Test data".
    seed : int, numpy.random.Generator, numpy.random.SeedSequence or None
        Seeds one generator from which the training set and then the test
        set are drawn, so one seed reproduces both and the two differ.
    dtype : numpy floating dtype, default float64
        dtype of ``X_train`` and ``X_test``.

    Returns
    -------
    X_train, y_train, X_test, y_test
        ``X_*`` of shape (points, 2) and dtype ``dtype``; ``y_*`` int64 of
        shape (points,).
    (fig_train, fig_test)
        Only when ``plot_data`` is True, as a fifth element: two
        :class:`matplotlib.figure.Figure` objects.

    Notes
    -----
    The MATLAB argument order is ``(points, a, b, c, plot_data, noise_rate)``;
    here ``noise_rate`` comes before ``plot_data`` so that the optional flag
    can have a default and the arguments shared with ``generate_linear_2d``
    appear in the same order.

    The figures are built with matplotlib's object API rather than pyplot,
    so nothing is shown or registered globally and this works headless; show
    or save them with ``fig.savefig(...)``. The MATLAB code also prints
    "Loaded data"; a library function stays silent instead.
    """
    plot_data = _bool(plot_data, "plot_data")
    rng = _rng(seed)

    X_train, y_train = generate_linear_2d(
        points, a, b, c, noise_rate, seed=rng, dtype=dtype
    )
    X_test, y_test = generate_linear_2d(
        points, a, b, c, noise_rate, seed=rng, dtype=dtype
    )

    if not plot_data:
        return X_train, y_train, X_test, y_test
    figures = (
        _plot_two_classes(X_train, y_train, "Training data"),
        _plot_two_classes(X_test, y_test, "Test data"),
    )
    return X_train, y_train, X_test, y_test, figures


def _bool(value: Any, name: str) -> bool:
    """Return ``value`` as a bool, rejecting anything that is not one."""
    # A stray positional argument from the MATLAB order (noise_rate where
    # plot_data was) would otherwise be silently truthy.
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {value!r}")
    return bool(value)


def _plot_two_classes(X: np.ndarray, y: np.ndarray, title: str) -> Any:
    """Scatter class 0 as red 'x' and class 1 as blue 'o' in a new Figure."""
    # Imported here so that generating data never requires matplotlib.
    from matplotlib.figure import Figure

    fig = Figure()
    ax = fig.add_subplot()
    red = y == 0
    blue = y == 1
    ax.plot(
        X[red, 0], X[red, 1], linestyle="none", marker="x", color="red", label="class 0"
    )
    ax.plot(
        X[blue, 0],
        X[blue, 1],
        linestyle="none",
        marker="o",
        color="blue",
        label="class 1",
    )
    ax.set_title(title)
    return fig
