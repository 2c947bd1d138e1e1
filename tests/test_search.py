"""natverk.search: the thesis' three ways to choose lambda (§2.5).

The searches' lambdas are exactly the documented lists; serial, process-pool
and Dask runs give identical rows (every trial is seeded by (seed, lambda
index, repeat)); the balance principle's lambda obeys eq. 47 at every step;
bad input raises ValueError; results survive CSV and markdown.
"""

from __future__ import annotations

import math
import multiprocessing
import pickle
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import numpy as np
import pytest

import natverk
from natverk.search import (
    MLPTrial,
    SearchResult,
    balance_principle,
    grid_search,
    linear_lambdas,
    linear_search,
    logspace_search,
    split_seed,
    trial_seed,
)

NODES = [2, 8, 2]


@pytest.fixture(scope="module")
def data():
    """The thesis' linear 2-D problem (boundary f(x) = -x), 100 points per split."""
    rng = np.random.default_rng(0)
    X_tr, y_tr = natverk.generate_linear_2d(100, 1, 1, 0, 0.3, seed=rng)
    X_va, y_va = natverk.generate_linear_2d(100, 1, 1, 0, 0.3, seed=rng)
    X_te, y_te = natverk.generate_linear_2d(100, 1, 1, 0, 0.3, seed=rng)
    return X_tr, y_tr, X_va, y_va, X_te, y_te


@pytest.fixture(scope="module")
def trial(data):
    return MLPTrial(*data, NODES, epochs=20, learning_rate=1e-2, minibatch_size=32)


def fake_trial(lambda_, seed):
    """A trial that trains nothing: val accuracy peaks at lambda = 0.1 (cheap, exact)."""
    noise = (seed % 1000) / 1e6
    return {
        "train_accuracy": 1.0 - lambda_,
        "val_accuracy": round(1.0 - abs(math.log10(lambda_ / 0.1)) / 10, 6) + noise if lambda_ > 0 else 0.5,
        "test_accuracy": 0.9,
    }


def without_time(rows):
    return [{k: v for k, v in row.items() if k != "time_s"} for row in rows]


# ---------------------------------------------------------------------- lambdas


def test_logspace_search_tries_st_logspace_lambdas_in_order():
    result = logspace_search(fake_trial, 1e-4, 1.0, 7, seed=3, repeats=2)
    expected = natverk.st_logspace(1e-4, 1.0, 7, seed=3)
    np.testing.assert_array_equal([r["lambda"] for r in result.rows], np.repeat(expected, 2))
    assert [r["repeat"] for r in result.rows] == [0, 1] * 7
    assert [r["seed"] for r in result.rows] == [trial_seed(3, i, r) for i in range(7) for r in range(2)]
    assert result.method == "logspace" and len(result) == 14


@pytest.mark.parametrize(
    "lo,hi,step,expected",
    [
        (0.0, 0.3, 0.1, [0.0, 0.1, 0.2, 0.3]),  # 0.3 / 0.1 = 2.9999999999999996 in floats
        (0.01, 0.1, 0.01, list(np.linspace(0.01, 0.1, 10))),
        (0.0, 0.25, 0.1, [0.0, 0.1, 0.2]),
        (0.5, 0.5, 0.1, [0.5]),
        (0.0, 1.0, 0.55, [0.0, 0.55]),
    ],
)
def test_linear_lambdas_are_lo_plus_step_times_j_up_to_hi(lo, hi, step, expected):
    lambdas = linear_lambdas(lo, hi, step)
    np.testing.assert_allclose(lambdas, expected, rtol=0, atol=1e-15)
    assert lambdas[0] == lo and lambdas[-1] <= hi
    # No accumulated rounding: each value is lo + step * j, clipped to hi.
    np.testing.assert_array_equal(lambdas, np.minimum(lo + step * np.arange(len(lambdas)), hi))


def test_linear_search_runs_every_lambda():
    result = linear_search(fake_trial, 0.0, 0.3, 0.1, seed=1)
    assert [r["lambda"] for r in result.rows] == [0.0, 0.1, 0.2, 0.3]
    assert result.best_lambda == 0.1 and result.method == "linear"


