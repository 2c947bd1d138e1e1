"""Mirror of the MATLAB `simulatedata/` folder: synthetic 2-D classification data.

- :func:`generate_linear_2d` -- two classes split by a straight line.
- :func:`generate_nonlinear_2d` -- K interleaved spiral arms.
"""

from __future__ import annotations

from .generate_linear_2d import generate_linear_2d
from .generate_nonlinear_2d import generate_nonlinear_2d

__all__ = ["generate_linear_2d", "generate_nonlinear_2d"]
