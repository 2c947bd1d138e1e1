"""Thesis Tables 2 and 3 with Figures 4 and 5: choosing the L2 strength lambda on simulated
2-D data, by no regularisation, randomised logspace search, the balance principle and linear
search (thesis §2.5, §4.1-4.2).

Protocol (the thesis' MATLAB setup, made repeatable):
- data: linear 2-D data around f(x) = -x (``generate_linear_2d(points, 1, 1, 0, noise)``) or
  the 4-arm spiral with 20 % scrambled training labels; a training, a validation and a test set
  drawn independently; z-scored with the training statistics (``normalization``).
- size and length: not stated in the thesis; calibrated on the lambda = 0 control row, the one
  row with nothing to select (``benchmarks/thesis_toy_calibration.py``, record in
  ``benchmarks/results/thesis/calibration/``): the grid point whose lambda = 0 train and
  *validation* accuracies come closest to the thesis' lambda = 0 train and test accuracies.
  Linear: 1000 points, 2000 epochs. Spiral: 200 points per class, 2000 epochs. The spiral
  cannot match both numbers: with more points the test accuracy rises toward the thesis' 0.934
  but the training accuracy on the 20 % scrambled labels falls far below its 0.996 (the thesis'
  pair implies memorising the scrambled labels *and* generalising; no size we tried does both).
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
  the whole set damped that at the uncalibrated size (50 points per class: no seed ran away,
  mean 0.810). It is not a guarantee: at the calibrated sizes every seed of five runs up to the
  cap and collapses to one class, in both tables (spiral test 0.25, linear 0.50), and the
  tables report it as it comes out.
- time: the wall time of each method (all its trials) per seed is the chosen row's ``time_s`` in
  the CSV; the table sums it over the seeds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np

from ..importdata import import_linear_data, import_nonlinear_data
from ..search import MLPTrial, balance_principle, linear_search, logspace_search
from ..search.trial import accuracies, num_threads
from ..utils import decision_boundary, normalization
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


# The thesis does not say how many points it drew or how long it trained: both are calibrated on
# the lambda = 0 control row (benchmarks/thesis_toy_calibration.py; its rule and record are in
# benchmarks/results/thesis/calibration/, chosen on validation accuracy, never test). Before the
# calibration they were 200 points / 1000 epochs (linear) and 50 per class / 2000 epochs (spiral).
LINEAR_FULL = ToySetup("linear", points=1000, noise_rate=1.0, n_classes=2, epochs=2000, learning_rate=1e-3,
                       log_range=(1e-4, 1.0), n_logspace=10, linear_range=(0.0, 1.0), linear_step=0.1)
SPIRAL_FULL = ToySetup("spiral", points=200, noise_rate=0.1, n_classes=4, epochs=2000, learning_rate=1e-3,
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


def _chosen(search) -> dict:
    """A search's chosen row, with ``trial_seed``: the seed of the one network that scored it.
    The table's searches train each lambda once, so the best lambda's row is one network."""
    best = dict(search.best)
    trials = [row for row in search.rows if row["lambda"] == best["lambda"]]
    if len(trials) != 1:
        raise RuntimeError(f"{search.method} search: lambda {best['lambda']} was trained {len(trials)} times; "
                           f"the table reports one network per number")
    return {**best, "trial_seed": trials[0]["seed"]}


def run_methods(setup: ToySetup, seed: int, jobs: int) -> dict:
    """The four ways to choose lambda on one seed's data: each a row with lambda and accuracies."""
    data = make_data(setup, seed)
    trial = MLPTrial(*data, nodes=setup.nodes, epochs=setup.epochs, learning_rate=setup.learning_rate,
                     minibatch_size=setup.minibatch_size, threads=1)
    rows, seconds = {}, {}
    t0 = time.perf_counter()
    none = trial(0.0, seed)
    rows["none"] = {"lambda": 0.0, **none, "trial_seed": seed}
    seconds["none"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    log = logspace_search(trial, *setup.log_range, setup.n_logspace, seed=seed, jobs=jobs)
    rows["logspace"] = _chosen(log)
    seconds["logspace"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    lin = linear_search(trial, setup.linear_range[0], setup.linear_range[1], setup.linear_step, seed=seed, jobs=jobs)
    rows["linear"] = _chosen(lin)
    seconds["linear"] = time.perf_counter() - t0
    X_tr, y_tr, X_val, y_val, X_te, y_te = data
    t0 = time.perf_counter()
    bal = balance_principle(X_tr, y_tr, setup.nodes, epochs=setup.epochs, learning_rate=setup.learning_rate,
                            minibatch_size=setup.minibatch_size, gamma=1.0, X_val=X_val, y_val=y_val,
                            X_test=X_te, y_test=y_te, seed=seed,
                            # damped: whole-set phi/psi once per epoch, not per minibatch (see the
                            # module docstring); the cap at the search range's top is a safeguard
                            update="epoch", lambda_max=setup.log_range[1])
    rows["balance"] = {**bal.row, "trial_seed": seed}
    seconds["balance"] = time.perf_counter() - t0
    for method, row in rows.items():
        # seed: the table's seed (data, search draws); trial_seed: the one network the row scored.
        # time_s of a chosen row: the wall time of the whole method on this seed (all its trials)
        row.update(method=method, seed=seed, problem=setup.kind, time_s=seconds[method])
    return {"rows": rows, "data": data, "trial": trial, "logspace": log, "linear": lin, "balance": bal}


@dataclass(frozen=True)
class Panel:
    """One decision-boundary panel: a CSV row and the network its numbers came from."""

    label: str
    row: dict
    parameters: dict


def figure_panels(result: dict, extra_lambdas=()) -> list[Panel]:
    """The networks behind one seed's table rows, plus a network per ``(label, lambda)`` in
    ``extra_lambdas``, as figure panels.

    A panel is never a fresh training run of its own: the lambda = 0, logspace and linear rows
    are rebuilt with :meth:`MLPTrial.fit` from the row's lambda and ``trial_seed`` (a trial is a
    pure function of both), the balance row's network is the one :func:`balance_principle`
    returned, and an extra lambda becomes a row of its own (``method`` ``figure-trial``, beside
    the searches' ``*-trial`` rows) that the CSV and the report's panel table carry. Every
    panel's network is re-scored and must give its row's accuracies exactly, so a figure cannot
    drift from its table.
    """
    trial, rows = result["trial"], result["rows"]
    panels = []
    for method in METHODS:
        row = rows[method]
        if method == "balance":
            parameters = result["balance"].parameters
        else:
            parameters, _ = trial.fit(row["lambda"], row["trial_seed"])
        panels.append(Panel(METHOD_TITLES[method], row, parameters))
    for label, lam in extra_lambdas:
        seed = rows["none"]["seed"]
        parameters, _ = trial.fit(lam, seed)
        with num_threads(trial.threads):
            scores = accuracies(parameters, trial, trial.activation)
        row = {"lambda": float(lam), "seed": seed, **scores, "trial_seed": seed, "method": "figure-trial",
               "problem": rows["none"]["problem"]}
        panels.append(Panel(label, row, parameters))
    for panel in panels:
        with num_threads(trial.threads):
            scores = accuracies(panel.parameters, trial, trial.activation)
        for key, value in scores.items():
            if value != panel.row[key]:
                raise RuntimeError(f"{panel.label}: the figure's network scores {key} {value}, the table's row "
                                   f"{panel.row[key]}; the figure would not show the reported model")
    return panels


def _toy_table(name: str, title: str, setup: ToySetup, thesis: dict, out, quick: bool, seeds, jobs: int,
               extra_lambdas=()) -> dict:
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

    # The figure draws the first seed's networks: the very ones behind that seed's table rows
    # (see figure_panels), each panel titled with its row's numbers, which a table below repeats.
    first = per_seed[0]
    panels = figure_panels(first, extra_lambdas)
    extra_rows = [p.row for p in panels if p.row.get("method") == "figure-trial"]
    report.add_rows(extra_rows)
    all_rows.extend(extra_rows)
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    X_tr, y_tr = first["data"][0], first["data"][1]
    fig = Figure(figsize=(4.2 * len(panels), 4.4))
    for i, panel in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        decision_boundary(panel.parameters, panel.row["lambda"], "relu", y_tr, X_tr, ax=ax,
                          step=0.02 if quick else 0.005,  # the thesis' 0.005 grid; coarser for smoke tests
                          title=f"{panel.label}\nlambda = {panel.row['lambda']:.3g}\n"
                                f"train {panel.row['train_accuracy']:.3f}, test {panel.row['test_accuracy']:.3f}")
    figure_name = {"table2": "figure4", "table3": "figure5"}[name]
    figure_title = {"table2": "Figure 4", "table3": "Figure 5"}[name]
    report.add_table(["panel", "method (CSV)", "lambda", "seed", "trial seed", "train acc", "val acc", "test acc"],
                     [[p.label, p.row["method"], f"{p.row['lambda']:.6g}", p.row["seed"], p.row["trial_seed"],
                       p.row["train_accuracy"],
                       p.row["val_accuracy"], p.row["test_accuracy"]] for p in panels],
                     caption=f"{figure_title}'s panels, left to right: seed {first['rows']['none']['seed']}'s "
                             f"rows of the table above (and of the CSV), each panel the network that row scored:")
    report.add_figure(fig, f"{figure_name}.png", f"{figure_title}: decision boundaries with the "
                      f"training data (seed {seeds[0]})")
    wall = time.perf_counter() - start
    return {"report": report, "rows": all_rows, "wall_s": wall,
            "panels": [{"label": p.label, **p.row} for p in panels]}


def table2(out, quick: bool = False, seeds=(0, 1, 2), jobs: int = 1, **_ignored) -> dict:
    """Table 2 and Figure 4: linear 2-D data around f(x) = -x."""
    # The thesis' Figure 4 also shows an over-regularised boundary at lambda = 0.551; it is
    # drawn as an extra panel whose numbers are a CSV row (method "figure-trial") and a panel-table row.
    return _toy_table(
        "table2", "Table 2 / Figure 4: two classes of linear 2-D data, lambda by method", LINEAR_FULL,
        THESIS_TABLE2, out, quick, seeds, jobs, extra_lambdas=[("the thesis' large lambda", 0.551)],
    )


def table3(out, quick: bool = False, seeds=(0, 1, 2), jobs: int = 1, **_ignored) -> dict:
    """Table 3 and Figure 5: the 4-class spiral with 20 % label noise."""
    return _toy_table(
        "table3", "Table 3 / Figure 5: four classes of spiral data (20 % label noise), lambda by method",
        SPIRAL_FULL, THESIS_TABLE3, out, quick, seeds, jobs,
    )
