"""scikit-learn estimators on natverk networks: :class:`MLPClassifier`, :class:`MLPRegressor`
and :class:`CNNClassifier` (``pip install ".[sklearn]"`` from a clone).

They follow scikit-learn's conventions (constructor parameters stored as given and checked
by ``fit``; fitted attributes end in ``_``; any label type through ``classes_``) and pass
``sklearn.utils.estimator_checks.check_estimator``, so they work in ``Pipeline``,
``GridSearchCV`` and ``cross_val_score``. Every one of them builds a
:class:`~natverk.models.Sequential` (``model_``) and trains it with
:meth:`Sequential.fit <natverk.models.Sequential.fit>`: the same training step as the rest of
natverk (the C++ step plan where it applies), not a loop of their own.

The parameters keep scikit-learn's names, with natverk's meanings where they differ:

* ``alpha`` is the thesis' L2 (eq. 9): ``alpha * W`` added to the gradient of every weight
  matrix and kernel, never the biases -- the optimizer's ``weight_decay``. scikit-learn's
  ``MLPClassifier`` divides its ``alpha`` by the batch size; natverk does not.
* ``solver`` is a row of the optimizer table (:mod:`natverk.optimizers.table`), any case:
  ``"adam"`` (default), ``"sgd"`` / ``"vanilla"`` (plain gradient descent), ``"momentum"``
  (``momentum`` is its beta: ``v = beta v + (1 - beta) g``), ``"rmsprop"``. ``"lbfgs"`` is not
  offered.
* ``learning_rate_init``, ``beta_1``, ``beta_2``, ``epsilon`` and ``momentum`` default to None:
  the optimizer table's defaults (Adam: 1e-3, 0.9, 0.99 as in the thesis, 1e-8).
* Training stops after ``max_iter`` epochs, or when the training loss (with
  ``early_stopping``: the loss on a held-out ``validation_fraction``, stratified for
  classifiers, whose best weights are then restored) has not improved by ``tol`` for
  ``n_iter_no_change`` epochs: :class:`natverk.callbacks.EarlyStopping`. No
  ``ConvergenceWarning`` is raised when ``max_iter`` ends training.
* ``dropout`` is the probability of :class:`~natverk.layers.Dropout` after every hidden
  layer (0: none); ``activation`` is "relu", "tanh", "logistic" / "sigmoid" or "identity".
* ``random_state`` (int, RandomState or None) seeds the weights, dropout, the shuffling and
  the validation split: equal ints give bit-identical fits.
"""

from __future__ import annotations

import numbers

import numpy as np

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.model_selection import train_test_split
    from sklearn.utils import check_random_state
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import check_is_fitted, validate_data
except ImportError as err:  # pragma: no cover - exercised only without scikit-learn
    raise ImportError(
        "natverk.sklearn needs scikit-learn >= 1.6: pip install scikit-learn "
        '(or pip install ".[sklearn]" in a clone of natverk)'
    ) from err

from ..activations import activation_name
from ..callbacks import EarlyStopping
from ..layers import Conv2D, Dense, Dropout, Flatten, MaxPool2D, ReLU, Sigmoid, Tanh
from ..layers.conv import channels_last_hint
from ..models import Sequential
from ..optimizers.classes import OPTIMIZER_CLASSES
from ..optimizers.table import resolve

__all__ = ["CNNClassifier", "MLPClassifier", "MLPRegressor"]

_ACTIVATION_LAYERS = {"relu": ReLU, "sigmoid": Sigmoid, "tanh": Tanh}
# the optimizer table's hyper-parameter -> the estimator parameter that sets it
_HYPER = {"beta": "momentum", "beta1": "beta_1", "beta2": "beta_2", "eps": "epsilon"}
_SEED_MAX = 2**31 - 1


# ---------------------------------------------------------------------------- checks


def _int(value, name: str, minimum: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _real(value, name: str, lo: float, hi: float, lo_open: bool = False, hi_open: bool = False) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) or not np.isfinite(value) \
            or value < lo or value > hi or (lo_open and value == lo) or (hi_open and value == hi):
        interval = ("(" if lo_open else "[") + f"{lo}, {hi}" + (")" if hi_open else "]")
        raise ValueError(f"{name} must be a number in {interval}, got {value!r}")
    return float(value)


