"""Choosing Table 4's recipes from a recipe-search record, on validation accuracy alone.

The record is ``benchmarks/results/thesis/recipe_search/runs.jsonl``, written by
``benchmarks/thesis_recipe_search.py``: one JSON object per run, a run being one recipe
(``tag``), one column (``variant``: none, L2 or dropout) and one seed, with ``val``, the
validation accuracy of its best-validation epoch.

The rule (:func:`choose`):

1. A *recipe* is a tag: one network (``net``) and one training setup for all three columns.
   Table 4 takes its three columns from one recipe per network, so only a recipe that ran all
   three columns can be chosen; the tags that ran only some columns (other lambdas or dropout
   rates) are ranked but not eligible.
2. Its *score* is the mean over the three columns of the column's validation accuracy, averaged
   over the column's seeds (each column weighs the same, whatever its number of seeds).
3. The pick for a network is the eligible recipe with the highest score; a tie (equal scores)
   goes to fewer epochs, then to the tag's name.

Nothing here reads a test accuracy (``test``, ``last_test``, ``max_test``): the selection never
sees the test set. :func:`reported_test_accuracy` reports the chosen recipes' test accuracies from the
record afterwards; in Table 4 itself natverk computes the test accuracy once per cell.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path

VARIANTS = ("none", "L2", "dropout")
TEST_KEYS = ("test", "last_test", "max_test")  # never read by rank() or choose()
# What a recipe is besides its columns' lambda and dropout rate (the record's names)
SETUP_KEYS = ("net", "epochs", "lr", "batch", "widths", "convs", "head", "drop_where", "flip", "pad", "in_drop")
RECORD = Path("benchmarks") / "results" / "thesis" / "recipe_search" / "runs.jsonl"


def load_runs(path: str | Path) -> list[dict]:
    """The runs of a ``runs.jsonl`` record, without the ones that failed (``error``)."""
    runs = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                run = json.loads(line)
                if "error" not in run:
                    runs.append(run)
    return runs


def _mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values)


def rank(runs: Iterable[dict]) -> list[dict]:
    """Every recipe of ``runs`` with its validation scores, best first within each network.

    An entry: ``net``, ``tag``, ``setup`` (the :data:`SETUP_KEYS` of its first run),
    ``weight_decay`` and ``dropout`` (its L2 and dropout columns' settings), ``val`` (column ->
    mean validation accuracy over the seeds), ``seeds`` (column -> seeds), ``eligible`` (all
    three columns ran), ``score`` (the mean of ``val`` over the three columns, None if not
    eligible) and ``rank`` (1 = chosen; None if not eligible). Reads ``val`` only.
    """
    groups: dict[tuple[str, str], list[dict]] = {}
    for run in runs:
        groups.setdefault((str(run["net"]), str(run["tag"])), []).append(run)
    entries = []
    for (net, tag), members in groups.items():
        val: dict[str, list[float]] = {}
        seeds: dict[str, list[int]] = {}
        for run in members:
            val.setdefault(run["variant"], []).append(float(run["val"]))
            seeds.setdefault(run["variant"], []).append(int(run["seed"]))
        first = members[0]
        setup = {k: first.get(k) for k in SETUP_KEYS}
        for run in members:
            differs = [k for k in SETUP_KEYS if run.get(k) != setup[k]]
            if differs:
                raise ValueError(f"recipe {tag!r} mixes setups: {differs} differ between its runs")
        by_variant = {run["variant"]: run for run in members}
        eligible = all(v in val for v in VARIANTS)
        entries.append({
            "net": net, "tag": tag, "setup": setup,
            "weight_decay": by_variant["L2"].get("wd") if "L2" in by_variant else None,
            "dropout": by_variant["dropout"].get("dropout") if "dropout" in by_variant else None,
            "val": {v: _mean(val[v]) for v in VARIANTS if v in val},
            "seeds": {v: sorted(seeds[v]) for v in VARIANTS if v in seeds},
            "eligible": eligible,
            "score": _mean([_mean(val[v]) for v in VARIANTS]) if eligible else None,
            "rank": None,
        })
    entries.sort(key=lambda e: (e["net"], not e["eligible"], -(e["score"] or 0.0), e["setup"]["epochs"], e["tag"]))
    counters: dict[str, int] = {}
    for e in entries:
        if e["eligible"]:
            counters[e["net"]] = counters.get(e["net"], 0) + 1
            e["rank"] = counters[e["net"]]
    return entries


def choose(runs: Iterable[dict]) -> dict[str, dict]:
    """The chosen recipe per network (``{"CNN": entry, "FC": entry}``, entries of :func:`rank`)."""
    return {e["net"]: e for e in rank(runs) if e["rank"] == 1}


def recipe_fields(entry: dict) -> dict:
    """A chosen recipe as the fields of Table 4's ``Recipe`` (``experiments.images``)."""
    setup = entry["setup"]
    return {"epochs": int(setup["epochs"]), "learning_rate": float(setup["lr"]),
            "weight_decay": float(entry["weight_decay"]), "dropout": float(entry["dropout"]),
            "batch_size": int(setup["batch"]),
            "convs_per_block": int(setup["convs"]) if setup.get("convs") is not None else 1}


