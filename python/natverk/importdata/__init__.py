"""Mirror of the MATLAB `importdata/` folder: train/test sets of simulated and real data.

- :func:`import_linear_data` -- linearly separable 2-D data.
- :func:`import_nonlinear_data` -- spiral 2-D data.
- :func:`load_mnist`, :func:`load_fashion_mnist`, :func:`load_cifar10`,
  :func:`load_isic` -- the thesis' image datasets, float32 NCHW in [0, 1]
  (see :mod:`natverk.importdata.datasets`); :class:`DatasetError` is what
  they raise for a corrupt or hostile file.
"""

from __future__ import annotations

from .datasets import DatasetError, load_cifar10, load_fashion_mnist, load_isic, load_mnist
from .import_linear_data import import_linear_data
from .import_nonlinear_data import import_nonlinear_data

__all__ = [
    "import_linear_data",
    "import_nonlinear_data",
    "load_mnist",
    "load_fashion_mnist",
    "load_cifar10",
    "load_isic",
    "DatasetError",
]