def _sizes(value, name: str) -> tuple[int, ...]:
    if isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_)):
        value = (value,)
    try:
        return tuple(_int(v, name, 1) for v in value)
    except TypeError:
        raise ValueError(f"{name} must be a tuple of positive ints such as (100,), got {value!r}") from None


# ---------------------------------------------------------------------------- the shared base


class _NatverkEstimator(BaseEstimator):
    """What the three estimators share: the optimizer, the stopping rule, fit and partial_fit
    through Sequential.fit. Subclasses give the layers (``_layers``) and the target handling."""

    _loss = "cross_entropy"
    _allow_nd = False

    # -- building --------------------------------------------------------------------
    def _optimizer(self):
        spec = resolve(self.solver, "solver")
        hyper = {}
        for key in spec.hyper:
            value = getattr(self, _HYPER[key])
            if value is not None:
                hyper[key] = value
        lr = spec.defaults["learning_rate"] if self.learning_rate_init is None else self.learning_rate_init
        try:
            return OPTIMIZER_CLASSES[spec.class_name](learning_rate=lr, weight_decay=self.alpha, **hyper)
        except (TypeError, ValueError) as err:  # the optimizer's message names its argument: use ours
            names = {"learning_rate": "learning_rate_init", "weight_decay": "alpha", **_HYPER}
            msg = str(err)
            for theirs, ours in names.items():
                if msg.startswith(theirs + " "):
                    msg = ours + msg[len(theirs):]
                    break
            raise ValueError(msg) from None

    def _hidden(self, n_in: int, rng) -> list:
        """Dense -> activation -> Dropout for every hidden size."""
        act = activation_name(self.activation, "activation", allow_none=True)
        dropout = _real(self.dropout, "dropout", 0.0, 1.0, hi_open=True)
        layers = []
        for size in _sizes(self.hidden_layer_sizes, "hidden_layer_sizes"):
            layers.append(Dense(n_in, size, seed=int(rng.randint(_SEED_MAX))))
            if act is not None:
                layers.append(_ACTIVATION_LAYERS[act]())
            if dropout > 0:
                layers.append(Dropout(dropout, seed=int(rng.randint(_SEED_MAX))))
            n_in = size
        return layers, n_in

    def _batch_size(self, n: int) -> int:
        if isinstance(self.batch_size, str) and self.batch_size == "auto":
            return min(200, n)
        return _int(self.batch_size, "batch_size ('auto' or an int)", 1)

    def _check_common(self) -> None:
        _int(self.max_iter, "max_iter", 1)
        _int(self.n_iter_no_change, "n_iter_no_change", 1)
        _real(self.tol, "tol", 0.0, np.inf, hi_open=True)
        if not isinstance(self.early_stopping, (bool, np.bool_)):
            raise ValueError(f"early_stopping must be True or False, got {self.early_stopping!r}")
        if self.early_stopping:
            _real(self.validation_fraction, "validation_fraction", 0.0, 1.0, lo_open=True, hi_open=True)
        if not isinstance(self.shuffle, (bool, np.bool_)):
            raise ValueError(f"shuffle must be True or False, got {self.shuffle!r}")

    # -- data --------------------------------------------------------------------------
    def _validate_X(self, X, reset: bool, y="no_validation"):
        """validate_data's checks; ``y`` left out validates X alone (scikit-learn's own sentinel)."""
        kw = {"dtype": (np.float64, np.float32), "allow_nd": self._allow_nd, "reset": reset}
        if isinstance(y, str) and y == "no_validation":
            return validate_data(self, X, **kw)
        return validate_data(self, X, y, multi_output=self._multi_output, y_numeric=self._y_numeric, **kw)

    def _inputs(self, X: np.ndarray, fitting: bool) -> np.ndarray:
        """The network's input from the validated X (the CNN reshapes it)."""
        return X

    # -- training ----------------------------------------------------------------------
    def _train(self, X: np.ndarray, t: np.ndarray, n_outputs: int, incremental: bool):
        """Build the network (unless ``incremental`` continues one) and train it with Sequential.fit."""
        self._check_common()
        bs = self._batch_size(X.shape[0])
        if not incremental or not hasattr(self, "model_"):
            rng = check_random_state(self.random_state)
            layers = self._layers(X.shape[1:], n_outputs, rng)
            self.model_ = Sequential(*layers)
            optimizer = self._optimizer()
            seed = int(rng.randint(_SEED_MAX))
            self.n_iter_, self.t_, self.loss_curve_ = 0, 0, []
        else:
            optimizer, seed = None, None  # continue: the model keeps its optimizer state and shuffling seed
        verbose = 2 if self.verbose else 0
        if incremental:
            history = self.model_.fit(X, t, 1, bs, optimizer, self._loss, shuffle=bool(self.shuffle), seed=seed,
                                      verbose=verbose)
        else:
            validation = None
            if self.early_stopping:
                X, t, validation = self._validation_split(X, t, seed)
            stopper = EarlyStopping("val_loss" if validation is not None else "loss", patience=self.n_iter_no_change,
                                    min_delta=float(self.tol), restore_best=validation is not None)
            history = self.model_.fit(X, t, int(self.max_iter), bs, optimizer, self._loss, validation_data=validation,
                                      shuffle=bool(self.shuffle), seed=seed, verbose=verbose, callbacks=[stopper])
            self.best_epoch_ = history.get("best_epoch")
            if validation is not None:
                self.validation_loss_curve_ = list(history["val_loss"])
        self.history_ = history
        self.n_iter_ += len(history["epoch"])
        self.t_ += len(history["epoch"]) * X.shape[0]
        self.loss_curve_ += list(history["loss"])
        self.loss_ = float(self.loss_curve_[-1])
        return self

    def _validation_split(self, X, t, seed):
        if X.shape[0] < 2:
            raise ValueError(f"early_stopping needs at least 2 samples to hold some out, got n_samples = {X.shape[0]}")
        stratify = t if self._loss == "cross_entropy" else None
        try:
            X_tr, X_va, t_tr, t_va = train_test_split(X, t, test_size=self.validation_fraction, random_state=seed,
                                                      stratify=stratify)
        except ValueError:  # too few examples of a class to stratify: an unstratified split
            X_tr, X_va, t_tr, t_va = train_test_split(X, t, test_size=self.validation_fraction, random_state=seed)
        return X_tr, t_tr, (X_va, t_va)

    def _outputs(self, X) -> np.ndarray:
        check_is_fitted(self, "model_")
        X = self._validate_X(X, reset=False)
        return self.model_.predict_logits(self._inputs(X, fitting=False))

    # -- sklearn-style views of the weights --------------------------------------------
    @property
    def coefs_(self) -> list[np.ndarray]:
        """The weight matrices / kernels of the network's Dense and Conv2D layers, in order."""
        check_is_fitted(self, "model_")
        return [layer.W for layer in self.model_.layers if isinstance(layer, (Dense, Conv2D))]

    @property
    def intercepts_(self) -> list[np.ndarray]:
        """Their biases."""
        check_is_fitted(self, "model_")
        return [layer.b for layer in self.model_.layers if isinstance(layer, (Dense, Conv2D))]


