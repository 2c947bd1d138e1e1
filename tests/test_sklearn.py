"""natverk.sklearn: scikit-learn's own estimator checks, and the estimators in Pipeline,
GridSearchCV and cross_val_score."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")

import natverk
from natverk.models import _plan
from natverk.sklearn import CNNClassifier, MLPClassifier, MLPRegressor
from sklearn.datasets import load_digits, make_blobs, make_regression
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

# ------------------------------------------------------------------ scikit-learn's own test suite


@parametrize_with_checks([MLPClassifier(), MLPRegressor(), CNNClassifier()])
def test_sklearn_check_estimator(estimator, check):
    check(estimator)


# ------------------------------------------------------------------ in sklearn's machinery


def _digits(n=600):
    X, y = load_digits(return_X_y=True)
    return X[:n], y[:n]


def test_mlp_classifier_in_a_pipeline_and_cross_val_score_learns_digits():
    X, y = _digits()
    pipe = make_pipeline(StandardScaler(), MLPClassifier((64,), max_iter=30, batch_size=32, learning_rate_init=5e-3,
                                                         random_state=0))
    scores = cross_val_score(pipe, X, y, cv=3)
    assert scores.shape == (3,) and scores.min() > 0.8, scores


def test_grid_search_picks_among_alphas_and_solvers():
    X, y = _digits(400)
    grid = GridSearchCV(MLPClassifier((32,), max_iter=30, batch_size=32, learning_rate_init=1e-2, random_state=0),
                        {"alpha": [1e-4, 10.0], "solver": ["Adam", "momentum"]}, cv=2)
    grid.fit(X / 16.0, y)
    assert grid.best_params_["alpha"] == 1e-4  # alpha = 10 (the thesis' L2, undivided) crushes the weights
    assert grid.best_score_ > 0.85
    assert set(grid.cv_results_["param_solver"]) == {"Adam", "momentum"}


def test_cnn_classifier_reads_flattened_images_through_image_shape():
    X, y = _digits(500)
    clf = CNNClassifier(filters=(4,), hidden_layer_sizes=(16,), image_shape=(1, 8, 8), max_iter=20, batch_size=32,
                        learning_rate_init=1e-2, random_state=0)
    pipe = make_pipeline(StandardScaler(), clf).fit(X[:400], y[:400])
    assert pipe.score(X[400:], y[400:]) > 0.75
    assert clf.image_shape_ == (1, 8, 8)
    # the same images as NCHW give the same network and predictions
    nchw = CNNClassifier(filters=(4,), hidden_layer_sizes=(16,), max_iter=20, batch_size=32, learning_rate_init=1e-2,
                         random_state=0)
    Xs = StandardScaler().fit(X[:400]).transform(X)
    nchw.fit(Xs[:400].reshape(-1, 1, 8, 8), y[:400])
    np.testing.assert_array_equal(nchw.predict(Xs[400:].reshape(-1, 1, 8, 8)), pipe.predict(X[400:]))


def test_cnn_classifier_names_shape_mistakes():
    X = np.random.default_rng(0).random((20, 1, 6, 6))
    y = np.arange(20) % 2
    clf = CNNClassifier(filters=(2,), hidden_layer_sizes=(4,), max_iter=2, random_state=0).fit(X, y)
    with pytest.raises(ValueError, match=r"looks channels-last.*X\.transpose\(0, 3, 1, 2\)"):
        clf.predict(X.transpose(0, 2, 3, 1))  # channels-last (20, 6, 6, 1)
    with pytest.raises(ValueError, match=r"image_shape \(1, 5, 5\) holds 25 values"):
        CNNClassifier(image_shape=(1, 5, 5)).fit(X.reshape(20, -1), y)


def test_labels_of_any_type_come_back_as_given():
    X, y = make_blobs(90, centers=3, random_state=1)
    names = np.array(["cat", "dog", "emu"])[y]
    clf = MLPClassifier((16,), max_iter=50, learning_rate_init=1e-2, random_state=0).fit(X, names)
    assert list(clf.classes_) == ["cat", "dog", "emu"]
    assert clf.predict(X).dtype == names.dtype and clf.score(X, names) > 0.9
    proba = clf.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(clf.classes_[proba.argmax(axis=1)], clf.predict(X))


def test_alpha_is_the_thesis_l2_on_weights_only():
    X, y = make_blobs(60, random_state=2)
    clf = MLPClassifier((8,), alpha=0.5, max_iter=3, random_state=0).fit(X, y)
    opt = clf.model_.optimizer
    assert type(opt).__name__ == "Adam" and opt.weight_decay == 0.5 and opt.decay == "weights"
    assert opt.beta2 == natverk.optimizers.table.OPTIMIZERS["adam"].defaults["beta2"]  # the table's default
    assert MLPClassifier(solver="MOMENTUM", momentum=0.5).fit(X, y).model_.optimizer.beta == 0.5
    with pytest.raises(ValueError, match=r"solver must be one of .*got 'lbfgs'"):
        MLPClassifier(solver="lbfgs").fit(X, y)
    with pytest.raises(ValueError, match=r"alpha must be in"):
        MLPClassifier(alpha=-1.0).fit(X, y)
    with pytest.raises(ValueError, match=r"activation must be one of"):
        MLPClassifier(activation="softplus").fit(X, y)


def test_estimators_train_through_sequential_fit_and_the_plan(monkeypatch):
    # one training step: the estimator's weights are the ones Sequential.fit gives, and the
    # MLPs go through the C++ step plan (a build counter proves it was used)
    built = []
    real = _plan.plan_for_fit

    def counting(*args, **kwargs):
        plan = real(*args, **kwargs)
        built.append(plan is not None)
        return plan

    monkeypatch.setattr(_plan, "plan_for_fit", counting)
    X, y = make_blobs(80, random_state=3)
    clf = MLPClassifier((8,), activation="Tanh", max_iter=4, n_iter_no_change=100, random_state=7).fit(X, y)
    assert built == [True] and clf.n_iter_ == 4
    # rebuilding the same network by hand and fitting it gives the same bits
    rng = np.random.RandomState(7)
    layers = clf._layers((2,), 3, rng)
    seed = int(rng.randint(2**31 - 1))
    model = natverk.Sequential(*layers)
    model.fit(X, y, 4, 80, natverk.optimizers.Adam(1e-3, weight_decay=1e-4), seed=seed, verbose=0)
    for (n, a, _), (_, b, _) in zip(model.parameters(), clf.model_.parameters()):
        np.testing.assert_array_equal(a, b, err_msg=n)


def test_partial_fit_continues_and_equals_fit_epoch_by_epoch():
    X, y = make_blobs(64, random_state=4)
    a = MLPClassifier((8,), random_state=0, n_iter_no_change=100, max_iter=3).fit(X, y)
    b = MLPClassifier((8,), random_state=0)
    for _ in range(3):
        b.partial_fit(X, y, classes=[0, 1, 2])
    assert b.n_iter_ == 3 and b.t_ == 3 * 64
    for (n, wa, _), (_, wb, _) in zip(a.model_.parameters(), b.model_.parameters()):
        np.testing.assert_array_equal(wa, wb, err_msg=n)
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        MLPClassifier().partial_fit(X, y)
    with pytest.raises(ValueError, match=r"labels \[7\] that are not in classes"):
        b.partial_fit(X[:2], [0, 7])


def test_regressor_multi_output_early_stopping_and_pickle():
    X, y = make_regression(200, 5, n_targets=2, noise=1.0, random_state=0)
    y = y / y.std(axis=0)
    reg = MLPRegressor((32,), learning_rate_init=1e-2, max_iter=300, early_stopping=True, random_state=0).fit(X, y)
    assert reg.predict(X).shape == (200, 2) and reg.score(X, y) > 0.95
    assert len(reg.validation_loss_curve_) == reg.n_iter_ and reg.best_epoch_ >= 1
    assert reg.validation_loss_curve_[reg.best_epoch_ - 1] <= min(reg.validation_loss_curve_) + reg.tol
    # training ran n_iter_no_change epochs past the best one, whose weights were then restored
    assert reg.n_iter_ == reg.best_epoch_ + reg.n_iter_no_change or reg.n_iter_ == reg.max_iter
    assert reg.history_["epoch"] == list(range(1, reg.n_iter_ + 1))  # history_ is Sequential.fit's
    again = pickle.loads(pickle.dumps(reg))
    np.testing.assert_array_equal(again.predict(X), reg.predict(X))
    with pytest.raises(ValueError, match="early_stopping needs at least 2 samples"):
        MLPRegressor(early_stopping=True).fit(X[:1], y[:1])


def test_max_iter_ends_training_without_a_warning():
    # filterwarnings = error: a ConvergenceWarning would fail this test
    X, y = make_blobs(50, random_state=5)
    clf = MLPClassifier((4,), max_iter=2).fit(X, y)
    assert clf.n_iter_ == 2 and len(clf.loss_curve_) == 2 and clf.loss_ == clf.loss_curve_[-1]
