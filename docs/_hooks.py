"""MkDocs hook: serve the benchmark and thesis-result reports from where they live.

``benchmarks/README.md`` and ``benchmarks/results/**`` (Markdown reports and their PNG figures)
are written by the benchmark runner and ``python -m natverk reproduce``; copying them into
docs/ would leave two versions to drift apart. This hook adds them to the site at the same
relative paths, so their own links (``results/latest.md``, ``figure4.png``) keep working and
the docs link to them as ``benchmarks/...``.
"""

from __future__ import annotations

from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[1]
PATTERNS = ("benchmarks/README.md", "benchmarks/results/**/*.md", "benchmarks/results/**/*.png")


def on_files(files, config):
    for pattern in PATTERNS:
        for path in sorted(ROOT.glob(pattern)):
            rel = path.relative_to(ROOT).as_posix()
            files.append(File(rel, str(ROOT), config["site_dir"], config["use_directory_urls"]))
    return files