class _ClassifierBase(ClassifierMixin, _NatverkEstimator):
    _loss = "cross_entropy"
    _multi_output = False
    _y_numeric = False

    def fit(self, X, y):
        """Train a new network on (X, y); labels of any type (``classes_`` keeps them)."""
        X, y = self._validate_X(X, reset=True, y=y)
        check_classification_targets(y)
        self.classes_, t = np.unique(y, return_inverse=True)
        return self._train(self._inputs(X, fitting=True), t.reshape(-1), len(self.classes_), incremental=False)

    def partial_fit(self, X, y, classes=None):
        """One epoch over (X, y), continuing the network (building it on the first call, which
        needs ``classes``: every label ``y`` will ever hold)."""
        first = not hasattr(self, "model_")
        X, y = self._validate_X(X, reset=first, y=y)
        check_classification_targets(y)
        if first:
            if classes is None:
                raise ValueError("classes must be passed on the first call to partial_fit (every label y will hold)")
            self.classes_ = np.unique(classes)
        elif classes is not None and not np.array_equal(np.unique(classes), self.classes_):
            raise ValueError(f"classes={classes!r} differs from the classes of the first partial_fit call, "
                             f"{self.classes_!r}")
        t = np.searchsorted(self.classes_, y)
        unknown = (t >= len(self.classes_)) | (self.classes_[np.minimum(t, len(self.classes_) - 1)] != y)
        if unknown.any():
            raise ValueError(f"y holds labels {np.unique(y[unknown])[:10].tolist()} that are not in classes "
                             f"{self.classes_.tolist()}")
        return self._train(self._inputs(X, fitting=first), t, len(self.classes_), incremental=True)

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities (n_samples, n_classes), columns in the order of ``classes_``."""
        check_is_fitted(self, "model_")
        X = self._validate_X(X, reset=False)
        return self.model_.predict_proba(self._inputs(X, fitting=False))

    def predict(self, X) -> np.ndarray:
        """The most probable class of every sample, as a label of ``classes_``."""
        check_is_fitted(self, "model_")
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


# ---------------------------------------------------------------------------- the estimators

_COMMON_DOC = """
    Parameters
    ----------
    hidden_layer_sizes : tuple of int
        Units of each hidden Dense layer{hidden_extra}.
    activation : "relu", "tanh", "logistic" / "sigmoid" or "identity"
        The hidden layers' activation (any case).
    solver : str
        A row of natverk's optimizer table: "adam", "sgd" (= "vanilla"), "momentum", "rmsprop".
    alpha : float
        The thesis' L2 strength on the weights (not the biases): the optimizer's weight_decay.
    batch_size : int or "auto"
        Minibatch size; "auto" is min(200, n_samples).
    learning_rate_init : float or None
        The optimizer's learning rate (None: the table's default for the solver).
    max_iter : int
        Most epochs one ``fit`` trains.
    shuffle : bool
        Shuffle the examples every epoch (seeded by ``random_state``).
    random_state : int, RandomState or None
        Seeds the weights, dropout, shuffling and the validation split.
    tol, n_iter_no_change : float, int
        Stop when the monitored loss has not improved by ``tol`` for ``n_iter_no_change`` epochs.
    verbose : bool
        Print one line per epoch.
    early_stopping : bool
        Monitor the loss on a held-out ``validation_fraction`` of the training data (stratified
        for classifiers) instead of the training loss, and restore the best epoch's weights.
    validation_fraction : float
        The held-out fraction with ``early_stopping``.
    beta_1, beta_2, epsilon : float or None
        Adam's (and RMSprop's beta_2, epsilon) hyper-parameters; None: the table's defaults.
    momentum : float or None
        The momentum solver's beta; None: the table's default (0.9).
    dropout : float
        Dropout probability after every hidden layer (0: no Dropout layers).{extra}

    Attributes
    ----------
    model_ : natverk.Sequential
        The trained network (save it with ``model_.save(path)``).
    n_features_in_, n_iter_, t_, loss_, loss_curve_, history_, best_epoch_ :
        Input width, epochs trained, samples seen, the last and every epoch's training loss,
        Sequential.fit's history, and the epoch the stopping rule judged best.
    validation_loss_curve_ : list
        With ``early_stopping``: every epoch's validation loss.
