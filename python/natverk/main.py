"""Mirror of the MATLAB ``Main`` script: the thesis' spiral network, end to end.

Spiral data (4 classes, 20 % label noise in the training set), z-score
normalisation, nodes ``[2, 250, 100, 50, 4]``, ReLU, Adam (beta1 0.9, beta2
0.99), shuffled minibatches of 128, train and test accuracy, and the
decision boundary saved as a PNG (thesis Figure 5).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .experiments.toy import SPIRAL_FULL
from .importdata import import_nonlinear_data
from .neuralnet import initialize_weights
from .train import train
from .utils import check_accuracy, decision_boundary, normalization

SPIRAL_NODES = (2, 250, 100, 50, 4)


def spiral(
    epochs: int = SPIRAL_FULL.epochs,
    learning_rate: float = SPIRAL_FULL.learning_rate,
    lambda_: float = 0.0,
    nodes: Sequence[int] = SPIRAL_NODES,
    minibatch_size: int = SPIRAL_FULL.minibatch_size,
    n_per_class: int = SPIRAL_FULL.points,
    noise_rate: float = SPIRAL_FULL.noise_rate,
    label_noise: float = 0.2,
    test_label_noise: float = 0.0,
    activation: str = "relu",
    beta1: float = 0.9,
    beta2: float = 0.99,
    seed: int | None = 0,
    output: str | Path | None = "results/spiral_decision_boundary.png",
    dtype: str = "float64",
    verbose: int | str = "auto",
) -> dict:
    """Train the thesis' spiral network and plot its decision boundary.

    The MATLAB Main script uses 50 points per class, 10000 epochs at
    learning rate 1e-4. Our defaults are Table 3's calibrated setup (200
    points per class, 2000 epochs at 1e-3; see
    ``natverk.experiments.toy.SPIRAL_FULL``): with 50 per class the
    network memorises the scrambled labels and reaches only about 0.77 on
    the test spirals against the thesis' 0.934. The test set is drawn from the
    same spirals; ``test_label_noise`` (default 0) sets its label noise
    separately, because randomly relabelled test points measure the noise,
    not the network (the thesis' 0.934 test accuracy is above the 0.85 a
    test set with 20 % relabelling would allow).

    ``output`` is the PNG to write (None: no figure). Its folder is created if missing, as
    ``reproduce --out`` does: by default the figure goes to ``results/``, beside the thesis
    reports and out of the source tree, never loose in the current folder.

    Returns a dict with ``train_accuracy``, ``test_accuracy``, ``seconds``,
    ``parameters``, ``history`` and ``figure`` (the path written, or None).
    """
    if output is not None:
        output = Path(output)
        if output.suffix.lower() != ".png":
            raise ValueError(f"output must be a .png path, got {str(output)!r}")
        if output.parent.exists() and not output.parent.is_dir():
            raise NotADirectoryError(f"output folder {str(output.parent)!r} is a file, not a folder")
    rng = np.random.default_rng(seed)
    X_train, y_train, _, _ = import_nonlinear_data(
        n_per_class, 2, nodes[-1], noise_rate, seed=rng, dtype=dtype, label_noise=label_noise
    )
    X_test, y_test, _, _ = import_nonlinear_data(
        n_per_class, 2, nodes[-1], noise_rate, seed=rng, dtype=dtype, label_noise=test_label_noise
    )
    X_train, X_test = normalization(X_train, X_test)

    parameters = initialize_weights(nodes, seed=rng, dtype=dtype)
    start = time.perf_counter()
    history = train(
        parameters,
        X_train,
        y_train,
        epochs,
        learning_rate,
        minibatch_size,
        lambda_,
        activation,
        optimizer="adam",
        beta1=beta1,
        beta2=beta2,
        seed=rng,
        verbose=verbose,
    )
    seconds = time.perf_counter() - start
    train_acc, _ = check_accuracy(X_train, y_train, parameters, lambda_, activation)
    test_acc, _ = check_accuracy(X_test, y_test, parameters, lambda_, activation)

    figure_path = None
    if output is not None:
        fig = decision_boundary(
            parameters,
            lambda_,
            activation,
            y_train,
            X_train,
            title=f"Spiral, lambda = {lambda_:g}: train {train_acc:.3f}, test {test_acc:.3f}",
        )
        # Created only now, after training: a failed run leaves no empty folder behind.
        output.parent.mkdir(parents=True, exist_ok=True)
        # Written to a temporary name and renamed: no half-written PNG on failure.
        tmp = output.with_name(output.name + ".tmp")
        fig.savefig(tmp, dpi=120, format="png")
        tmp.replace(output)
        figure_path = str(output)
    return {
        "train_accuracy": train_acc,
        "test_accuracy": test_acc,
        "seconds": seconds,
        "parameters": parameters,
        "history": history,
        "figure": figure_path,
    }
