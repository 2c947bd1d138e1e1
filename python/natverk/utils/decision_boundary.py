"""Mirror of MATLAB `decision_boundary.m`: plot a trained network's class regions.

Thesis appendix C, section 7.3. The network's prediction is evaluated on a
regular grid (step 0.005) covering the data, drawn with ``contourf`` in light
colours, and the data points are drawn on top, one marker and darker colour
per class.
"""

from __future__ import annotations

import colorsys
import math
import numbers
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["decision_boundary"]

# Thesis colours: light ones fill the class regions, darker ones (scaled by
# `color_reduction` = 0.9 in the MATLAB code) mark the data points.
_LIGHT = ((1.0, 0.7, 1.0), (0.7, 0.7, 1.0), (1.0, 0.7, 0.7), (1.0, 1.0, 0.7))
_DARK = ((1.0, 0.3, 1.0), (0.3, 0.3, 1.0), (1.0, 0.3, 0.3), (1.0, 0.8, 0.2))
_COLOR_REDUCTION = 0.9
_MARKERS = ("x", "o", ".", "+", "s", "^", "v", "d")

# Grid points handed to check_accuracy at once: its activations are
# (chunk x width) per layer, so this bounds memory for any grid size.
_CHUNK = 65536
# Refuse grids whose coordinate arrays alone would take gigabytes; a step
# that small is almost certainly a mistake, and a larger one looks the same.
_MAX_GRID_POINTS = 1 << 24

_WEIGHT_KEY = re.compile(r"W(\d+)")


def decision_boundary(
    parameters: Mapping[str, Any],
    lambda_: float,
    activation: Any,
    y: Any,
    X: Any,
    ax: Any = None,
    step: float = 0.005,
    title: str | None = None,
) -> Any:
    """Mirror of MATLAB `decision_boundary.m`: predicted class regions plus the data.

    Parameters
    ----------
    parameters : mapping
        Network parameters as built by ``initialize_weights``: ``W1..WL``
        (``W_l`` of shape (n_{l-1}, n_l)), ``b1..bL`` and possibly optimizer
        state. The input width must be 2 and the number of classes ``K`` is
        ``W_L.shape[1]``.
    lambda_ : float
        L2 penalty, passed through to ``check_accuracy`` (it only affects
        the loss, not the predictions).
    activation : str or callable
        Hidden-layer activation, passed through to ``check_accuracy``.
    y : array_like of int, shape (m,)
        Labels of the points to draw, in ``0..K-1``.
    X : array_like, shape (m, 2)
        Points to draw; they also set the extent of the grid.
    ax : matplotlib.axes.Axes, optional
        Axes to draw into. By default a new
        :class:`matplotlib.figure.Figure` with one subplot is created
        (no pyplot, so this works headless).
    step : float, default 0.005
        Grid spacing, as in the MATLAB code.
    title : str, optional
        Axes title; the MATLAB figure has none.

    Returns
    -------
    matplotlib.figure.Figure
        The figure holding ``ax``.

    Notes
    -----
    The grid spans ``floor(min x1) .. ceil(max x1)`` horizontally and
    ``floor(min x2) .. max x2 + 0.2`` vertically, with MATLAB colon
    semantics (``lo:step:hi`` includes ``hi`` when it falls on the grid).
    Grid points are cast to the dtype of ``parameters["W1"]`` and predicted
    in chunks of 65536 with
    ``natverk.utils.check_accuracy.check_accuracy(points, zeros, parameters,
    lambda_, activation)``. Regions are filled with one colour per class by
    ``contourf`` with levels at ``-0.5, 0.5, ..., K - 0.5``, so each class
    gets its own colour however many of them appear.
    """
    if not isinstance(parameters, Mapping):
        raise TypeError(
            f"parameters must be a mapping of name -> array, got {type(parameters)}"
        )
    n_classes, param_dtype = _network_output(parameters)
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[1] != 2 or X.shape[0] == 0:
        raise ValueError(f"X must have shape (m, 2) with m >= 1, got {X.shape}")
    if X.dtype.kind not in "iuf":
        raise TypeError(f"X must be a real numeric array, got dtype {X.dtype}")
    if not np.isfinite(X).all():
        raise ValueError("X must be finite, but it contains NaN or infinity")
    y = np.asarray(y)
    if y.dtype.kind not in "iu":
        raise TypeError(
            f"y must be an integer array of class labels, got dtype {y.dtype}"
        )
    y = y.reshape(-1)
    if y.shape[0] != X.shape[0]:
        raise ValueError(
            f"y must have one label per row of X: got {y.shape[0]} and {X.shape[0]}"
        )
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(
            f"y must hold labels in 0..{n_classes - 1} (the network has {n_classes} outputs), "
            f"got values in {y.min()}..{y.max()}"
        )
    if isinstance(step, (bool, np.bool_)) or not isinstance(step, numbers.Real):
        raise TypeError(f"step must be a positive real number, got {step!r}")
    step = float(step)
    if not (math.isfinite(step) and step > 0):
        raise ValueError(f"step must be a finite number > 0, got {step}")

    x1 = _colon(math.floor(X[:, 0].min()), math.ceil(X[:, 0].max()), step)
    x2 = _colon(math.floor(X[:, 1].min()), float(X[:, 1].max()) + 0.2, step)
    if x1.size * x2.size > _MAX_GRID_POINTS:
        raise ValueError(
            f"step={step} gives a {x2.size} x {x1.size} grid (more than {_MAX_GRID_POINTS} "
            "points); use a larger step"
        )
    xx, yy = np.meshgrid(x1, x2)
    points = np.stack([xx.ravel(), yy.ravel()], axis=1).astype(param_dtype)

    # Imported lazily: check_accuracy sits on the compiled forward pass, and
    # matplotlib is only needed for plotting.
    from natverk.utils.check_accuracy import check_accuracy

    predictions = np.empty(points.shape[0], dtype=np.int64)
    for start in range(0, points.shape[0], _CHUNK):
        chunk = np.ascontiguousarray(points[start : start + _CHUNK])
        _, pred = check_accuracy(
            chunk,
            np.zeros(chunk.shape[0], dtype=np.int64),
            parameters,
            lambda_,
            activation,
        )
        pred = np.asarray(pred).reshape(-1)
        if pred.shape[0] != chunk.shape[0]:
            raise RuntimeError(
                f"check_accuracy returned {pred.shape[0]} predictions for {chunk.shape[0]} points"
            )
        predictions[start : start + chunk.shape[0]] = pred

    if ax is None:
        from matplotlib.figure import Figure

        fig = Figure()
        ax = fig.add_subplot()
    light, dark = _palette(n_classes)
    ax.contourf(
        xx,
        yy,
        predictions.reshape(xx.shape),
        levels=np.arange(n_classes + 1) - 0.5,
        colors=light,
    )
    for k in range(n_classes):
        mask = y == k
        marker = _MARKERS[k % len(_MARKERS)]
        ax.plot(
            X[mask, 0],
            X[mask, 1],
            linestyle="none",
            marker=marker,
            color=dark[k],
            # MATLAB points are larger than matplotlib points: its MarkerSize 15
            # (20 for ".") reads as about 8 (11) here.
            markersize=11 if marker == "." else 8,
            label=f"class {k}",
        )
    if title is not None:
        ax.set_title(title)
    return ax.figure


