"""Thesis Figures 6 and 7: the sigmoid and ReLU activations with their derivatives on (-5, 5),
computed by natverk's own activation kernels (not re-derived in NumPy)."""

from __future__ import annotations

import time

import numpy as np

from ..activations import relu, relu_backward, sigmoid, sigmoid_backward
from ._report import Report


def figure6_7(out, quick: bool = False, seeds=(0,), **_ignored) -> dict:
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    start = time.perf_counter()
    report = Report("figure6-7", "Figures 6 and 7: sigmoid and ReLU with their derivatives", out, quick, seeds)
    x = np.linspace(-5.0, 5.0, 1001).reshape(1, -1)
    ones = np.ones_like(x)
    # the backward kernels take the activation's output h, as back-propagation caches it
    s, r = sigmoid(x), relu(x)
    curves = {"sigmoid": (s, sigmoid_backward(ones, s)), "relu": (r, relu_backward(ones, r))}
    rows = []
    for number, (name, (f, df)) in zip((6, 7), curves.items()):
        fig = Figure(figsize=(5, 3.5))
        ax = fig.add_subplot()
        ax.plot(x[0], f[0], label=f"{name}(x)")
        ax.plot(x[0], df[0], "--", label=f"{name}'(x)")
        ax.axhline(0, color="0.7", lw=0.5)
        ax.axvline(0, color="0.7", lw=0.5)
        ax.set_xlabel("x")
        ax.legend()
        ax.set_title(f"Figure {number}: {name} and its derivative")
        report.add_figure(fig, f"figure{number}_{name}.png", f"Figure {number}: {name} and its derivative on (-5, 5)")
        rows.append([name, float(f.min()), float(f.max()), float(df.max())])
    report.add_table(["activation", "min f", "max f", "max f'"], rows,
                     caption="Ranges on (-5, 5) (sigmoid' peaks at 0.25 at x = 0; ReLU' is a step):")
    return {"report": report, "wall_s": time.perf_counter() - start}