"""


class MLPClassifier(_ClassifierBase):
    """A multi-layer perceptron classifier (softmax cross-entropy) on natverk's kernels.

    ``Dense -> activation [-> Dropout]`` for every hidden size, then ``Dense(n_classes)``;
    ``predict_proba`` is the softmax of its outputs.
    """

    __doc__ = (__doc__ or "") + _COMMON_DOC.format(hidden_extra="", extra="") + """
    classes_ : ndarray
        The labels seen in ``fit`` (or given to the first ``partial_fit``), sorted.
    """

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam", alpha=1e-4, batch_size="auto",
                 learning_rate_init=None, max_iter=200, shuffle=True, random_state=None, tol=1e-4, verbose=False,
                 early_stopping=False, validation_fraction=0.1, beta_1=None, beta_2=None, epsilon=None,
                 n_iter_no_change=10, momentum=None, dropout=0.0):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.momentum = momentum
        self.dropout = dropout

    def _layers(self, input_shape, n_outputs: int, rng) -> list:
        hidden, n_in = self._hidden(int(input_shape[0]), rng)
        return hidden + [Dense(n_in, n_outputs, seed=int(rng.randint(_SEED_MAX)))]


class MLPRegressor(RegressorMixin, _NatverkEstimator):
    """A multi-layer perceptron regressor (squared error, ``1/2 mean ||out - y||^2``) on natverk's
    kernels; one or several outputs (y of shape (n_samples,) or (n_samples, n_outputs)).

    ``Dense -> activation [-> Dropout]`` for every hidden size, then ``Dense(n_outputs)``.
    """

    __doc__ = (__doc__ or "") + _COMMON_DOC.format(hidden_extra="", extra="")

    _loss = "mse"
    _multi_output = True
    _y_numeric = True

    __init__ = MLPClassifier.__init__

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags

    def _layers(self, input_shape, n_outputs: int, rng) -> list:
        hidden, n_in = self._hidden(int(input_shape[0]), rng)
        return hidden + [Dense(n_in, n_outputs, seed=int(rng.randint(_SEED_MAX)))]

    def _targets(self, y: np.ndarray) -> np.ndarray:
        return y.reshape(y.shape[0], -1)

    def fit(self, X, y):
        """Train a new network on (X, y)."""
        X, y = self._validate_X(X, reset=True, y=y)
        self.n_outputs_ = 1 if y.ndim == 1 else y.shape[1]
        self._y_1d = y.ndim == 1
        return self._train(X, self._targets(y), self.n_outputs_, incremental=False)

    def partial_fit(self, X, y):
        """One epoch over (X, y), continuing the network (building it on the first call)."""
        first = not hasattr(self, "model_")
        X, y = self._validate_X(X, reset=first, y=y)
        n_outputs = 1 if y.ndim == 1 else y.shape[1]
        if first:
            self.n_outputs_, self._y_1d = n_outputs, y.ndim == 1
        elif n_outputs != self.n_outputs_:
            raise ValueError(f"y has {n_outputs} outputs, but the first partial_fit call had {self.n_outputs_}")
        return self._train(X, self._targets(y), self.n_outputs_, incremental=True)

    def predict(self, X) -> np.ndarray:
        """The network's outputs: (n_samples,) for a 1-D y in fit, else (n_samples, n_outputs)."""
        out = self._outputs(X)
        return out.reshape(-1) if self._y_1d else out


