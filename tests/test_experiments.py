"""Every ``python -m natverk reproduce`` command in --quick mode: it runs, writes its Markdown
(with the thesis' numbers beside ours), CSV and figures, and its numbers are sane."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from natverk.experiments import names, reproduce

DATA = os.environ.get("NATVERK_DATA")


def _read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_unknown_experiment_and_bad_options_raise(tmp_path):
    with pytest.raises(ValueError, match="unknown experiment"):
        reproduce("table99", out=tmp_path)
    with pytest.raises(ValueError, match="jobs"):
        reproduce("figure6-7", out=tmp_path, jobs=0)
    with pytest.raises(ValueError, match="epochs"):
        reproduce("figure6-7", out=tmp_path, epochs=0)
    with pytest.raises(ValueError, match="seed"):
        reproduce("figure6-7", out=tmp_path, seeds=())


def test_figure6_7_plots_the_activations_and_their_derivatives(tmp_path):
    result = reproduce("figure7", out=tmp_path, quick=True)
    assert result["name"] == "figure6-7"
    for png in ("figure6_sigmoid.png", "figure7_relu.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (tmp_path / "figure6-7.md").read_text()
    assert "| sigmoid | 0.0067 | 0.9933 | 0.2500 |" in md
    assert "| relu | 0.0000 | 5.0000 | 1.0000 |" in md


@pytest.mark.parametrize("name, thesis_test", [("table2", "0.949"), ("table3", "0.942")])
def test_toy_tables_quick(tmp_path, name, thesis_test):
    result = reproduce(name, out=tmp_path, quick=True, seeds=[3])
    md = (tmp_path / f"{name}.md").read_text()
    assert "--quick" in md and "seeds: 3" in md and "wall time" in md
    assert thesis_test in md  # the thesis' logspace test accuracy, beside ours
    for method in ("no regularisation", "logspace search", "balance principle", "linear search"):
        assert method in md
    figure = {"table2": "figure4.png", "table3": "figure5.png"}[name]
    assert (tmp_path / figure).stat().st_size > 1000
    rows = _read_csv(tmp_path / f"{name}.csv")
    chosen = {r["method"]: r for r in rows if not r["method"].endswith("-trial")}
    assert set(chosen) == {"none", "logspace", "balance", "linear"}
    assert float(chosen["none"]["lambda"]) == 0.0
    for r in chosen.values():
        assert 0.0 <= float(r["test_accuracy"]) <= 1.0
        assert float(r["lambda"]) >= 0.0
    # the chosen logspace lambda is one of the logspace trials, the best by validation accuracy
    trials = [r for r in rows if r["method"] == "logspace-trial"]
    assert len(trials) == 3
    best = max(float(r["val_accuracy"]) for r in trials)
    assert float(chosen["logspace"]["val_accuracy"]) == best
    assert result["rows"]


def test_toy_tables_are_reproducible(tmp_path):
    a = reproduce("table2", out=tmp_path / "a", quick=True, seeds=[1])
    b = reproduce("table2", out=tmp_path / "b", quick=True, seeds=[1])
    strip = lambda rows: [{k: v for k, v in r.items() if k != "time_s"} for r in rows]  # noqa: E731
    assert strip(a["rows"]) == strip(b["rows"])


@pytest.mark.data
def test_table4_quick_on_real_data(tmp_path):
    if not DATA or not (Path(DATA) / "mnist").is_dir():
        pytest.skip("NATVERK_DATA does not hold mnist/ (CI sets it to ../shared/data)")
    reproduce("table4", out=tmp_path, quick=True)
    md = (tmp_path / "table4.md").read_text()
    assert "| MNIST | FC |" in md and "| MNIST | CNN |" in md
    assert "0.9826" in md  # the thesis' FC L2 cell beside ours
    rows = _read_csv(tmp_path / "table4.csv")
    mnist = [r for r in rows if r["dataset"] == "mnist"]
    assert len(mnist) == 6
    # even one quick epoch on 2000 images learns digits far above chance
    assert min(float(r["test_accuracy"]) for r in mnist) > 0.5


def test_table4_without_data_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("NATVERK_DATA", str(tmp_path / "nothing-here"))
    reproduce("table4", out=tmp_path, quick=True)
    md = (tmp_path / "table4.md").read_text()
    # where it looked, relative to the data root: no absolute path of this machine
    assert "not run" in md and "<data root>/mnist/" in md and "NATVERK_DATA" in md
    assert str(tmp_path) not in md


def test_table5_6_runs_on_an_isic_format_folder(tmp_path):
    pil = pytest.importorskip("PIL.Image", reason="Pillow reads the ISIC images")
    root = tmp_path / "data" / "isic"
    (root / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    lines = ["image,label"]
    for i in range(80):
        label = int(i % 4 == 0)  # 1 in 4 malignant: imbalanced, as ISIC
        img = rng.integers(0, 60, size=(40, 40, 3), dtype=np.uint8)
        if label:
            img[10:30, 10:30] += 150  # a bright lesion the networks can find
        pil.fromarray(img).save(root / "images" / f"ISIC_{i:07d}.png")
        lines.append(f"ISIC_{i:07d},{label}")
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    reproduce("table5-6", out=tmp_path / "out", quick=True, data_root=str(tmp_path / "data"))
    md = (tmp_path / "out" / "table5-6.md").read_text()
    assert "0.394 / 0.620 / 0.898 / 0.482" in md
    rows = _read_csv(tmp_path / "out" / "table5-6.csv")
    assert {r["network"] for r in rows} == {"FC dropout", "CNN dropout"}
    for r in rows:
        for k in ("precision", "recall", "specificity", "f1"):
            assert 0.0 <= float(r[k]) <= 1.0


def test_cli_reproduce_quick(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "natverk", "reproduce", "figure6-7", "--quick", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert "figure6-7" in out.stdout and (tmp_path / "figure6-7.md").exists()


def test_every_name_is_known():
    assert {"table2", "table3", "table4", "table5-6", "figure6-7", "figure4", "figure5"} <= set(names())


def _tiny_image_data(seed=0):
    """Six arrays shaped like load_dataset's, small enough for a test: 1x16x16, ten classes."""
    rng = np.random.default_rng(seed)
    arrays = []
    for n in (60, 20, 20):
        y = np.arange(n) % 10
        X = rng.standard_normal((n, 1, 16, 16)).astype(np.float32) * 0.1
        X[np.arange(n), 0, y, y] += 3.0  # a class-coded bright pixel: learnable
        arrays += [X, y.astype(np.int64)]
    return tuple(arrays), None


