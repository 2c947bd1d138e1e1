"""The README's and the documentation site's code blocks run (issue 14, item 5).

- Every ```python block of README.md and docs/**/*.md is executed: the blocks of one page in
  order, in one namespace (a page reads like a notebook), in a fresh temporary folder, with
  warnings as errors as in the rest of the suite. A block that loads a real dataset or imports
  an optional package runs when that is present (``$NATVERK_DATA/<name>``, the package) and is
  skipped, with the reason, otherwise; the page's later blocks are skipped with it (they may use
  its names).
- Every ```bash block holds only documented commands: each ``python -m natverk ...`` parses with
  natverk's own argument parser, each ``pip install`` names extras pyproject.toml defines, and
  the README's two fresh-machine commands are the ones .ci/run runs.
- A block that must not run says so on its first line, ``# docs-test: skip <reason>``, where a
  reader sees it; the marker must stay rare.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
SKIP_MARKER = "# docs-test: skip"
MAX_SKIPPED_BLOCKS = 2

# A block that calls one of these loaders needs $NATVERK_DATA/<folder>.
DATASETS = {"load_mnist": "mnist", "load_fashion_mnist": "fashion-mnist", "load_cifar10": "cifar-10",
            "load_isic": "isic"}
# A block that imports one of these needs it installed (they are optional, not natverk's dependencies).
OPTIONAL_MODULES = ("torch", "sklearn", "distributed", "PIL")

_FENCE = re.compile(r"^(?P<indent> {0,3})```(?P<lang>[\w+-]*)[^\n]*\n(?P<body>.*?)^(?P=indent)```[ \t]*$",
                    re.M | re.S)


def code_blocks(path: Path) -> list[tuple[str, int, str]]:
    """(language, first line number, source) of every fenced block of a Markdown file."""
    text = path.read_text(encoding="utf-8")
    blocks = []
    for m in _FENCE.finditer(text):
        line = text.count("\n", 0, m.start()) + 2  # the line after the opening fence
        body = "\n".join(ln[len(m["indent"]):] for ln in m["body"].splitlines())
        blocks.append((m["lang"].lower(), line, body))
    return blocks


def _rel(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


def _missing_requirement(source: str) -> str | None:
    """Why this block cannot run here (a dataset or optional package absent), or None."""
    root = os.environ.get("NATVERK_DATA")
    for loader, folder in DATASETS.items():
        # a call with its own root= or download=True does not read $NATVERK_DATA
        if re.search(rf"\b{loader}\((?![^)]*\b(root|download)=)", source):
            if not root or not (Path(root) / folder).is_dir():
                return f"needs $NATVERK_DATA/{folder} (NATVERK_DATA={root!r})"
    for module in OPTIONAL_MODULES:
        if re.search(rf"^\s*(import|from) {module}\b", source, re.M) and importlib.util.find_spec(module) is None:
            return f"needs the optional package {module!r}, which is not installed"
    return None


def test_the_pages_have_code_blocks():
    """The extractor finds what it should: a wrong fence pattern would make every test below vacuous."""
    readme = code_blocks(REPO / "README.md")
    assert [lang for lang, _, _ in readme].count("python") >= 3
    assert readme[0][0] == "bash" and "python -m natverk spiral" in readme[0][2]
    assert sum(lang == "python" for page in PAGES[1:] for lang, _, _ in code_blocks(page)) >= 10


def test_every_block_has_a_language():
    unlabelled = [f"{_rel(p)}:{line}" for p in PAGES for lang, line, _ in code_blocks(p) if not lang]
    assert not unlabelled, f"fenced blocks without a language (python, bash, text, ...): {unlabelled}"


def test_the_skip_marker_is_rare_and_gives_a_reason():
    marked = [(p, line, src) for p in PAGES for lang, line, src in code_blocks(p) if src.startswith(SKIP_MARKER)]
    assert len(marked) <= MAX_SKIPPED_BLOCKS, [f"{_rel(p)}:{line}" for p, line, _ in marked]
    for p, line, src in marked:
        reason = src.splitlines()[0][len(SKIP_MARKER):].strip(" :-")
        assert len(reason) >= 10, f"{_rel(p)}:{line}: '{SKIP_MARKER}' needs a reason"


@pytest.mark.parametrize("page", [p for p in PAGES if any(lang == "python" for lang, _, _ in code_blocks(p))],
                         ids=_rel)
def test_python_blocks_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # blocks write files (figures, checkpoints): never into the checkout
    monkeypatch.setenv("MPLBACKEND", "Agg")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    namespace: dict = {"__name__": "__docs__"}
    ran, skipped = 0, []
    for lang, line, source in code_blocks(page):
        if lang != "python" or source.startswith(SKIP_MARKER):
            continue
        why = _missing_requirement(source)
        if why:
            skipped.append(f"{_rel(page)}:{line} {why}")
            continue
        try:
            exec(compile(source, f"{_rel(page)}:{line}", "exec"), namespace)
        except NameError as err:
            if not skipped:
                raise
            # it uses a name that a skipped block defines: skipped for the same reason
            skipped.append(f"{_rel(page)}:{line} uses {getattr(err, 'name', None) or err!s} from a skipped block")
            continue
        finally:
            plt.close("all")
        ran += 1
    if skipped:
        pytest.skip(f"{'; '.join(skipped)}; the page's other {ran} block(s) ran")
    assert ran > 0


# ---------------------------------------------------------------- bash blocks


def _optional_dependencies() -> set[str]:
    text = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    section = text.split("[project.optional-dependencies]", 1)[1].split("\n[", 1)[0]
    return set(re.findall(r"^([A-Za-z0-9_-]+)\s*=", section, re.M))


def _commands(source: str) -> list[str]:
    """The shell commands of a block: comments dropped, ``a && b`` split, env assignments kept."""
    out = []
    for raw in source.splitlines():
        line = raw.split(" #", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        out.extend(part.strip() for part in line.split("&&") if part.strip())
    return out


def _check_command(command: str, extras: set[str]) -> None:
    words = shlex.split(command)
    while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
        words = words[1:]  # NATVERK_DATA=... python -m pytest
    head = " ".join(words[:3])
    if words[:3] == ["python", "-m", "natverk"]:
        from natverk.__main__ import build_parser

        try:
            build_parser().parse_args(words[3:])
        except SystemExit as exit_:
            if exit_.code not in (0, None):  # --help exits 0
                raise AssertionError(f"{command!r}: python -m natverk rejects these arguments") from None
        return
    if words[:2] == ["pip", "install"]:
        for target in words[2:]:
            m = re.fullmatch(r"\.\[([\w,-]+)\]", target)
            if target == ".":
                continue
            assert m, f"{command!r}: install natverk from the clone (\".\" or \".[extra]\"), not {target!r}"
            unknown = set(m[1].split(",")) - extras
            assert not unknown, f"{command!r}: pyproject.toml defines no extra {sorted(unknown)}"
        return
    if words[:1] == ["bash"] and len(words) >= 2 and words[1].startswith("benchmarks/"):
        assert (REPO / words[1]).is_file(), f"{command!r}: no script {words[1]} in the repository"
        return
    known = {("python3", "-m", "venv"), (".", ".venv/bin/activate"), ("python", "-m", "pytest"),
             ("mkdocs", "build", "--strict")}
    assert any(tuple(words[: len(k)]) == k for k in known), \
        f"{command!r} is not a documented command; document it or teach tests/test_docs.py about it ({head})"


def test_bash_blocks_hold_documented_commands():
    extras = _optional_dependencies()
    assert {"test", "docs", "distributed", "isic"} <= extras
    checked = 0
    for page in PAGES:
        for lang, line, source in code_blocks(page):
            if lang not in ("bash", "sh", "shell"):
                continue
            for command in _commands(source):
                try:
                    _check_command(command, extras)
                except AssertionError as err:
                    raise AssertionError(f"{_rel(page)}:{line}: {err}") from None
                checked += 1
    assert checked >= 10


def test_the_readme_commands_are_the_ones_ci_runs():
    first = code_blocks(REPO / "README.md")[0][2]
    commands = [ln for ln in first.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    assert len(commands) == 2
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    for command in commands:
        # verbatim, optionally followed by "|| exit 1" (set -e does not stop inside an && list)
        assert command in ci or f"{command} || exit 1" in ci, (
            f"README command {command!r} is not run verbatim by .ci/run")
    assert "mkdocs build --strict" in "\n".join(ci)
