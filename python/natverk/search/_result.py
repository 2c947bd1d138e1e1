"""The table every search returns: one row per trained network, summaries per lambda.

A row is a dict ``lambda, seed, repeat, train_accuracy, val_accuracy,
test_accuracy, time_s`` (plus whatever scalar extras the trial returned).
The thesis (§4, Tables 2-3) reports one lambda per method with its train and
test accuracy; :attr:`SearchResult.best` is that lambda, chosen on the
*validation* accuracy so the test set stays untouched (the thesis picked on
test accuracy, which :meth:`SearchResult.best_by` reproduces when asked).
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

__all__ = ["ACCURACY_KEYS", "SearchResult"]

ACCURACY_KEYS = ("train_accuracy", "val_accuracy", "test_accuracy")
# Columns every row has, in this order; extras from the trial follow.
ROW_KEYS = ("lambda", "seed", "repeat", *ACCURACY_KEYS, "time_s")
_INT_KEYS = ("seed", "repeat", "n")


class SearchResult:
    """Rows of a lambda search, with per-lambda summaries and the best lambda.

    Parameters
    ----------
    rows : iterable of dict
        One dict per trial; each needs at least ``lambda`` and the three
        accuracies (see :data:`ROW_KEYS`).
    method : str
        ``"logspace"``, ``"linear"``, ``"grid"`` or ``"balance"`` (thesis §2.5).
    info : dict, optional
        How the lambdas were made (``lo``, ``hi``, ``n``, ``step``, ``seed``...);
        shown by :meth:`__repr__`, not written to CSV.
    """

    def __init__(self, rows: Iterable[Mapping[str, Any]], method: str = "grid", info: Mapping[str, Any] | None = None):
        self.rows: list[dict[str, Any]] = [dict(r) for r in rows]
        for i, row in enumerate(self.rows):
            missing = [k for k in ("lambda", *ACCURACY_KEYS) if k not in row]
            if missing:
                raise ValueError(f"row {i} lacks {missing}")
        self.method = str(method)
        self.info = dict(info or {})

    def __len__(self) -> int:
        return len(self.rows)

    def __repr__(self) -> str:
        best = self.best if self.rows else None
        where = f", best lambda={best['lambda']:.6g} (val {best['val_accuracy']:.4f})" if best else ""
        return f"SearchResult(method={self.method!r}, {len(self.rows)} rows{where})"

    # ------------------------------------------------------------------ summaries

    @property
    def lambdas(self) -> np.ndarray:
        """The distinct lambdas tried, ascending."""
        return np.array(sorted({float(r["lambda"]) for r in self.rows}), dtype=np.float64)

    def summary(self) -> list[dict[str, Any]]:
        """One dict per distinct lambda (ascending): ``lambda``, ``n`` (repeats),
        the mean of each accuracy and ``<accuracy>_std``, and the mean ``time_s``.

        The std is the sample std (ddof=1) over the repeats, and 0.0 for a single
        repeat. A failed trial (NaN accuracy, see ``on_error="record"``) makes its
        lambda's mean NaN, so a lambda that only sometimes trains is never
        reported as the best.
        """
        groups: dict[float, list[dict[str, Any]]] = {}
        for row in self.rows:
            groups.setdefault(float(row["lambda"]), []).append(row)
        out = []
        for lam in sorted(groups):
            rows = groups[lam]
            entry: dict[str, Any] = {"lambda": lam, "n": len(rows)}
            for key in ACCURACY_KEYS:
                values = np.array([_as_float(r[key]) for r in rows], dtype=np.float64)
                entry[key] = float(np.mean(values))
                entry[f"{key}_std"] = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
            times = [_as_float(r.get("time_s", math.nan)) for r in rows]
            entry["time_s"] = float(np.mean(times))
            out.append(entry)
        return out

    def best_by(self, metric: str = "val_accuracy") -> dict[str, Any]:
        """The :meth:`summary` entry with the highest mean ``metric``.

        Ties go to the smaller lambda (the thesis prefers the weaker penalty when
        accuracy cannot tell them apart); NaN means never win. ``metric`` may be
        any accuracy key; ``best_by("test_accuracy")`` is how the thesis' Tables
        2-3 chose (on the test set), kept for reproducing them.
        """
        if metric not in ACCURACY_KEYS:
            raise ValueError(f"metric must be one of {ACCURACY_KEYS}, got {metric!r}")
        if not self.rows:
            raise ValueError("the search has no rows")
        best = None
        for entry in self.summary():  # ascending lambda: strict '>' keeps the smaller on ties
            if not math.isnan(entry[metric]) and (best is None or entry[metric] > best[metric]):
                best = entry
        if best is None:
            raise ValueError(f"no lambda has a finite mean {metric} (were validation data given?)")
        return best

    @property
    def best(self) -> dict[str, Any]:
        """The lambda with the best mean validation accuracy (see :meth:`best_by`)."""
        return self.best_by("val_accuracy")

    @property
    def best_lambda(self) -> float:
        """``best["lambda"]``."""
        return float(self.best["lambda"])

    # ------------------------------------------------------------------ output

    def columns(self) -> list[str]:
        """Row columns: the standard ones present, then extras in first-seen order."""
        seen = [k for k in ROW_KEYS if any(k in r for r in self.rows)]
        for row in self.rows:
            seen.extend(k for k in row if k not in seen)
        return seen

    def to_markdown(self, kind: str = "auto", digits: int = 4) -> str:
        """A GitHub markdown table.

        ``kind="rows"`` lists every trial; ``"summary"`` one line per lambda with
        ``mean ± std`` accuracies; ``"auto"`` (default) picks the summary when
        some lambda was repeated. Accuracies are rounded to ``digits`` decimals,
        lambdas to 6 significant digits (use :meth:`to_csv` for exact values).
        """
        if kind == "auto":
            kind = "summary" if any(e["n"] > 1 for e in self.summary()) else "rows"
        if kind == "rows":
            cols = self.columns()
            body = [[_fmt(c, r.get(c, ""), digits) for c in cols] for r in self.rows]
        elif kind == "summary":
            cols = ["lambda", "n", *ACCURACY_KEYS, "time_s"]
            body = []
            for e in self.summary():
                line = [_fmt("lambda", e["lambda"], digits), str(e["n"])]
                for key in ACCURACY_KEYS:
                    cell = _fmt(key, e[key], digits)
                    line.append(cell + (f" ± {e[key + '_std']:.{digits}f}" if e["n"] > 1 else ""))
                line.append(_fmt("time_s", e["time_s"], digits))
                body.append(line)
        else:
            raise ValueError(f"kind must be 'auto', 'rows' or 'summary', got {kind!r}")
        lines = ["| " + " | ".join(cols) + " |", "|" + "|".join(" --- " for _ in cols) + "|"]
        lines += ["| " + " | ".join(line) + " |" for line in body]
        return "\n".join(lines) + "\n"

    def to_csv(self, path: str | os.PathLike) -> None:
        """Write every row to ``path`` (floats with ``repr``, so they read back exactly)."""
        cols = self.columns()
        with open(path, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(cols)
            for row in self.rows:
                writer.writerow([_csv_cell(row.get(c, "")) for c in cols])

    @classmethod
    def from_csv(cls, path: str | os.PathLike, method: str = "grid") -> SearchResult:
        """Read rows written by :meth:`to_csv` (numbers come back as int/float)."""
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            rows = [{k: _parse_cell(k, v) for k, v in row.items() if v != ""} for row in reader]
        return cls(rows, method=method)


def _as_float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _fmt(key: str, value: Any, digits: int) -> str:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        return str(value).replace("|", "\\|")
    if key in _INT_KEYS or isinstance(value, (int, np.integer)):
        return str(int(value))
    if key == "lambda":
        return f"{float(value):.6g}"
    if key == "time_s":
        return f"{float(value):.3f}"
    return f"{float(value):.{digits}f}"


def _csv_cell(value: Any) -> str:
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    if isinstance(value, (np.integer,)):
        return str(int(value))
    return str(value)


def _parse_cell(key: str, text: str) -> Any:
    try:
        return int(text) if key in _INT_KEYS else float(text)
    except ValueError:
        return {"True": True, "False": False}.get(text, text)