def describe(entry: dict) -> str:
    s = entry["setup"]
    parts = [f"{s['epochs']} ep"]
    if s.get("widths") is not None:
        parts.append(f"widths ({', '.join(map(str, s['widths']))}), {s['convs']} conv/block, head {s['head']}")
    parts.append(f"lr {s['lr']:g}")
    if s.get("flip") and entry["net"] == "FC":
        parts.append("flip")
    if s.get("pad") and entry["net"] == "FC":
        parts.append(f"crop pad {s['pad']}")
    if s.get("in_drop"):
        parts.append(f"input dropout {s['in_drop']:g}")
    if s.get("drop_where") == "both":
        parts.append("dropout also before flatten")
    return ", ".join(parts)


def ranking_markdown(runs: Sequence[dict]) -> str:
    """The ranking as a Markdown table (validation only), best first within each network."""
    def cell(e, v):
        if v not in e["val"]:
            return "-"
        n = len(e["seeds"][v])
        return f"{e['val'][v]:.4f}" + (f" (n={n})" if n > 1 else "")

    lines = ["| net | rank | recipe | setup | L2 λ | dropout p | val none | val L2 | val dropout | score |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for e in rank(runs):
        lines.append(
            f"| {e['net']} | {e['rank'] if e['rank'] else 'not eligible'} | "
            f"{'**' + e['tag'] + '**' if e['rank'] == 1 else e['tag']} | {describe(e)} | "
            f"{'-' if e['weight_decay'] is None else format(e['weight_decay'], 'g')} | "
            f"{'-' if e['dropout'] is None else format(e['dropout'], 'g')} | "
            + " | ".join(cell(e, v) for v in VARIANTS)
            + f" | {'-' if e['score'] is None else format(e['score'], '.4f')} |")
    return "\n".join(lines)


def reported_test_accuracy(runs: Sequence[dict], chosen: dict[str, dict]) -> str:
    """The chosen recipes' test accuracies in the record (reported, never used to choose):
    mean over seeds at the best-validation epoch, per column."""
    lines = ["| net | recipe | test none | test L2 | test dropout |", "| --- | --- | --- | --- | --- |"]
    for net, e in sorted(chosen.items()):
        cells = []
        for v in VARIANTS:
            tests = [float(r["test"]) for r in runs if r["net"] == net and r["tag"] == e["tag"]
                     and r["variant"] == v and r.get("test") is not None]
            cells.append(f"{_mean(tests):.4f} (n={len(tests)})" if tests else "- (not in the record)")
        lines.append(f"| {net} | {e['tag']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
