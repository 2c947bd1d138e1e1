"""Writing an experiment's results: a Markdown table beside the thesis' numbers, a CSV, and
the facts needed to trust them (machine, date, seeds, wall time, command)."""

from __future__ import annotations

import csv
import datetime as _dt
import io
import os
import platform
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and ``os.replace``: a reader sees the
    old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_figure(fig, path: Path) -> str:
    """Save a matplotlib figure as PNG atomically; returns the path as a string."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, dpi=120, format="png", bbox_inches="tight")
    os.replace(tmp, path)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return str(path)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _command_line() -> str:
    if not sys.argv or not sys.argv[0]:
        return ""
    prog = "python -m natverk" if Path(sys.argv[0]).name == "__main__.py" else Path(sys.argv[0]).name
    return " ".join([prog] + sys.argv[1:])


def machine_facts() -> dict:
    """What a reader needs to compare a wall time: CPU, cores, threads used, SIMD level, versions."""
    import natverk

    return {
        "date": _dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "natverk_threads": natverk.get_num_threads(),
        "simd": natverk._core.simd_level(),
        "natverk": natverk.__version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "command": _command_line(),
    }


def fmt(value, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "-"
    if isinstance(value, (float, np.floating)):
        return f"{value:.{digits}f}"
    return str(value)


def mean_std(values: Sequence[float], digits: int = 4, significant: bool = False) -> str:
    """``0.9412 ± 0.0031 (n=5)``; a single value is printed alone. ``significant`` prints
    ``digits`` significant digits instead of decimals (for lambdas spanning decades)."""
    v = np.asarray([x for x in values if x is not None], dtype=float)
    if v.size == 0:
        return "-"
    spec = f".{digits}g" if significant else f".{digits}f"
    if v.size == 1:
        return format(v[0], spec)
    return f"{format(v.mean(), spec)} ± {format(v.std(ddof=1), spec)} (n={v.size})"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(fmt(c) for c in row) + " |")
    return "\n".join(lines)


class Report:
    """Collects one experiment's tables, figures and facts, and writes them to ``out``.

    ``out/<name>.md`` holds the Markdown (also printed), ``out/<name>.csv`` the raw rows
    (one per trial), figures go beside them. Every write is atomic.
    """

    def __init__(self, name: str, title: str, out: str | os.PathLike, quick: bool, seeds: Sequence[int]):
        self.name, self.title, self.out = name, title, Path(out)
        self.quick, self.seeds = quick, list(seeds)
        self.sections: list[str] = []
        self.csv_rows: list[dict] = []
        self.figures: list[str] = []
        self.facts = machine_facts()

    def add(self, text: str) -> None:
        self.sections.append(text.strip("\n"))

    def add_table(self, header: Sequence[str], rows: Sequence[Sequence], caption: str = "") -> None:
        self.add((f"{caption}\n\n" if caption else "") + markdown_table(header, rows))

    def add_rows(self, rows: Sequence[dict]) -> None:
        self.csv_rows.extend(rows)

    def add_figure(self, fig, filename: str, caption: str) -> str:
        path = save_figure(fig, self.out / filename)
        self.figures.append(filename)
        self.add(f"![{caption}]({filename})\n\n*{caption}*")
        return path

    def markdown(self, wall_s: float) -> str:
        f = self.facts
        head = [
            f"# {self.title}",
            "",
            f"- mode: {'--quick (smoke test: small data, few epochs; NOT comparable to the thesis)' if self.quick else 'full'}",
            f"- seeds: {', '.join(map(str, self.seeds))}",
            f"- wall time: {wall_s:.1f} s",
            f"- machine: {f['cpu']}, {f['cores']} cores; natverk {f['natverk']} on {f['natverk_threads']} "
            f"thread(s), SIMD {f['simd']}; Python {f['python']}, NumPy {f['numpy']}",
            f"- date: {f['date']}",
            f"- command: `{f['command']}`" if f["command"] else "",
        ]
        return "\n".join(line for line in head if line != "") + "\n\n" + "\n\n".join(self.sections) + "\n"

    def write(self, wall_s: float, echo: bool = True) -> dict:
        """Write ``<name>.md`` and ``<name>.csv``; print the Markdown (``echo``); return the paths."""
        md = self.markdown(wall_s)
        md_path = self.out / f"{self.name}.md"
        atomic_write_text(md_path, md)
        paths = {"markdown": str(md_path), "figures": [str(self.out / p) for p in self.figures]}
        if self.csv_rows:
            keys: list[str] = []
            for row in self.csv_rows:
                keys.extend(k for k in row if k not in keys)
            buf = io.StringIO()
            writer = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
            writer.writeheader()
            for row in self.csv_rows:
                writer.writerow({k: row.get(k, "") for k in keys})
            csv_path = self.out / f"{self.name}.csv"
            atomic_write_text(csv_path, buf.getvalue())
            paths["csv"] = str(csv_path)
        if echo:
            print(md)
        return paths
