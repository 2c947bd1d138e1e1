"""The thesis' experiments, one function each (also ``python -m natverk reproduce <name>``).

Each writes ``<name>.md`` (our numbers beside the thesis', with the git commit, natverk version,
SIMD level, threads, NumPy, command, date, seeds and wall time), ``<name>.csv`` (one row per
trial, each with the same provenance columns) and its figures (PNG) into ``out``. Machine paths
are written relative (the data root as ``<data root>``).

- ``table2`` (and Figure 4): linear 2-D data, lambda by none / logspace / balance / linear search;
- ``table3`` (and Figure 5): the 4-class spiral with 20 % label noise, the same methods;
- ``table4``: FC and CNN, none / L2 / dropout, on MNIST, Fashion-MNIST and CIFAR-10 where present
  (the full run: ``python -m natverk reproduce table4 --seed 0 --seed 1 --seed 2``);
- ``table5-6``: the ISIC protocol on any binary image dataset in the ISIC folder format;
- ``figure6-7``: sigmoid and ReLU with their derivatives.

``quick=True`` runs each on small data for a few epochs (a smoke test in minutes, not a result).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path


def _table2(**kw):
    from .toy import table2

    return table2(**kw)


def _table3(**kw):
    from .toy import table3

    return table3(**kw)


def _table4(**kw):
    from .images import table4

    return table4(**kw)


def _table5_6(**kw):
    from .isic import table5_6

    return table5_6(**kw)


def _figure6_7(**kw):
    from .activations import figure6_7

    return figure6_7(**kw)


EXPERIMENTS: dict[str, Callable[..., dict]] = {
    "table2": _table2,
    "table3": _table3,
    "table4": _table4,
    "table5-6": _table5_6,
    "figure6-7": _figure6_7,
}
ALIASES = {"figure4": "table2", "figure5": "table3", "table5": "table5-6", "table6": "table5-6",
           "figure6": "figure6-7", "figure7": "figure6-7"}
DEFAULT_SEEDS = {"table2": (0, 1, 2, 3, 4), "table3": (0, 1, 2, 3, 4)}


def names() -> list[str]:
    return list(EXPERIMENTS) + list(ALIASES)


def reproduce(name: str, out: str | Path = "results", quick: bool = False, epochs: int | None = None,
              seeds: Sequence[int] | None = None, jobs: int = 1, verbose: int = 0,
              data_root: str | None = None, resume: bool = True, datasets: Sequence[str] | None = None,
              networks: Sequence[str] | None = None, reuse_any: bool = False) -> dict:
    """Run experiment ``name`` and write its report into ``out``; returns the paths and rows.

    ``epochs`` overrides the experiment's epoch count where it trains image networks;
    ``seeds`` defaults to five seeds for the simulated-data tables (one in quick mode) and one
    for the image tables; ``jobs`` runs search trials in that many processes. For ``table4``:
    ``datasets`` and ``networks`` choose the cells to run (default all), ``resume`` reuses the
    cells an earlier run left in ``out`` with the same recipe, seed and code, and ``reuse_any``
    also those of other or unknown code (the report names them).
    """
    key = ALIASES.get(name, name)
    if key not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; choose one of {', '.join(names())}")
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be a positive integer, got {jobs!r}")
    if epochs is not None and (isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1):
        raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
    if seeds is None:
        seeds = (0,) if quick else DEFAULT_SEEDS.get(key, (0,))
    seeds = tuple(dict.fromkeys(int(s) for s in seeds))
    if not seeds:
        raise ValueError("seeds must name at least one seed")
    out = Path(out)
    start = time.perf_counter()
    kwargs: dict = {"out": out, "quick": quick, "seeds": seeds, "jobs": jobs}
    if key in ("table4", "table5-6"):
        kwargs.update(epochs=epochs, verbose=verbose, root=data_root)
    if key == "table4":
        kwargs.update(resume=resume, reuse_any=reuse_any)
        if datasets:
            kwargs.update(datasets=tuple(datasets))
        if networks:
            kwargs.update(networks=tuple(networks))
    elif datasets or networks or reuse_any:
        raise ValueError("datasets, networks and reuse_any choose Table 4's cells: use them with table4")
    result = EXPERIMENTS[key](**kwargs)
    wall = time.perf_counter() - start
    paths = result["report"].write(wall)
    return {"name": key, "wall_s": wall, "paths": paths, "rows": result.get("rows", [])}


__all__ = ["EXPERIMENTS", "reproduce", "names"]
