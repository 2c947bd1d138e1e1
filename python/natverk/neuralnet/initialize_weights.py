"""Mirror of MATLAB ``initialize_weights.m``: Kaiming-initialised parameters."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .._validation import as_float_dtype


def initialize_weights(
    nodes: Sequence[int],
    seed: int | np.random.Generator | None = None,
    dtype: type | np.dtype = np.float64,
) -> dict[str, np.ndarray]:
    """Mirror of MATLAB ``initialize_weights(node_vec)``.

    Parameters
    ----------
    nodes : sequence of int
        Layer widths ``[n0, n1, ..., nL]``; ``n0`` is the number of input
        features and ``nL`` the number of classes (the thesis' spiral net is
        ``[2, 250, 100, 50, 4]``).
    seed : int, Generator or None
        Seeds NumPy's ``default_rng``; the same seed gives the same weights.
    dtype : float32 or float64
        float64 is the default, as in MATLAB.

    Returns
    -------
    dict
        ``W1..WL`` (n_{l-1} x n_l) drawn from N(0, 2 / n_{l-1}) (Kaiming,
        thesis appendix A), ``b1..bL`` (1 x n_l) zeros, and the optimizer
        state ``v_dW*``, ``v_db*``, ``s_dW*``, ``s_db*`` as zeros.
    """
    dtype = as_float_dtype(dtype)
    try:
        widths = [int(n) for n in nodes]
    except (TypeError, ValueError):
        raise TypeError(f"nodes must be a sequence of integers, got {nodes!r}") from None
    if len(widths) < 2:
        raise ValueError(f"nodes needs at least an input and an output width, got {widths}")
    if any(n < 1 for n in widths) or any(float(a) != b for a, b in zip(nodes, widths)):
        raise ValueError(f"nodes must be positive integers, got {list(nodes)}")
    for n_in, n_out in zip(widths[:-1], widths[1:]):
        # NumPy's own failure for such a shape ("array is too big", "Maximum allowed dimension
        # exceeded") named no argument
        if n_in * n_out * dtype.itemsize > 2**63 - 1:
            raise ValueError(f"nodes {list(widths)}: a {n_in} x {n_out} weight matrix would need more bytes than an "
                             f"array can hold (2**63 - 1)")
    if isinstance(seed, (bool, np.bool_)):
        raise TypeError(f"seed must be an int, a numpy Generator or None, got {seed!r}")
    try:
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    except (TypeError, ValueError) as err:  # NumPy's "expected non-negative integer" names no argument
        raise type(err)(f"seed must be an int >= 0, a numpy Generator or None, got {seed!r}: {err}") from None

    parameters: dict[str, np.ndarray] = {}
    for l, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:]), start=1):
        # Drawn in float64 then cast, so float32 and float64 nets start alike.
        parameters[f"W{l}"] = (rng.standard_normal((n_in, n_out)) * np.sqrt(2.0 / n_in)).astype(dtype)
        parameters[f"b{l}"] = np.zeros((1, n_out), dtype=dtype)
        for state in ("v", "s"):
            parameters[f"{state}_dW{l}"] = np.zeros((n_in, n_out), dtype=dtype)
            parameters[f"{state}_db{l}"] = np.zeros((1, n_out), dtype=dtype)
    return parameters
