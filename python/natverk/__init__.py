"""natverk: neural networks from scratch on our own C++ kernels.

A Python re-implementation of the Chalmers bachelor thesis' MATLAB code for
regularised neural networks. The sub-packages mirror the MATLAB folders
(``neuralnet``, ``optimizers``, ``activations``, ``simulatedata``,
``importdata``, ``utils``); every function is also importable from here.

The layer API (``layers``, ``losses``, ``models`` and the optimizer classes
in ``optimizers``) builds networks from layer objects::

    from natverk.layers import Conv2D, ReLU, MaxPool2D, Flatten, Dense
    model = natverk.models.Sequential(Conv2D(1, 8, 3, padding=1), ReLU(), MaxPool2D(2),
                                      Flatten(), Dense(8 * 4 * 4, 2))
    model.fit(X, y, epochs=5, batch_size=32, optimizer=natverk.optimizers.Adam(1e-2))
    model.save("model.npz"); model = natverk.load("model.npz")
"""

from __future__ import annotations

from . import _core, augmentation, callbacks, layers, losses, metrics, models, schedules, search
from ._config import get_num_threads, set_num_threads, show_config
from ._divergence import DivergenceError
from .activations import relu, relu_backward, sigmoid, sigmoid_backward, softmax, tanh, tanh_backward
from .importdata import (
    DatasetError,
    import_linear_data,
    import_nonlinear_data,
    load_cifar10,
    load_fashion_mnist,
    load_isic,
    load_mnist,
)
from .interop import from_torch, to_torch_state_dict
from .models import Sequential, load
from .neuralnet import back_propagation, forward_propagation, initialize_weights
from .optimizers import (
    gradient_descent_adam,
    gradient_descent_momentum,
    gradient_descent_rmsprop,
    gradient_descent_vanilla,
)
from .plotting import plot_history
from .simulatedata import generate_linear_2d, generate_nonlinear_2d
from .train import minibatches, train
from .utils import (
    check_accuracy,
    decision_boundary,
    exponential_decay,
    gradient_checking,
    normalization,
    st_logspace,
)

__version__: str = _core.__version__

__all__ = [
    "__version__",
    "set_num_threads",
    "get_num_threads",
    "show_config",
    "initialize_weights",
    "forward_propagation",
    "back_propagation",
    "gradient_descent_vanilla",
    "gradient_descent_momentum",
    "gradient_descent_rmsprop",
    "gradient_descent_adam",
    "relu",
    "relu_backward",
    "sigmoid",
    "sigmoid_backward",
    "tanh",
    "tanh_backward",
    "softmax",
    "check_accuracy",
    "gradient_checking",
    "decision_boundary",
    "exponential_decay",
    "normalization",
    "st_logspace",
    "generate_linear_2d",
    "generate_nonlinear_2d",
    "import_linear_data",
    "import_nonlinear_data",
    "load_mnist",
    "load_fashion_mnist",
    "load_cifar10",
    "load_isic",
    "DatasetError",
    "DivergenceError",
    "minibatches",
    "train",
    "layers",
    "losses",
    "models",
    "metrics",
    "augmentation",
    "schedules",
    "callbacks",
    "search",
    "Sequential",
    "load",
    "from_torch",
    "to_torch_state_dict",
    "plot_history",
]
