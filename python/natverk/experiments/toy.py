"""Thesis Tables 2 and 3 with Figures 4 and 5: choosing the L2 strength lambda on simulated
2-D data, by no regularisation, randomised logspace search, the balance principle and linear
search (thesis §2.5, §4.1-4.2).

Protocol (the thesis' MATLAB setup, made repeatable):
- data: linear 2-D data around f(x) = -x (``generate_linear_2d(points, 1, 1, 0, noise)``) or
  the 4-arm spiral with 20 % scrambled training labels; a training, a validation and a test set
  drawn independently; z-scored with the training statistics (``normalization``).
- network: ``2-250-100-50-K``, ReLU, Adam (beta1 0.9, beta2 0.99), minibatches of 128, as the
  MATLAB ``Main`` script.
- each search's lambda is chosen by **validation** accuracy (the thesis picked by test
  accuracy, which flatters the winner); the table reports train and test accuracy of that lambda,
  as mean ± standard deviation over several seeds (new data, weights and search draws per seed).
- logspace: ``n`` log-uniform draws in [lo, hi] (``st_logspace``); linear: lo, lo + step, ...
  <= hi with about the same number of trials; balance: lambda = phi / psi (gamma = 1) from the
  data loss phi and the squared weight norm psi of the whole training set, updated once per
  epoch (``update="epoch"``), capped at the top of the logspace range as a safeguard.
  Why per epoch: updated after every minibatch, as the thesis' MATLAB code does, the noisy
  minibatch phi feeds back on itself (a larger lambda shrinks the weights, so psi falls and
  lambda rises again); on the spiral one seed of five ran away to the cap and collapsed to the
  majority class (test 0.25; mean 0.690 +- 0.247 over five seeds). The per-epoch update over
  the whole set damps that: no seed ran away, capped or not (mean 0.810).
- time: the wall time of each method (all its trials) per seed is the chosen row's ``time_s`` in
  the CSV; the table sums it over the seeds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np

from ..importdata import import_linear_data, import_nonlinear_data
from ..neuralnet import initialize_weights
from ..search import MLPTrial, balance_principle, linear_search, logspace_search
from ..train import train
from ..utils import check_accuracy, decision_boundary, normalization
from ._report import Report, mean_std

THESIS_TABLE2 = {"none": (0.0, 0.998, 0.906), "logspace": (0.032, 0.945, 0.949),
                 "balance": (None, 0.987, 0.919), "linear": (0.1, 0.943, 0.946)}
THESIS_TABLE3 = {"none": (0.0, 0.996, 0.934), "logspace": (0.0009, 0.990, 0.942),
                 "balance": (None, 0.982, 0.936), "linear": (0.02, 0.936, 0.928)}
METHODS = ("none", "logspace", "balance", "linear")
METHOD_TITLES = {"none": "lambda = 0 (no regularisation)", "logspace": "logspace search",
                 "balance": "balance principle (dynamic lambda)", "linear": "linear search"}


@dataclass(frozen=True)
class ToySetup:
    """One simulated problem and its search ranges."""

    kind: str  # "linear" or "spiral"
    points: int  # training points (linear: in all; spiral: per class)
    noise_rate: float
    n_classes: int
    epochs: int
    learning_rate: float
    log_range: tuple[float, float]
    n_logspace: int
    linear_range: tuple[float, float]
    linear_step: float
    minibatch_size: int = 128

    @property
    def nodes(self) -> list[int]:
        return [2, 250, 100, 50, self.n_classes]


LINEAR_FULL = ToySetup("linear", points=200, noise_rate=1.0, n_classes=2, epochs=1000, learning_rate=1e-3,
                       log_range=(1e-4, 1.0), n_logspace=10, linear_range=(0.0, 1.0), linear_step=0.1)
SPIRAL_FULL = ToySetup("spiral", points=50, noise_rate=0.1, n_classes=4, epochs=2000, learning_rate=1e-3,
                       log_range=(1e-5, 0.1), n_logspace=10, linear_range=(0.0, 0.1), linear_step=0.01)


def quick_setup(setup: ToySetup) -> ToySetup:
    return replace(setup, epochs=60, n_logspace=3, linear_step=(setup.linear_range[1] - setup.linear_range[0]) / 2)


def make_data(setup: ToySetup, seed: int):
    """Training, validation and test sets (validation and test without label noise), z-scored
    with the training set's statistics."""
    rng = np.random.default_rng(seed)
    if setup.kind == "linear":
        X_tr, y_tr, X_val, y_val = import_linear_data(setup.points, 1.0, 1.0, 0.0, setup.noise_rate, seed=rng)
        X_te, y_te, _, _ = import_linear_data(setup.points * 5, 1.0, 1.0, 0.0, setup.noise_rate, seed=rng)
    else:
        X_tr, y_tr, _, _ = import_nonlinear_data(setup.points, 2, setup.n_classes, setup.noise_rate, seed=rng,
                                                 label_noise=0.2)
        X_val, y_val, X_te, y_te = import_nonlinear_data(setup.points, 2, setup.n_classes, setup.noise_rate,
                                                         seed=rng, label_noise=0.0)
    _, X_val = normalization(X_tr, X_val)  # both with the training set's statistics
    X_tr, X_te = normalization(X_tr, X_te)
    return X_tr, y_tr, X_val, y_val, X_te, y_te


