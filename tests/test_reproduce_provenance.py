"""Issue 16, Table 4 honestly: recipes and epochs chosen on validation alone (the test set never
decides), seeds aggregated as mean ± sample std with a verdict against the thesis, finished cells
reused only from the same code, and every report traceable to its commit without machine paths.

Everything runs on tiny synthetic data (seconds); the real cells take minutes to hours each."""

from __future__ import annotations

import csv
import math
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import natverk
from natverk.experiments import _provenance, _report, images, recipe_search, reproduce, toy
from natverk.experiments._report import Report, seed_stats, verdict

REPO = Path(__file__).resolve().parents[1]


def _read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _tiny_image_data(seed=0):
    """Six arrays shaped like load_dataset's: 1x16x16, ten classes, a learnable class pixel."""
    rng = np.random.default_rng(seed)
    arrays = []
    for n in (60, 20, 20):
        y = np.arange(n) % 10
        X = rng.standard_normal((n, 1, 16, 16)).astype(np.float32) * 0.1
        X[np.arange(n), 0, y, y] += 3.0
        arrays += [X, y.astype(np.int64)]
    return tuple(arrays)


def _code(monkeypatch, code):
    """Pretend the running code is ``code`` (``"unknown"``: no checkout)."""
    state = {"git_commit": code, "git_dirty": False if code != "unknown" else "unknown", "code_commit": code,
             "code_dirty": False if code != "unknown" else "unknown", "code": code}
    monkeypatch.setattr(_report, "git_state", lambda: dict(state))


@pytest.fixture
def tiny(monkeypatch):
    monkeypatch.setattr(images, "load_dataset", lambda *a, **k: (_tiny_image_data(), None))
    trained = []
    real = images.train_cell
    monkeypatch.setattr(images, "train_cell", lambda *a, **k: trained.append((a[1], a[2], a[3], a[5])) or real(*a, **k))
    return trained


# ------------------------------------------------------------------ selection on validation only


class Poison:
    """A test-set number that raises whenever it is used (compared, added, converted, printed)."""

    def _fail(self, *_a, **_k):
        raise AssertionError("a selection code path read a test accuracy")

    __float__ = __int__ = __index__ = __bool__ = __format__ = __str__ = __round__ = _fail
    __lt__ = __le__ = __gt__ = __ge__ = __add__ = __radd__ = __sub__ = __rsub__ = _fail
    __mul__ = __rmul__ = __truediv__ = __rtruediv__ = __neg__ = __abs__ = __array__ = _fail


def _poisoned(runs):
    return [{k: (Poison() if k in recipe_search.TEST_KEYS else v) for k, v in run.items()} for run in runs]


def _run(tag, variant, seed, val, test, net="CNN", epochs=10, lr=1e-3):
    return {"tag": tag, "net": net, "variant": variant, "seed": seed, "epochs": epochs, "lr": lr, "batch": 64,
            "convs": 1, "wd": 5e-4 if variant == "L2" else 0.0, "dropout": 0.4 if variant == "dropout" else 0.0,
            "val": val, "test": test, "last_test": test, "max_test": test}


def test_recipe_choice_never_reads_a_test_accuracy():
    runs = recipe_search.load_runs(REPO / recipe_search.RECORD)
    assert all("test" in r for r in runs)  # the committed record does hold test accuracies...
    poisoned = _poisoned(runs)
    with pytest.raises(AssertionError, match="read a test"):
        float(poisoned[0]["test"])  # ...and the poison works
    ranked = recipe_search.rank(poisoned)  # ...which ranking and choosing never touch
    chosen = recipe_search.choose(poisoned)
    assert {net: e["tag"] for net, e in chosen.items()} == {"CNN": "D15", "FC": "F40"}
    assert [e["tag"] for e in ranked] == [e["tag"] for e in recipe_search.rank(runs)]
    recipe_search.ranking_markdown(poisoned)  # the printed ranking shows validation only