@pytest.mark.parametrize(
    "call",
    [
        lambda: logspace_search(fake_trial, 0.0, 1.0, 3),
        lambda: logspace_search(fake_trial, -1.0, 1.0, 3),
        lambda: logspace_search(fake_trial, 1.0, 0.1, 3),
        lambda: logspace_search(fake_trial, 1e-3, 1.0, 0),
        lambda: logspace_search(fake_trial, float("nan"), 1.0, 3),
        lambda: logspace_search(fake_trial, 1e-3, float("inf"), 3),
        lambda: linear_search(fake_trial, 0.0, 1.0, 0.0),
        lambda: linear_search(fake_trial, 0.0, 1.0, -0.1),
        lambda: linear_search(fake_trial, 0.5, 0.1, 0.1),
        lambda: linear_search(fake_trial, -0.1, 0.1, 0.1),
        lambda: linear_search(fake_trial, 0.0, 1.0, float("nan")),
        lambda: linear_search(fake_trial, 0.0, 1.0, 1e-12),
        lambda: grid_search(fake_trial, []),
        lambda: grid_search(fake_trial, [0.1, float("nan")]),
        lambda: grid_search(fake_trial, [0.1, -0.1]),
        lambda: grid_search(fake_trial, [0.1], repeats=0),
        lambda: grid_search(fake_trial, [0.1], jobs=0),
        lambda: grid_search(fake_trial, [0.1], seed=-1),
        lambda: grid_search(fake_trial, [0.1], on_error="ignore"),
    ],
)
def test_bad_input_raises_value_error(call):
    with pytest.raises(ValueError):
        call()


def test_non_integer_n_raises_type_error():
    with pytest.raises(TypeError):
        logspace_search(fake_trial, 1e-3, 1.0, 2.5)


# ---------------------------------------------------------------------- results


def test_best_is_the_highest_mean_val_accuracy_and_ties_go_to_the_smaller_lambda():
    result = grid_search(fake_trial, [0.01, 0.1, 1.0], seed=0, repeats=3)
    summary = result.summary()
    assert [e["lambda"] for e in summary] == [0.01, 0.1, 1.0] and all(e["n"] == 3 for e in summary)
    vals = [r["val_accuracy"] for r in result.rows if r["lambda"] == 0.1]
    assert summary[1]["val_accuracy"] == pytest.approx(np.mean(vals))
    assert summary[1]["val_accuracy_std"] == pytest.approx(np.std(vals, ddof=1))
    assert result.best["lambda"] == 0.1

    tied = SearchResult(
        [{"lambda": lam, "train_accuracy": 1.0, "val_accuracy": 0.9, "test_accuracy": 0.8} for lam in (0.3, 0.2, 0.5)]
    )
    assert tied.best_lambda == 0.2
    assert tied.best_by("test_accuracy")["lambda"] == 0.2


def test_csv_round_trip_is_exact_and_markdown_shows_every_row(tmp_path):
    result = grid_search(fake_trial, [0.0, 1 / 3, 0.1], seed=5)
    path = tmp_path / "search.csv"
    result.to_csv(path)
    back = SearchResult.from_csv(path)
    assert back.rows == result.rows
    assert back.best == result.best

    table = result.to_markdown().strip().splitlines()
    assert table[0].split("|")[1:4] == [" lambda ", " seed ", " repeat "]
    assert len(table) == 2 + len(result.rows)
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in table[2:]]
    for row, line in zip(result.rows, cells):
        assert float(line[0]) == pytest.approx(row["lambda"], rel=1e-5, abs=0)
        assert int(line[1]) == row["seed"]
        assert float(line[4]) == pytest.approx(row["val_accuracy"], abs=5e-5)

    repeated = grid_search(fake_trial, [0.1, 1.0], seed=0, repeats=2).to_markdown()
    assert "±" in repeated and len(repeated.strip().splitlines()) == 4


def test_a_failing_trial_stops_the_search_or_is_recorded():
    with pytest.raises(ZeroDivisionError):
        grid_search(failing_trial, [0.1, 0.0])
    result = grid_search(failing_trial, [0.1, 0.0], on_error="record")
    assert "ZeroDivisionError" in result.rows[1]["error"] and math.isnan(result.rows[1]["val_accuracy"])
    assert result.best_lambda == 0.1


def failing_trial(lambda_, seed):
    return {"train_accuracy": 1 / lambda_, "val_accuracy": 0.5, "test_accuracy": 0.5}


# ---------------------------------------------------------------------- trials and parallelism