def test_table4_reuses_finished_cells_of_the_same_recipe(tmp_path, monkeypatch):
    from natverk.experiments import _report, images

    monkeypatch.setattr(images, "load_dataset", lambda *a, **k: _tiny_image_data())
    # one code identity for every run (a pip-installed natverk has none: it would never reuse)
    monkeypatch.setattr(_report, "git_state", lambda: {"git_commit": "c0de", "git_dirty": False, "code_commit": "c0de",
                                                       "code_dirty": False, "code": "c0de"})
    first = images.table4(tmp_path, quick=True, datasets=("mnist",))
    assert len(first["rows"]) == 6
    trained = []
    real_train_cell = images.train_cell
    monkeypatch.setattr(images, "train_cell", lambda *a, **k: trained.append(a[2:4]) or real_train_cell(*a, **k))

    again = images.table4(tmp_path, quick=True, datasets=("mnist",))
    assert trained == []  # every cell came from table4.csv
    key = lambda rows: [(r["network"], r["variant"], r["test_accuracy"]) for r in rows]  # noqa: E731
    assert key(again["rows"]) == key(first["rows"])
    assert "Cells reused" in (tmp_path / "table4.md").read_text()

    images.table4(tmp_path, quick=True, datasets=("mnist",), epochs=3)  # another recipe: retrained
    assert len(trained) == 6
    images.table4(tmp_path, quick=True, datasets=("mnist",), epochs=3, resume=False)
    assert len(trained) == 12
    rows = _read_csv(tmp_path / "table4.csv")
    assert {r["epochs"] for r in rows} == {"3"} and {r["quick"] for r in rows} == {"True"}


def test_table4_ignores_an_unreadable_earlier_csv(tmp_path, monkeypatch, capsys):
    from natverk.experiments import images

    monkeypatch.setattr(images, "load_dataset", lambda *a, **k: _tiny_image_data())
    (tmp_path / "table4.csv").write_text("dataset,network,variant,seed,epochs\nmnist,FC,none,zero,1\n")
    result = images.table4(tmp_path, quick=True, datasets=("mnist",), networks=("FC",))
    assert len(result["rows"]) == 3 and "not reusing" in capsys.readouterr().out


def test_cnn_network_depth_keeps_the_one_conv_seeds():
    from natverk.experiments.images import cnn_network
    from natverk.layers import Conv2D

    shallow = cnn_network(1, 16, 10, 0.0, seed=7)
    deep = cnn_network(1, 16, 10, 0.4, seed=7, convs_per_block=2)
    convs = lambda m: [layer for layer in m.layers if isinstance(layer, Conv2D)]  # noqa: E731
    assert [c.out_channels for c in convs(shallow)] == [32, 64, 128]
    assert [c.out_channels for c in convs(deep)] == [32, 32, 64, 64, 128, 128]
    assert [c.seed for c in convs(shallow)] == [7, 8, 9]
    assert deep.forward(np.zeros((2, 1, 16, 16), np.float32)).shape == (2, 10)