def test_recipe_choice_rule_mean_over_columns_eligible_only_ties_to_fewer_epochs():
    runs = []
    for v, val in zip(recipe_search.VARIANTS, (0.90, 0.91, 0.92)):  # B: mean 0.91, best on test everywhere
        runs += [_run("B", v, s, val, test=0.99) for s in (0, 1)]
    for v, val in zip(recipe_search.VARIANTS, (0.95, 0.90, 0.90)):  # C: best column, mean 0.9167
        runs.append(_run("C", v, 0, val, test=0.10))
    runs += [_run("P", v, 0, 0.99, test=0.99) for v in ("L2", "dropout")]  # partial: not eligible
    ranked = recipe_search.rank(runs)
    assert [(e["tag"], e["rank"]) for e in ranked] == [("C", 1), ("B", 2), ("P", None)]
    assert ranked[0]["score"] == pytest.approx((0.95 + 0.90 + 0.90) / 3)
    # each column weighs the same whatever its number of seeds: B's none column has two seeds
    runs.append(_run("B", "none", 2, 1.0, test=0.0))
    b = next(e for e in recipe_search.rank(runs) if e["tag"] == "B")
    assert b["val"]["none"] == pytest.approx((0.90 + 0.90 + 1.0) / 3) and b["seeds"]["none"] == [0, 1, 2]
    # an equal score goes to fewer epochs, then to the tag's name
    tie = [_run("long", v, 0, 0.9, test=0.9, epochs=20) for v in recipe_search.VARIANTS]
    tie += [_run("short", v, 0, 0.9, test=0.1, epochs=5) for v in recipe_search.VARIANTS]
    assert recipe_search.choose(tie)["CNN"]["tag"] == "short"
    # the test accuracies can say anything: the pick follows validation
    flipped = [{**r, "test": 1.0 - r["test"]} for r in runs]
    assert recipe_search.choose(flipped)["CNN"]["tag"] == recipe_search.choose(runs)["CNN"]["tag"]


def test_a_recipe_mixing_setups_is_an_error():
    runs = [_run("X", v, 0, 0.9, 0.9) for v in recipe_search.VARIANTS]
    runs[1]["epochs"] = 99
    with pytest.raises(ValueError, match="mixes setups"):
        recipe_search.rank(runs)


def test_table4_fashion_recipes_are_the_validation_pick_of_the_committed_record():
    chosen = recipe_search.choose(recipe_search.load_runs(REPO / recipe_search.RECORD))
    for net in ("FC", "CNN"):
        assert recipe_search.recipe_fields(chosen[net]) == images.FULL_RECIPES["fashion-mnist"][net].fields()
    # the twins' fixed settings are natverk's networks and augmentation
    cnn, fc = chosen["CNN"]["setup"], chosen["FC"]["setup"]
    assert (cnn["widths"], cnn["head"], cnn["flip"], cnn["pad"]) == ([32, 64, 128], 128, True, 2)
    assert cnn["drop_where"] == "head"
    assert (fc["flip"], fc["pad"], fc["in_drop"]) == (False, 0, None)