def run_methods(setup: ToySetup, seed: int, jobs: int) -> dict:
    """The four ways to choose lambda on one seed's data: each a row with lambda and accuracies."""
    data = make_data(setup, seed)
    trial = MLPTrial(*data, nodes=setup.nodes, epochs=setup.epochs, learning_rate=setup.learning_rate,
                     minibatch_size=setup.minibatch_size, threads=1)
    rows, seconds = {}, {}
    t0 = time.perf_counter()
    none = trial(0.0, seed)
    rows["none"] = {"lambda": 0.0, **none}
    seconds["none"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    log = logspace_search(trial, *setup.log_range, setup.n_logspace, seed=seed, jobs=jobs)
    rows["logspace"] = dict(log.best)
    seconds["logspace"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    lin = linear_search(trial, setup.linear_range[0], setup.linear_range[1], setup.linear_step, seed=seed, jobs=jobs)
    rows["linear"] = dict(lin.best)
    seconds["linear"] = time.perf_counter() - t0
    X_tr, y_tr, X_val, y_val, X_te, y_te = data
    t0 = time.perf_counter()
    bal = balance_principle(X_tr, y_tr, setup.nodes, epochs=setup.epochs, learning_rate=setup.learning_rate,
                            minibatch_size=setup.minibatch_size, gamma=1.0, X_val=X_val, y_val=y_val,
                            X_test=X_te, y_test=y_te, seed=seed,
                            # damped: whole-set phi/psi once per epoch, not per minibatch (see the
                            # module docstring); the cap at the search range's top is a safeguard
                            update="epoch", lambda_max=setup.log_range[1])
    rows["balance"] = dict(bal.row)
    seconds["balance"] = time.perf_counter() - t0
    for method, row in rows.items():
        # time_s of a chosen row: the wall time of the whole method on this seed (all its trials)
        row.update(method=method, seed=seed, problem=setup.kind, time_s=seconds[method])
    return {"rows": rows, "data": data, "logspace": log, "linear": lin, "balance": bal}


def fit_for_figure(setup: ToySetup, data, lambda_: float, seed: int):
    X_tr, y_tr, _, _, X_te, y_te = data
    params = initialize_weights(setup.nodes, seed=seed)
    train(params, X_tr, y_tr, setup.epochs, setup.learning_rate, setup.minibatch_size, lambda_, "relu",
          optimizer="adam", seed=seed, verbose=0)
    train_acc, _ = check_accuracy(X_tr, y_tr, params, lambda_, "relu")
    test_acc, _ = check_accuracy(X_te, y_te, params, lambda_, "relu")
    return params, train_acc, test_acc


def _toy_table(name: str, title: str, setup: ToySetup, thesis: dict, out, quick: bool, seeds, jobs: int,
               figure_lambdas) -> dict:
    start = time.perf_counter()
    if quick:
        setup = quick_setup(setup)
    report = Report(name, title, out, quick, seeds)
    report.add(__doc__.split("\n\n", 1)[1].strip())
    report.add(f"Setup: {setup}")
    per_seed = []
    for seed in seeds:
        result = run_methods(setup, seed, jobs)
        per_seed.append(result)
        print(f"[{name}] seed {seed}: " + ", ".join(
            f"{m} lambda {r['lambda']:.3g} test {r['test_accuracy']:.3f}" for m, r in result["rows"].items()),
            flush=True)
    all_rows = [r for res in per_seed for r in res["rows"].values()]
    report.add_rows(all_rows)
    # every trial of every search too, so the whole lambda curve can be re-plotted from the CSV
    for res in per_seed:
        for method in ("logspace", "linear"):
            report.add_rows([{**row, "method": f"{method}-trial", "problem": setup.kind} for row in res[method].rows])

    header = ["lambda (method)", "lambda chosen", "train acc", "test acc", "thesis lambda", "thesis train",
              "thesis test", "time (s), all seeds"]
    rows = []
    for method in METHODS:
        rs = [res["rows"][method] for res in per_seed]
        lam = [r["lambda"] for r in rs]
        t_lam, t_train, t_test = thesis[method]
        rows.append([METHOD_TITLES[method],
                     ("dynamic, final " if method == "balance" else "") + mean_std(lam, 3, significant=True),
                     mean_std([r["train_accuracy"] for r in rs]), mean_std([r["test_accuracy"] for r in rs]),
                     "dynamic" if t_lam is None else t_lam, t_train, t_test,
                     f"{sum(r['time_s'] for r in rs):.1f}"])
    report.add_table(header, rows, caption=f"Train and test accuracy, mean ± std over seeds {list(seeds)}:")

    none_test = np.array([res["rows"]["none"]["test_accuracy"] for res in per_seed])
    findings = []
    for method in ("logspace", "balance", "linear"):
        diff = np.array([res["rows"][method]["test_accuracy"] for res in per_seed]) - none_test
        findings.append(f"- {METHOD_TITLES[method]} vs lambda = 0: test accuracy {diff.mean():+.4f} on average, "
                        f"better on {int((diff > 0).sum())} of {diff.size} seeds")
    log_vs_lin = np.array([res["rows"]["logspace"]["test_accuracy"] - res["rows"]["linear"]["test_accuracy"]
                           for res in per_seed])
    findings.append(f"- logspace vs linear search: test accuracy {log_vs_lin.mean():+.4f} on average, "
                    f"better on {int((log_vs_lin > 0).sum())}, equal on {int((log_vs_lin == 0).sum())} "
                    f"of {log_vs_lin.size} seeds")
    report.add("Findings (the thesis: regularisation raises test accuracy on noisy data; logspace finds a better "
               "lambda than linear search):\n" + "\n".join(findings))

    # Figures from the first seed's data: boundaries at the requested lambdas.
    first = per_seed[0]
    lambdas = figure_lambdas(first)
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.2 * len(lambdas), 4))
    for i, (label, lam) in enumerate(lambdas):
        params, tr, te = fit_for_figure(setup, first["data"], lam, seeds[0])
        ax = fig.add_subplot(1, len(lambdas), i + 1)
        decision_boundary(params, lam, "relu", first["data"][1], first["data"][0], ax=ax,
                          step=0.02 if quick else 0.005,  # the thesis' 0.005 grid; coarser for smoke tests
                          title=f"{label}: lambda = {lam:.3g}\ntrain {tr:.3f}, test {te:.3f}")
    figure_name = {"table2": "figure4", "table3": "figure5"}[name]
    report.add_figure(fig, f"{figure_name}.png", f"{figure_name.capitalize()}: decision boundaries with the "
                      f"training data (seed {seeds[0]})")
    wall = time.perf_counter() - start
    return {"report": report, "rows": all_rows, "wall_s": wall}


def table2(out, quick: bool = False, seeds=(0, 1, 2), jobs: int = 1, **_ignored) -> dict:
    """Table 2 and Figure 4: linear 2-D data around f(x) = -x."""
    return _toy_table(
        "table2", "Table 2 / Figure 4: two classes of linear 2-D data, lambda by method", LINEAR_FULL,
        THESIS_TABLE2, out, quick, seeds, jobs,
        lambda first: [("no regularisation", 0.0), ("best logspace", first["rows"]["logspace"]["lambda"]),
                       ("thesis' large lambda", 0.551)],
    )


def table3(out, quick: bool = False, seeds=(0, 1, 2), jobs: int = 1, **_ignored) -> dict:
    """Table 3 and Figure 5: the 4-class spiral with 20 % label noise."""
    return _toy_table(
        "table3", "Table 3 / Figure 5: four classes of spiral data (20 % label noise), lambda by method",
        SPIRAL_FULL, THESIS_TABLE3, out, quick, seeds, jobs,
        lambda first: [("no regularisation", 0.0), ("regularised (best logspace)", first["rows"]["logspace"]["lambda"])],
    )
