"""Issue 14, item 7: report files agree with their tables and are written like any other file.

- Every number a ``reproduce table2/table3`` figure panel shows is the number of one CSV row, and
  the network drawn is the one that row scored (no panel trained on its own, no number that is in
  neither the table nor the CSV).
- ``.md`` and ``.csv`` reports get the umask's mode (0644 under the usual 022), as the PNGs do.
- The main job writes into an output folder (``--out``, default ``results/``), not the cwd.
"""

from __future__ import annotations

import csv
import os
import re
import stat
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

import natverk.experiments.toy as toy
from natverk.experiments import reproduce
from natverk.experiments._report import atomic_write_text

REPO = Path(__file__).resolve().parents[1]


@contextmanager
def _umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("name, figure", [("table2", "figure4.png"), ("table3", "figure5.png")])
def test_figure_panels_are_the_table_rows(tmp_path, monkeypatch, name, figure):
    titles = []
    drawn = toy.decision_boundary

    def recording(*args, title=None, **kwargs):
        titles.append(title)
        return drawn(*args, title=title, **kwargs)

    monkeypatch.setattr(toy, "decision_boundary", recording)
    reproduce(name, out=tmp_path, quick=True, seeds=[2, 3])
    assert (tmp_path / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = _read_csv(tmp_path / f"{name}.csv")
    # the figure draws the first seed's networks: one panel per method, plus the thesis' large
    # lambda on table2, each titled with the accuracies of exactly one CSV row of that seed
    first = [r for r in rows if r["seed"] == "2" and (not r["method"].endswith("-trial")
                                                         or r["method"] == "figure-trial")]
    expected = 5 if name == "table2" else 4
    assert len(titles) == len(first) == expected
    for title in titles:
        lam, train, test = re.search(r"lambda = (\S+)\ntrain (\S+), test (\S+)", title).groups()
        matches = [r for r in first if f"{float(r['lambda']):.3g}" == lam
                   and f"{float(r['train_accuracy']):.3f}" == train and f"{float(r['test_accuracy']):.3f}" == test]
        assert matches, f"panel {title!r} is not a CSV row of seed 2"
    if name == "table2":
        assert any("lambda = 0.551" in t for t in titles)
        assert [r for r in rows if r["method"] == "figure-trial" and float(r["lambda"]) == 0.551]
    # the report's panel table repeats those rows; the chosen rows name the network they scored
    md = (tmp_path / f"{name}.md").read_text(encoding="utf-8")
    assert "panels, left to right" in md
    for r in first:
        assert r["trial_seed"] != ""
        assert f"| {float(r['train_accuracy']):.4f} | {float(r['val_accuracy']):.4f} | " \
               f"{float(r['test_accuracy']):.4f} |" in md


def test_a_panel_that_is_not_its_rows_network_is_refused():
    setup = toy.quick_setup(toy.LINEAR_FULL)
    result = toy.run_methods(setup, 0, jobs=1)
    # another network than the one the logspace row scored: the figure must refuse to draw it
    chosen = result["rows"]["logspace"]
    result["rows"]["logspace"] = {**chosen, "trial_seed": chosen["trial_seed"] + 1}
    with pytest.raises(RuntimeError, match="logspace search: the figure's network scores"):
        toy.figure_panels(result)


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_reports_get_the_umask_mode(tmp_path, mask, mode):
    with _umask(mask):
        atomic_write_text(tmp_path / "r.md", "# report\n")
    assert _mode(tmp_path / "r.md") == mode
    assert (tmp_path / "r.md").read_text() == "# report\n"
    assert [p.name for p in tmp_path.iterdir()] == ["r.md"]  # no temporary file left


def test_reproduce_writes_md_csv_and_png_with_normal_permissions(tmp_path):
    with _umask(0o022):
        result = reproduce("table3", out=tmp_path, quick=True, seeds=[0])
    written = [Path(result["paths"]["markdown"]), Path(result["paths"]["csv"]),
               *map(Path, result["paths"]["figures"])]
    assert {p.suffix for p in written} == {".md", ".csv", ".png"}
    assert {p.name: _mode(p) for p in written} == {p.name: 0o644 for p in written}


def test_main_job_writes_into_its_out_folder(tmp_path):
    env = {**os.environ, "MPLBACKEND": "Agg"}
    proc = subprocess.run([sys.executable, "-m", "natverk", "spiral", "--epochs", "2", "--nodes", "2,8,4", "--quiet",
                           "--out", "runs/a"], cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    png = tmp_path / "runs" / "a" / "spiral_decision_boundary.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "decision boundary written to runs/a/spiral_decision_boundary.png" in proc.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]  # nothing loose in the cwd


def test_main_job_default_folder_is_results_and_git_ignored(tmp_path):
    env = {**os.environ, "MPLBACKEND": "Agg"}
    proc = subprocess.run([sys.executable, "-m", "natverk", "spiral", "--epochs", "2", "--quiet"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "results" / "spiral_decision_boundary.png").stat().st_size > 1000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results"]
    ignored = (REPO / ".gitignore").read_text().split()
    assert "/results/" in ignored and "spiral_decision_boundary.png" in ignored
    # the CI script checks the same path the README's first command writes
    assert "test -s results/spiral_decision_boundary.png" in (REPO / ".ci" / "run").read_text()