def _network_output(parameters: Mapping[str, Any]) -> tuple[int, np.dtype]:
    """Return (number of classes, dtype of W1) for a parameters mapping."""
    layers = [
        int(m.group(1)) for key in parameters if (m := _WEIGHT_KEY.fullmatch(str(key)))
    ]
    if not layers:
        raise ValueError(
            "parameters must contain weight matrices 'W1'..'WL', found none"
        )
    if "W1" not in parameters:
        raise ValueError("parameters must contain 'W1'")
    w_last = parameters[f"W{max(layers)}"]
    shape = tuple(getattr(w_last, "shape", np.shape(w_last)))
    if len(shape) != 2 or shape[1] < 1:
        raise ValueError(
            f"W{max(layers)} must be a 2-D matrix (n_in, K), got shape {shape}"
        )
    w1 = parameters["W1"]
    # Not `getattr(...) or ...`: a plain np.dtype has len 0 and is falsy.
    w1_dtype = getattr(w1, "dtype", None)
    dtype = np.dtype(w1_dtype if w1_dtype is not None else np.asarray(w1).dtype)
    if not np.issubdtype(dtype, np.floating):
        raise TypeError(f"parameters['W1'] must have a floating dtype, got {dtype}")
    return int(shape[1]), dtype


def _colon(lo: float, hi: float, step: float) -> np.ndarray:
    """MATLAB ``lo:step:hi``, with at least two points so contourf has an area."""
    # The small tolerance lets hi itself in when (hi - lo) / step is an
    # integer up to rounding, which is what MATLAB's colon does.
    n = max(math.floor((hi - lo) / step + 1e-10) + 1, 2)
    return lo + step * np.arange(n, dtype=np.float64)


def _palette(n_classes: int) -> tuple[list[tuple[float, ...]], list[tuple[float, ...]]]:
    """Light (regions) and dark (points) colours for ``n_classes`` classes."""
    light = list(_LIGHT[:n_classes])
    dark = [tuple(_COLOR_REDUCTION * v for v in c) for c in _DARK[:n_classes]]
    for k in range(len(_LIGHT), n_classes):
        # Golden-ratio hue steps keep any number of extra classes apart; low
        # saturation gives the pastel fill, higher saturation the marker.
        hue = (0.11 + 0.618034 * k) % 1.0
        light.append(colorsys.hsv_to_rgb(hue, 0.3, 1.0))
        dark.append(
            tuple(_COLOR_REDUCTION * v for v in colorsys.hsv_to_rgb(hue, 0.7, 1.0))
        )
    return light, dark