def test_search_script_ranks_the_record_without_pytorch():
    script = str(REPO / "benchmarks" / "thesis_recipe_search.py")
    code = ("import runpy, sys; sys.modules['torch'] = None; "  # 'import torch' raises ImportError
            f"sys.argv = ['thesis_recipe_search.py', '--rank']; runpy.run_path({script!r}, run_name='__main__')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "| CNN | 1 | **D15** |" in out.stdout and "| FC | 1 | **F40** |" in out.stdout
    assert "Pick (highest validation score" in out.stdout and "not used to choose" in out.stdout


def test_table4_cell_chooses_its_epoch_on_validation_and_reads_test_labels_once(monkeypatch):
    data = _tiny_image_data()
    recipe = images.QUICK_RECIPES["FC"]
    calls = []
    real_evaluate = natverk.models.Sequential.evaluate

    def evaluate(self, X, y, *a, **k):
        calls.append((X is data[4], y is data[5]))
        return real_evaluate(self, X, y, *a, **k)

    monkeypatch.setattr(natverk.models.Sequential, "evaluate", evaluate)
    a = images.train_cell(data, "mnist", "FC", "none", replace(recipe, epochs=3), seed=0)
    # validation is evaluated every epoch (to choose it); the test set once, after training
    assert calls[-1] == (True, True) and calls.count((True, True)) == 1 and set(calls[:-1]) == {(False, False)}
    scrambled = (*data[:5], (data[5] + 3) % 10)
    b = images.train_cell(scrambled, "mnist", "FC", "none", replace(recipe, epochs=3), seed=0)
    same = ("best_epoch", "train_accuracy", "val_accuracy")
    assert {k: a[k] for k in same} == {k: b[k] for k in same}


def test_lambda_searches_choose_the_same_lambda_whatever_the_test_labels(monkeypatch):
    setup = replace(toy.LINEAR_FULL, points=60, epochs=15, n_logspace=3, linear_step=0.5)
    real = toy.make_data
    a = toy.run_methods(setup, seed=1, jobs=1)
    monkeypatch.setattr(toy, "make_data", lambda s, seed: (*real(s, seed)[:5], 1 - real(s, seed)[5]))
    b = toy.run_methods(setup, seed=1, jobs=1)
    for method in ("none", "logspace", "linear", "balance"):
        assert a["rows"][method]["lambda"] == b["rows"][method]["lambda"]
        assert a["rows"][method]["val_accuracy"] == b["rows"][method]["val_accuracy"]
    assert a["rows"]["none"]["test_accuracy"] != b["rows"]["none"]["test_accuracy"]


# ------------------------------------------------------------------ seeds: mean, std, verdict


def test_seed_stats_are_mean_and_sample_std():
    s = seed_stats([0.93, 0.94, 0.96])
    assert s["n"] == 3 and s["mean"] == pytest.approx((0.93 + 0.94 + 0.96) / 3)
    assert s["std"] == pytest.approx(np.std([0.93, 0.94, 0.96], ddof=1))  # ddof=1, not the population std
    one = seed_stats([0.5])
    assert one["n"] == 1 and one["mean"] == 0.5 and math.isnan(one["std"])
    assert seed_stats([])["n"] == 0


@pytest.mark.parametrize("values, thesis, expected", [
    ([0.94, 0.95, 0.96], 0.95, "above"),  # mean equal to the thesis meets it
    ([0.95, 0.96], 0.95, "above"),
    ([0.94, 0.95, 0.96], 0.955, "within 1 std"),  # 0.005 below, std 0.01
    ([0.94, 0.95, 0.96], 0.96, "within 1 std"),  # exactly one std below
    ([0.94, 0.95, 0.96], 0.975, "below (2.5 std)"),
    ([0.90], 0.95, "below (one seed: no std)"),
    ([0.97], 0.95, "above"),
    ([0.9, 0.9, 0.9], 0.95, "below (std 0)"),
    ([float("nan"), 0.5], 0.4, "undefined (NaN)"),
    ([], 0.9, "-"),
])
def test_verdict_says_only_what_the_seeds_support(values, thesis, expected):
    assert verdict(values, thesis) == expected


def test_table4_shows_mean_std_thesis_and_verdict_per_cell(tmp_path, tiny, monkeypatch):
    _code(monkeypatch, "c0de")
    result = images.table4(tmp_path, quick=True, seeds=(0, 1, 2), datasets=("mnist",), networks=("FC",))
    assert len(result["rows"]) == 9 and len(tiny) == 9
    md = (tmp_path / "table4.md").read_text()
    rows = [line for line in md.splitlines() if line.startswith("| MNIST | FC |")]
    assert len(rows) == 3
    for line, variant, thesis in zip(rows, images.VARIANTS, images.THESIS_TABLE4["mnist"]["FC"]):
        cells = [c.strip() for c in line.strip("|").split("|")]
        accs = [r["test_accuracy"] for r in result["rows"] if r["variant"] == variant]
        assert cells[2] == variant and cells[4] == "3" and cells[5] == f"{thesis:.4f}"
        assert cells[3] == f"{np.mean(accs):.4f} ± {np.std(accs, ddof=1):.4f}"
        assert cells[6] == verdict(accs, thesis)
        assert cells[7] == ", ".join(f"{a:.4f}" for a in accs)
    assert "ddof=1" in md


def test_table5_6_shows_mean_std_and_verdict(tmp_path):
    pil = pytest.importorskip("PIL.Image", reason="Pillow reads the ISIC images")
    root = tmp_path / "data" / "isic"
    (root / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    lines = ["image,label"]
    for i in range(48):
        label = int(i % 4 == 0)
        img = rng.integers(0, 60, size=(32, 32, 3), dtype=np.uint8)
        if label:
            img[8:24, 8:24] += 150
        pil.fromarray(img).save(root / "images" / f"ISIC_{i:07d}.png")
        lines.append(f"ISIC_{i:07d},{label}")
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    reproduce("table5-6", out=tmp_path / "out", quick=True, seeds=[0, 1], data_root=str(tmp_path / "data"))
    md = (tmp_path / "out" / "table5-6.md").read_text()
    assert "| FC dropout | F1 |" in md and "| CNN dropout | recall (sensitivity) |" in md
    assert " ± " in md and "verdict" in md and "0.394 / 0.620 / 0.898 / 0.482" in md
    assert str(tmp_path) not in md
    rows = _read_csv(tmp_path / "out" / "table5-6.csv")
    assert sorted((r["network"], r["seed"]) for r in rows) == sorted(
        (n, s) for n in ("FC dropout", "CNN dropout") for s in ("0", "1"))


# ------------------------------------------------------------------ which cells run, and reuse


def test_a_cell_of_other_code_is_not_reused_unless_reuse_any(tmp_path, tiny, monkeypatch, capsys):
    _code(monkeypatch, "aaaa")
    images.table4(tmp_path, quick=True, datasets=("mnist",), networks=("FC",))
    assert len(tiny) == 3
    images.table4(tmp_path, quick=True, datasets=("mnist",), networks=("FC",))
    assert len(tiny) == 3  # same recipe, seed and code: reused

    _code(monkeypatch, "bbbb")  # a new commit touching the code
    images.table4(tmp_path, quick=True, datasets=("mnist",), networks=("FC",))
    assert len(tiny) == 6  # retrained
    assert "not reusing cells of other code" in capsys.readouterr().out
    md = (tmp_path / "table4.md").read_text()
    assert "other code, not reused" in md
    assert {r["code"] for r in _read_csv(tmp_path / "table4.csv")} == {"bbbb"}
    assert {r["code"] for r in _read_csv(tmp_path / "table4.unused.csv")} == {"aaaa"}  # nothing lost

    _code(monkeypatch, "cccc")
    result = images.table4(tmp_path, quick=True, datasets=("mnist",), networks=("FC",), reuse_any=True)
    assert len(tiny) == 6 and result["trained"] == [] and len(result["reused"]) == 3
    md = (tmp_path / "table4.md").read_text()
    assert "**From other code** (reused with --reuse-any)" in md and "code bbbb" in md
    rows = _read_csv(tmp_path / "table4.csv")
    assert {r["code"] for r in rows} == {"bbbb"}  # a reused cell keeps its own provenance
    assert {r["code"] for r in _read_csv(tmp_path / "table4.unused.csv")} == {"aaaa"}

    (tmp_path / "table4.csv").unlink()  # the cells set aside in table4.unused.csv are still found
    result = images.table4(tmp_path, quick=True, datasets=("mnist",), networks=("FC",), reuse_any=True)
    assert len(tiny) == 6 and len(result["reused"]) == 3
    assert {r["code"] for r in _read_csv(tmp_path / "table4.csv")} == {"aaaa"}
    assert not (tmp_path / "table4.unused.csv").exists()  # every finished cell is in the table again


def test_unknown_code_is_never_reused_without_reuse_any(tmp_path, tiny, monkeypatch):
    _code(monkeypatch, "unknown")  # e.g. pip install .: no checkout to name the code
    images.table4(tmp_path, quick=True, datasets=("mnist",), networks=("FC",))
    images.table4(tmp_path, quick=True, datasets=("mnist",), networks=("FC",))
    assert len(tiny) == 6
    images.table4(tmp_path, quick=True, datasets=("mnist",), networks=("FC",), reuse_any=True)
    assert len(tiny) == 6


def test_an_older_csv_without_code_is_of_unknown_code(tmp_path, tiny, monkeypatch):
    _code(monkeypatch, "aaaa")
    images.table4(tmp_path, quick=True, datasets=("mnist",), networks=("FC",))
    rows = _read_csv(tmp_path / "table4.csv")
    keep = [k for k in rows[0] if k not in _report.PROVENANCE_COLUMNS]  # the columns before issue 16
    with open(tmp_path / "table4.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=keep, lineterminator="\n")
        w.writeheader()
        w.writerows({k: r[k] for k in keep} for r in rows)
    images.table4(tmp_path, quick=True, datasets=("mnist",), networks=("FC",))
    assert len(tiny) == 6
    images.table4(tmp_path / "x", quick=True, datasets=("mnist",), networks=("FC",))  # fresh folder
    assert len(tiny) == 9


def test_same_code_needs_two_equal_known_identities():
    assert _provenance.same_code("abc", "abc")
    assert not _provenance.same_code("abc", "abd")
    assert not _provenance.same_code("unknown", "unknown")
    assert not _provenance.same_code(None, "abc") and not _provenance.same_code("", "")


def test_dataset_and_network_choose_the_cells_and_keep_the_others(tmp_path, tiny, monkeypatch):
    _code(monkeypatch, "c0de")
    images.table4(tmp_path, quick=True, datasets=("mnist",), networks=("FC",))
    assert [(d, n) for d, n, _, _ in tiny] == [("mnist", "FC")] * 3
    result = images.table4(tmp_path, quick=True, datasets=("mnist",), networks=("CNN",), seeds=(0, 1))
    assert [(d, n, s) for d, n, _, s in tiny[3:]] == [("mnist", "CNN", s) for _ in range(3) for s in (0, 1)]
    assert len(result["kept"]) == 3  # the FC cells stay in the table, not retrained
    md = (tmp_path / "table4.md").read_text()
    assert "| MNIST | FC | none |" in md and "| MNIST | CNN | none |" in md and "Kept from an earlier run" in md
    assert len(_read_csv(tmp_path / "table4.csv")) == 9
    images.table4(tmp_path, quick=True, datasets=("mnist",), networks=("FC",), resume=False)  # --fresh
    assert len(tiny) == 12
    with pytest.raises(ValueError, match="dataset"):
        images.table4(tmp_path, quick=True, datasets=("svhn",))
    with pytest.raises(ValueError, match="network"):
        images.table4(tmp_path, quick=True, networks=())
    with pytest.raises(ValueError, match="table4"):
        reproduce("figure6-7", out=tmp_path, datasets=["mnist"])


def test_cli_takes_repeated_seeds_datasets_networks_and_reuse_any():
    from natverk.__main__ import build_parser

    args = build_parser().parse_args(["reproduce", "table4", "--seed", "0", "--seed", "1", "--seed", "2",
                                      "--dataset", "mnist", "--dataset", "fashion-mnist", "--network", "CNN",
                                      "--reuse-any"])
    assert args.seeds == [0, 1, 2] and args.datasets == ["mnist", "fashion-mnist"] and args.networks == ["CNN"]
    assert args.reuse_any and not args.fresh
    with pytest.raises(SystemExit):
        build_parser().parse_args(["reproduce", "table4", "--dataset", "svhn"])


# ------------------------------------------------------------------ provenance


def test_git_state_names_the_last_commit_touching_the_code():
    state = _provenance.git_state()
    top = _provenance.source_checkout()
    if top is None:  # pip-installed: nothing to name
        assert set(state.values()) == {"unknown"}
        return
    expected = subprocess.run(["git", "-C", str(top), "log", "-1", "--format=%H", "--", "cpp", "python",
                               "pyproject.toml"], capture_output=True, text=True, check=True).stdout.strip()
    assert state["code_commit"] == expected and state["code"].startswith(expected)
    assert state["code"] == expected if not state["code_dirty"] else "+dirty." in state["code"]
    assert len(state["git_commit"]) == 40 and isinstance(state["git_dirty"], bool)


def test_no_checkout_means_unknown_code(monkeypatch):
    monkeypatch.setattr(_provenance, "source_checkout", lambda: None)
    assert set(_provenance.git_state().values()) == {"unknown"}


def test_the_version_is_never_empty(monkeypatch):
    monkeypatch.setattr(natverk, "__version__", "")
    version = _provenance.natverk_version()
    assert version and version.strip()
    md = Report("x", "X", ".", quick=True, seeds=[0]).markdown(1.0)
    assert f"natverk {version}," in md and "natverk  " not in md


def test_every_report_and_csv_carries_provenance_without_machine_paths(tmp_path, monkeypatch):
    data = tmp_path / "somewhere" / "data"
    monkeypatch.setattr(sys, "argv", ["/x/python/natverk/__main__.py", "reproduce", "table4", "--data-root",
                                      str(data), "--out", str(Path.cwd() / "results")])
    report = Report("demo", "Demo", tmp_path / "out", quick=False, seeds=[0, 1], root=data)
    report.add(f"looked in {data / 'mnist' / 'train.gz'}; wrote {tmp_path / 'out' / 'demo.md'}")
    report.add_rows([{"cell": "a", "seconds": 1.5}, {"cell": "b", "seconds": 2.5, "code": "its own"}])
    paths = report.write(12.0, echo=False)
    md = Path(paths["markdown"]).read_text()
    facts = report.facts
    for text in (f"commit {facts['git_commit']}", str(facts["code"]), f"natverk {facts['natverk']}",
                 f"SIMD {facts['simd']}", f"{facts['natverk_threads']} thread(s)", f"NumPy {np.__version__}",
                 "date: ", "wall time: 12.0 s",
                 "command: `python -m natverk reproduce table4 --data-root <data root> --out results`",
                 "looked in <data root>/mnist/train.gz; wrote <out>/demo.md"):
        assert text in md, text
    assert str(data) not in md and str(tmp_path) not in md and str(Path.cwd()) not in md
    rows = _read_csv(paths["csv"])
    for row in rows:
        assert set(_report.PROVENANCE_COLUMNS) <= set(row)
        assert row["natverk_version"] and row["numpy"] == np.__version__ and row["command"].startswith("python -m")
    assert rows[0]["code"] == str(facts["code"]) and rows[1]["code"] == "its own"  # a row's own provenance wins
    assert str(data) not in Path(paths["csv"]).read_text()


def test_toy_tables_give_the_wall_time_per_method(tmp_path):
    reproduce("table2", out=tmp_path, quick=True, seeds=[0])
    md = (tmp_path / "table2.md").read_text()
    assert "time (s), all seeds" in md and "git: commit" in md
    rows = [r for r in _read_csv(tmp_path / "table2.csv") if not r["method"].endswith("-trial")]
    assert {r["method"] for r in rows} == {"none", "logspace", "balance", "linear"}
    assert all(float(r["time_s"]) > 0 and r["code"] for r in rows)
    logspace = next(r for r in rows if r["method"] == "logspace")
    trials = [r for r in _read_csv(tmp_path / "table2.csv") if r["method"] == "logspace-trial"]
    assert float(logspace["time_s"]) >= max(float(t["time_s"]) for t in trials)  # the whole search