def test_mlp_trial_is_a_pure_function_of_lambda_and_seed_and_survives_pickling(trial):
    threads = natverk.get_num_threads()
    first = trial(0.01, 7)
    assert natverk.get_num_threads() == threads  # restored after the trial's own setting
    assert trial(0.01, 7) == first
    # Unpickled arrays carry new dtype objects that the C++ bindings would reject.
    assert pickle.loads(pickle.dumps(trial))(0.01, 7) == first
    assert 0.5 < first["train_accuracy"] <= 1.0 and set(first) >= {"val_accuracy", "test_accuracy"}
    assert trial(0.01, 8) != first


def test_process_pool_gives_the_serial_rows(trial):
    serial = logspace_search(trial, 1e-3, 1.0, 3, seed=0, repeats=2)
    context = multiprocessing.get_context(
        "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    )
    with ProcessPoolExecutor(max_workers=2, mp_context=context) as pool:
        pooled = logspace_search(trial, 1e-3, 1.0, 3, seed=0, repeats=2, executor=pool, timeout=120)
    assert without_time(pooled.rows) == without_time(serial.rows)
    by_jobs = logspace_search(trial, 1e-3, 1.0, 3, seed=0, repeats=2, jobs=2, timeout=120)
    assert without_time(by_jobs.rows) == without_time(serial.rows)


def test_thread_pool_gives_the_serial_rows_and_restores_the_thread_count(trial):
    natverk.set_num_threads(2)
    serial = logspace_search(trial, 1e-3, 1.0, 4, seed=1)
    with ThreadPoolExecutor(max_workers=2) as pool:
        threaded = logspace_search(trial, 1e-3, 1.0, 4, seed=1, executor=pool)
    assert without_time(threaded.rows) == without_time(serial.rows)
    assert natverk.get_num_threads() == 2  # the last trial out restores the caller's setting


@pytest.mark.parametrize("processes", [False, True], ids=["threads", "processes"])
def test_dask_executor_gives_the_serial_rows(trial, processes):
    distributed = pytest.importorskip(
        "distributed", reason="Dask is optional: pip install 'dask[distributed]' to test the Dask executor"
    )
    serial = linear_search(trial, 0.0, 0.2, 0.1, seed=4)
    cluster = distributed.LocalCluster(
        n_workers=1 if processes else 2,
        threads_per_worker=1,
        processes=processes,
        protocol="tcp",  # LocalCluster's in-process default ("inproc") takes no host
        host="127.0.0.1",
        dashboard_address=None,
    )
    with cluster, distributed.Client(cluster) as client:
        result = linear_search(trial, 0.0, 0.2, 0.1, seed=4, executor=client.get_executor(), timeout=120)
    assert without_time(result.rows) == without_time(serial.rows)


def slow_trial(lambda_, seed):
    time.sleep(0.3)
    return fake_trial(lambda_, seed)


def test_timeout_cancels_the_pending_trials():
    with ThreadPoolExecutor(max_workers=1) as pool:
        start = time.monotonic()
        with pytest.raises(TimeoutError, match="0 of 3 trials finished"):
            grid_search(slow_trial, [0.1, 0.2, 0.3], executor=pool, timeout=0.05)
        assert time.monotonic() - start < 0.25
    with pytest.raises(ValueError):
        grid_search(fake_trial, [0.1], timeout=0.0)


def test_paired_seeds_share_one_seed_per_repeat():
    result = grid_search(fake_trial, [0.1, 0.2, 0.3], seed=2, repeats=2, paired=True)
    seeds = {(r["repeat"], r["seed"]) for r in result.rows}
    assert seeds == {(0, trial_seed(2, 0, 0, paired=True)), (1, trial_seed(2, 0, 1, paired=True))}


# ---------------------------------------------------------------------- balance principle


def test_balance_lambda_obeys_eq_47_at_every_step(data):
    X_tr, y_tr, X_va, y_va, X_te, y_te = data
    snapshots = {}

    def keep(step):
        if step["iteration"] in (0, 5, 37):
            snapshots[step["iteration"]] = (
                {k: v.copy() for k, v in step["parameters"].items()},
                step["batch"].copy(),
                step["lambda_"],
            )

    gamma = 1.0
    result = balance_principle(
        X_tr, y_tr, [2, 32, 32, 2], epochs=20, learning_rate=1e-2, minibatch_size=32, gamma=gamma,
        X_val=X_va, y_val=y_va, X_test=X_te, y_test=y_te, seed=0, callback=keep,
    )  # fmt: skip
    n_iter = 20 * 4  # 100 points in batches of 32
    assert result.lambdas.shape == result.phi.shape == result.psi.shape == (n_iter,)
    assert result.epoch_lambdas.shape == (20,)
    assert np.all(np.isfinite(result.lambdas)) and np.all(result.lambdas > 0)
    np.testing.assert_allclose(result.lambdas, result.phi / (gamma * result.psi), rtol=1e-15)
    for k, (params, batch, lam) in snapshots.items():
        # Recompute phi (data loss) and psi (1/2 sum ||W||^2) from x_k independently.
        _, loss, _ = natverk.forward_propagation(X_tr[batch], y_tr[batch], params, 0.0)
        psi = 0.5 * sum(float(np.sum(params[f"W{layer}"] ** 2)) for layer in (1, 2, 3))
        assert lam == result.lambdas[k]
        assert lam == pytest.approx(loss / (gamma * psi), rel=1e-12)
    assert result.lambda_ == result.lambdas[-1] == result.row["lambda"]
    assert result.row["train_accuracy"] > 0.9 and result.row["val_accuracy"] > 0.85
    assert set(result.row) == {"lambda", "seed", "train_accuracy", "val_accuracy", "test_accuracy", "time_s"}
    assert len(result.to_markdown().strip().splitlines()) == 3


def test_balance_with_a_fixed_lambda_epoch_is_natverk_train(data):
    """update="epoch" holds lambda0 through epoch 1: the run must be train()'s."""
    X_tr, y_tr = data[0], data[1]
    result = balance_principle(
        X_tr, y_tr, NODES, epochs=1, learning_rate=1e-2, minibatch_size=16, lambda0=0.05, update="epoch", seed=3
    )
    init_rng, shuffle_rng = split_seed(3)
    params = natverk.initialize_weights(NODES, seed=init_rng)
    natverk.train(params, X_tr, y_tr, 1, 1e-2, 16, 0.05, seed=shuffle_rng, verbose=0)
    for key in params:
        np.testing.assert_array_equal(result.parameters[key], params[key])
    assert result.epoch_lambdas.tolist() == [0.05] and result.lambdas.tolist() == [0.05]


def _balance_by_the_matlab_functions(X, y, nodes, epochs, learning_rate, minibatch_size, gamma, lambda0, seed,
                                     optimizer, update, lambda_max, lr_decay, dtype):
    """The balance principle's loop as balance.py wrote it before it ran on the step plan: per
    minibatch forward_propagation (lambda 0: phi and psi at x_k), lambda by eq. 47,
    back_propagation with that lambda, gradient_descent_<optimizer> (apply_optimizer)."""
    from natverk.search.balance import balance_lambda
    from natverk.train import apply_optimizer

    init_rng, shuffle_rng = split_seed(seed)
    X = np.ascontiguousarray(X, dtype=dtype)
    params = natverk.initialize_weights(nodes, seed=init_rng, dtype=dtype)
    lambdas, phis, psis = [], [], []

    def phi_psi(Xb, yb):
        _, _, cache = natverk.forward_propagation(Xb, yb, params, 0.0, "relu")
        return float(cache["no_reg_loss"]), 0.5 * float(cache["psi"]), cache

    def record(lam, phi, psi):
        lambdas.append(lam), phis.append(phi), psis.append(psi)

    if update == "epoch":
        phi, psi, _ = phi_psi(X, y)
        lam = lambda0 if lambda0 is not None else balance_lambda(phi, psi, gamma, lambda_max)
        record(lam, phi, psi)
    t = iteration = 0
    for epoch in range(1, epochs + 1):
        lr = natverk.exponential_decay(learning_rate, epoch) if lr_decay else learning_rate
        for idx in natverk.minibatches(X.shape[0], minibatch_size, shuffle_rng):
            phi, psi, cache = phi_psi(X[idx], y[idx])
            if update == "iteration":
                lam = lambda0 if iteration == 0 and lambda0 is not None else balance_lambda(phi, psi, gamma, lambda_max)
                record(lam, phi, psi)
            gradients = natverk.back_propagation(cache, y[idx], params, lam, "relu")
            t += optimizer == "adam"
            apply_optimizer(gradients, params, optimizer, lr, 0.9, 0.9, 0.99, t)
            iteration += 1
        if update == "epoch" and epoch < epochs:
            phi, psi, _ = phi_psi(X, y)
            lam = balance_lambda(phi, psi, gamma, lambda_max)
            record(lam, phi, psi)
    return params, lambdas, phis, psis


@pytest.mark.parametrize(
    "update,optimizer,lambda0,lambda_max,lr_decay,dtype,m,batch",
    [
        ("iteration", "adam", None, None, False, np.float64, 100, 32),
        ("iteration", "momentum", 0.01, 0.05, True, np.float32, 100, 32),
        ("iteration", "vanilla", None, None, False, np.float32, 600, 300),  # 300 rows: two GEMM k-blocks
        ("iteration", "rmsprop", None, 0.02, False, np.float64, 600, 300),
        ("epoch", "rmsprop", None, None, False, np.float64, 100, 16),
        ("epoch", "sgd", 0.02, None, True, np.float32, 100, 32),
        ("epoch", "adam", None, None, False, np.float64, 600, 300),
    ],
)  # fmt: skip
def test_balance_on_the_plan_gives_the_matlab_functions_weights(update, optimizer, lambda0, lambda_max, lr_decay,
                                                                 dtype, m, batch):
    """balance_principle trains through the step plan (forward_loss, then backward_update with
    the lambda chosen in between); the loop it replaced, written with the MATLAB-style functions,
    gives the same lambdas, phi, psi and weights, bit for bit."""
    rng = np.random.default_rng(5)
    X, y = natverk.generate_linear_2d(m, 1, 1, 0, 0.3, seed=rng)
    nodes = [2, 32, 16, 2]
    kwargs = dict(epochs=4, learning_rate=1e-2, minibatch_size=batch, gamma=1.5, lambda0=lambda0, seed=7,
                  optimizer=optimizer, update=update, lambda_max=lambda_max, lr_decay=lr_decay)
    result = balance_principle(X, y, nodes, dtype=dtype, **kwargs)
    params, lambdas, phis, psis = _balance_by_the_matlab_functions(X, y, nodes, dtype=dtype, **kwargs)
    assert result.lambdas.tolist() == lambdas
    assert result.phi.tolist() == phis and result.psi.tolist() == psis
    assert set(result.parameters) == set(params)
    for key in params:
        assert result.parameters[key].dtype == dtype
        np.testing.assert_array_equal(result.parameters[key], params[key], err_msg=key)


def test_balance_epoch_update_uses_the_whole_training_set_and_lambda_max_caps(data):
    X_tr, y_tr = data[0], data[1]
    result = balance_principle(
        X_tr, y_tr, NODES, epochs=5, learning_rate=1e-2, minibatch_size=32, update="epoch", gamma=2.0
    )
    assert result.lambdas.shape == (5,)
    np.testing.assert_allclose(result.lambdas, result.phi / (2.0 * result.psi), rtol=1e-15)
    np.testing.assert_array_equal(result.epoch_lambdas, result.lambdas)
    params = natverk.initialize_weights(NODES, seed=split_seed(0)[0])
    _, phi0, cache = natverk.forward_propagation(X_tr, y_tr, params, 0.0)
    assert result.phi[0] == pytest.approx(phi0, rel=1e-12) and result.psi[0] == pytest.approx(
        cache["psi"] / 2, rel=1e-12
    )

    capped = balance_principle(X_tr, y_tr, NODES, epochs=5, learning_rate=1e-2, minibatch_size=32, lambda_max=0.01)
    assert capped.lambdas.max() == 0.01 and math.isnan(capped.row["test_accuracy"])


@pytest.mark.parametrize(
    "kwargs",
    [{"gamma": 0.0}, {"gamma": float("nan")}, {"lambda0": -1.0}, {"update": "batch"}, {"epochs": 0},
     {"lambda_max": 0.0}, {"X_val": np.zeros((3, 2))}],
)  # fmt: skip
def test_balance_rejects_bad_input(data, kwargs):
    args = {"epochs": 1, "learning_rate": 1e-2, **kwargs}
    with pytest.raises(ValueError):
        balance_principle(data[0], data[1], NODES, **args)
