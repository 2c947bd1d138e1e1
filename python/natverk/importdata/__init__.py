"""Mirror of the MATLAB `importdata/` folder: train/test sets of simulated data.

- :func:`import_linear_data` -- linearly separable 2-D data.
- :func:`import_nonlinear_data` -- spiral 2-D data.
"""

from __future__ import annotations

from .import_linear_data import import_linear_data
from .import_nonlinear_data import import_nonlinear_data

__all__ = ["import_linear_data", "import_nonlinear_data"]
