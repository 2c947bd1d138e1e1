"""Writing an experiment's results: a Markdown table beside the thesis' numbers, a CSV, and
the facts needed to trust them (code commit, build, machine, date, seeds, wall time, command),
with the seed statistics and verdicts the tables share (:func:`seed_stats`, :func:`verdict`)."""

from __future__ import annotations

import csv
import datetime as _dt
import io
import os
import platform
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ._provenance import PathScrubber, command_line, git_state, natverk_version


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and ``os.replace``: a reader sees the
    old file or the new one, never half of one. The file gets the mode any new file gets
    (0666 less the umask), like the PNGs beside it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        # mkstemp creates the file 0600 (private, because its name is guessable while it is
        # open); a report is meant to be read by others, so give it a normal file's mode.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _umask() -> int:
    """The process umask. Linux reports it in /proc (read-only); elsewhere it can only be read
    by setting it, so set it back at once (as natverk.models.save does)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


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


def machine_facts() -> dict:
    """What a reader needs to trace and compare a result: the code (git commit, dirty flag, code
    commit), natverk's version, SIMD level and threads, CPU, cores, Python, NumPy, date, command."""
    import natverk

    return {
        "date": _dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "natverk_threads": natverk.get_num_threads(),
        "simd": natverk._core.simd_level(),
        "natverk": natverk_version(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "command": command_line(),
        **git_state(),
    }


# The facts every CSV row carries (a row that already has one, e.g. a Table 4 cell reused from
# an earlier run, keeps its own): CSV column -> key of machine_facts().
PROVENANCE_COLUMNS = {
    "code": "code", "git_commit": "git_commit", "git_dirty": "git_dirty", "natverk_version": "natverk",
    "simd": "simd", "threads": "natverk_threads", "numpy": "numpy", "python": "python", "date": "date",
    "command": "command",
}


def provenance(facts: dict) -> dict:
    """``facts`` (from :func:`machine_facts`) as the CSV provenance columns."""
    return {column: facts[key] for column, key in PROVENANCE_COLUMNS.items()}


def seed_stats(values: Sequence[float]) -> dict:
    """``mean``, ``std`` and ``n`` of one cell's values over its seeds. The std is the sample
    standard deviation (``ddof=1``: the seeds are a sample of the seeds one could have run), NaN
    for a single seed (one seed says nothing about the spread)."""
    v = np.asarray([x for x in values if x is not None], dtype=float)
    if v.size == 0:
        return {"mean": float("nan"), "std": float("nan"), "n": 0}
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if v.size > 1 else float("nan"), "n": int(v.size)}


_ROUNDING = 1e-9  # accuracies have a few decimals: a mean within 1e-9 of the thesis equals it


def verdict(values: Sequence[float], thesis: float | None) -> str:
    """What the seeds support about ``mean(values)`` against the thesis' figure (higher is better):

    - ``above``: the mean is at or above the thesis (equal up to rounding, 1e-9, counts);
    - ``within 1 std``: below, by at most one sample std (ddof=1) of the seeds;
    - ``below (k std)``: below by ``k`` > 1 stds; ``below (one seed: no std)`` when a single
      seed ran, ``below (std 0)`` when every seed gave the same number.
    """
    s = seed_stats(values)
    if thesis is None or s["n"] == 0:
        return "-"
    if np.isnan(s["mean"]):
        return "undefined (NaN)"
    gap = float(thesis) - s["mean"]
    if gap <= _ROUNDING:
        return "above"
    if s["n"] == 1:
        return "below (one seed: no std)"
    if s["std"] == 0:
        return "below (std 0)"
    if gap <= s["std"] + _ROUNDING:
        return "within 1 std"
    return f"below ({gap / s['std']:.1f} std)"


def mean_pm_std(values: Sequence[float], digits: int = 4) -> str:
    """``0.9412 ± 0.0031`` (sample std, ddof=1), the mean alone for one seed, ``-`` for none."""
    s = seed_stats(values)
    if s["n"] == 0:
        return "-"
    if s["n"] == 1:
        return f"{s['mean']:.{digits}f}"
    return f"{s['mean']:.{digits}f} ± {s['std']:.{digits}f}"


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
    (one per trial, each with the provenance columns of :data:`PROVENANCE_COLUMNS`), figures go
    beside them. Every write is atomic. Machine paths in the text (the data root ``root``, the
    checkout, the current folder, the home folder) are written relative (:class:`PathScrubber`).
    """

    def __init__(self, name: str, title: str, out: str | os.PathLike, quick: bool, seeds: Sequence[int],
                 root=None):
        self.name, self.title, self.out = name, title, Path(out)
        self.quick, self.seeds = quick, list(seeds)
        self.sections: list[str] = []
        self.csv_rows: list[dict] = []
        self.figures: list[str] = []
        self.scrub = PathScrubber(root, out=self.out)
        self.facts = machine_facts()
        self.facts["command"] = self.scrub(self.facts["command"])

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

    def provenance(self) -> dict:
        """This run's provenance columns (what a CSV row gets unless it has its own)."""
        return provenance(self.facts)

    def markdown(self, wall_s: float) -> str:
        f = self.facts
        dirty = {True: " (uncommitted changes)", False: "", "unknown": ""}
        code = f["code"] if f["code"] == "unknown" else (
            f"{f['code']}" + (" (uncommitted code changes: the hash after +dirty identifies them)"
                              if f["code_dirty"] is True else ""))
        head = [
            f"# {self.title}",
            "",
            f"- mode: {'--quick (smoke test: small data, few epochs; NOT comparable to the thesis)' if self.quick else 'full'}",
            f"- seeds: {', '.join(map(str, self.seeds))}",
            f"- wall time: {wall_s:.1f} s",
            f"- git: commit {f['git_commit']}{dirty.get(f['git_dirty'], '')}; code (last commit touching cpp/, "
            f"python/, pyproject.toml): {code}",
            f"- natverk {f['natverk']}, SIMD {f['simd']}, {f['natverk_threads']} thread(s); NumPy {f['numpy']}, "
            f"Python {f['python']}; machine: {f['cpu']}, {f['cores']} cores",
            f"- date: {f['date']}",
            f"- command: `{f['command']}`" if f["command"] else "",
        ]
        body = "\n\n".join(self.sections)
        return self.scrub("\n".join(line for line in head if line != "") + "\n\n" + body + "\n")

    def write(self, wall_s: float, echo: bool = True) -> dict:
        """Write ``<name>.md`` and ``<name>.csv``; print the Markdown (``echo``); return the paths."""
        md = self.markdown(wall_s)
        md_path = self.out / f"{self.name}.md"
        atomic_write_text(md_path, md)
        paths = {"markdown": str(md_path), "figures": [str(self.out / p) for p in self.figures]}
        if self.csv_rows:
            run = self.provenance()
            rows = [{**row, **{k: v for k, v in run.items() if k not in row}} for row in self.csv_rows]
            keys: list[str] = []
            for row in rows:
                keys.extend(k for k in row if k not in keys)
            buf = io.StringIO()
            writer = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
            writer.writeheader()
            for row in rows:
                writer.writerow({k: row.get(k, "") for k in keys})
            csv_path = self.out / f"{self.name}.csv"
            atomic_write_text(csv_path, self.scrub(buf.getvalue()))
            paths["csv"] = str(csv_path)
        if echo:
            print(md)
        return paths