class CNNClassifier(_ClassifierBase):
    """A small convolutional classifier on natverk's kernels.

    For every entry of ``filters``: ``Conv2D(filters, kernel_size, padding="same") -> activation
    -> MaxPool2D(pool)``; then ``Flatten``, the hidden Dense layers and ``Dense(n_classes)``.

    Input, NCHW as everywhere in natverk:

    * 4-D ``X`` (n_samples, channels, height, width) is used as it is; channels-last images
      (n_samples, height, width, channels) need ``X.transpose(0, 3, 1, 2)``;
    * 3-D ``X`` (n_samples, height, width) is one channel;
    * 2-D ``X`` (n_samples, n_features), as a ``Pipeline`` hands it on, is reshaped to
      ``image_shape`` (channels, height, width), e.g. ``image_shape=(1, 28, 28)`` for flattened
      MNIST. Without ``image_shape`` each row is read as a one-channel 1 x n_features image (a
      1-D signal: the convolutions then run along the features).

    A kernel or pooling window never exceeds an axis of length 1 (it is 1 there), so every
    input size works; "same" padding is ``kernel_size // 2``.
    """

    __doc__ = (__doc__ or "") + _COMMON_DOC.format(
        hidden_extra=" after the convolutions",
        extra="""
    filters : tuple of int
        Output channels of each convolution block.
    kernel_size : int
        The convolutions' (square) kernel size.
    pool : int
        The max-pooling window after each convolution (1: no pooling).
    image_shape : (channels, height, width) or None
        How to read 2-D ``X``; see above.""") + """
    classes_ : ndarray
        The labels seen in ``fit`` (or given to the first ``partial_fit``), sorted.
    image_shape_ : tuple
        The (channels, height, width) the network was built for.
    """

    _allow_nd = True

    def __init__(self, filters=(8,), kernel_size=3, pool=2, hidden_layer_sizes=(32,), activation="relu", *,
                 image_shape=None, solver="adam", alpha=1e-4, batch_size="auto", learning_rate_init=None,
                 max_iter=200, shuffle=True, random_state=None, tol=1e-4, verbose=False, early_stopping=False,
                 validation_fraction=0.1, beta_1=None, beta_2=None, epsilon=None, n_iter_no_change=10,
                 momentum=None, dropout=0.0):
        self.filters = filters
        self.kernel_size = kernel_size
        self.pool = pool
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.image_shape = image_shape
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.momentum = momentum
        self.dropout = dropout

    def _validate_X(self, X, reset: bool, y="no_validation"):
        # images of another shape than fit's: say so (with the NCHW hint) before scikit-learn's
        # n_features check, which compares the channel axis alone
        shape = getattr(self, "image_shape_", None)
        if not reset and shape is not None and isinstance(X, np.ndarray) and X.ndim == 4 and X.shape[1:] != shape:
            raise ValueError(f"X has images of shape {X.shape[1:]}, but this CNNClassifier was fitted on "
                             f"(channels, height, width) = {shape}" + channels_last_hint(X.shape, shape[0], "X"))
        return super()._validate_X(X, reset, y)

    def _image_shape(self, X: np.ndarray) -> tuple[int, int, int]:
        """(channels, height, width) of the images in X."""
        if X.ndim == 4:
            return tuple(int(d) for d in X.shape[1:])
        if X.ndim == 3:
            return (1,) + tuple(int(d) for d in X.shape[1:])
        if self.image_shape is None:
            return (1, 1, int(X.shape[1]))
        shape = _sizes(self.image_shape, "image_shape")
        if len(shape) != 3:
            raise ValueError(f"image_shape must be (channels, height, width), got {self.image_shape!r}")
        if int(np.prod(shape)) != X.shape[1]:
            raise ValueError(f"X has {X.shape[1]} features per sample, but image_shape {shape} holds "
                             f"{int(np.prod(shape))} values")
        return shape

    def _inputs(self, X: np.ndarray, fitting: bool) -> np.ndarray:
        if fitting:
            self.image_shape_ = self._image_shape(X)
        shape = self.image_shape_
        if X.ndim == 4 and X.shape[1:] != shape:
            raise ValueError(f"X has images of shape {X.shape[1:]}, but this CNNClassifier was fitted on "
                             f"(channels, height, width) = {shape}" + channels_last_hint(X.shape, shape[0], "X"))
        if X.ndim == 3 and (1,) + X.shape[1:] != shape:
            raise ValueError(f"X has images of shape {X.shape[1:]}, but this CNNClassifier was fitted on "
                             f"(channels, height, width) = {shape}")
        return X.reshape((X.shape[0],) + shape)

    def _layers(self, input_shape, n_outputs: int, rng) -> list:
        c, h, w = input_shape
        act = activation_name(self.activation, "activation", allow_none=True)
        k = _int(self.kernel_size, "kernel_size", 1)
        pool = _int(self.pool, "pool", 1)
        layers = []
        for f in _sizes(self.filters, "filters"):
            kh, kw = (k if h > 1 else 1), (k if w > 1 else 1)  # no kernel across an axis of length 1
            layers.append(Conv2D(c, f, (kh, kw), padding=(kh // 2, kw // 2), seed=int(rng.randint(_SEED_MAX))))
            h, w = h + 2 * (kh // 2) - kh + 1, w + 2 * (kw // 2) - kw + 1
            if act is not None:
                layers.append(_ACTIVATION_LAYERS[act]())
            ph, pw = (pool if h >= pool else 1), (pool if w >= pool else 1)
            if (ph, pw) != (1, 1):
                layers.append(MaxPool2D((ph, pw)))
                h, w = h // ph, w // pw
            c = f
        hidden, n_in = self._hidden(c * h * w, rng)
        return [*layers, Flatten(), *hidden, Dense(n_in, n_outputs, seed=int(rng.randint(_SEED_MAX)))]
