"""Choosing the L2 strength lambda: the thesis' three methods (§2.5).

- :func:`logspace_search` — randomised logspace: lambdas drawn log-uniformly
  with ``st_logspace`` (thesis Tables 2-3: lambda = 0.032 on the linear data,
  0.0009 on the spiral);
- :func:`linear_search` — a fixed-step grid over an interval (0.1 and 0.02);
- :func:`balance_principle` — the zero-crossing method: one training run that
  sets ``lambda = phi / (gamma psi)`` after every iteration, gamma = 1.

The two searches are :func:`grid_search` over their lambdas; each lambda is a
*trial*, a picklable ``trial_fn(lambda_, seed) -> dict`` such as
:class:`MLPTrial`, so trials run serially, in a local process pool
(``jobs=2``) or on Dask (``executor=client.get_executor()``) with identical
results. All return a :class:`SearchResult`::

    trial = MLPTrial(X_tr, y_tr, X_val, y_val, X_te, y_te, [2, 250, 100, 50, 2],
                     epochs=2000, learning_rate=1e-3)
    result = logspace_search(trial, 1e-4, 1.0, 20, seed=0, jobs=2)
    print(result.to_markdown(), result.best)
"""

from __future__ import annotations

from ._result import SearchResult
from .balance import BalanceResult, balance_lambda, balance_principle
from .grid import grid_search, linear_lambdas, linear_search, logspace_search, trial_seed
from .trial import MLPTrial, split_seed

__all__ = [
    "BalanceResult",
    "MLPTrial",
    "SearchResult",
    "balance_lambda",
    "balance_principle",
    "grid_search",
    "linear_lambdas",
    "linear_search",
    "logspace_search",
    "split_seed",
    "trial_seed",
]
