"""Where a result came from: the code that produced it (git), the build, and the command, with
machine paths taken out.

The *code* of a result is the last commit touching ``cpp/``, ``python/`` or ``pyproject.toml``
(``git log -1 --format=%H -- cpp python pyproject.toml``), so that committing results does not
change it. Uncommitted changes to those paths make it ``<commit>+dirty.<hash>``, the hash over
the diff and the untracked files there (two runs of the same uncommitted code share it). Where
natverk does not run from a git checkout (``pip install .``), it is ``"unknown"``: such a result
never matches another one (see :func:`same_code`).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

CODE_PATHS = ("cpp", "python", "pyproject.toml")
UNKNOWN = "unknown"
DATA_ROOT_TOKEN = "<data root>"


def _git(top: Path, *args: str) -> bytes | None:
    try:
        done = subprocess.run(["git", "-C", str(top), *args], capture_output=True, timeout=60, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def source_checkout() -> Path | None:
    """The git work tree natverk runs from, or None (installed from a wheel or sdist).

    The package must be ``<top>/python/natverk`` of that work tree: a copy installed into a
    virtual environment that happens to lie inside a checkout is *not* that checkout's code.
    """
    import natverk

    package = Path(natverk.__file__).resolve().parent
    out = _git(package, "rev-parse", "--show-toplevel")
    if not out:
        return None
    top = Path(out.decode().strip()).resolve()
    return top if (top / "python" / "natverk") == package else None


def _dirty_hash(top: Path) -> str:
    h = hashlib.sha256()
    h.update(_git(top, "diff", "HEAD", "--binary", "--", *CODE_PATHS) or b"")
    listing = _git(top, "ls-files", "--others", "--exclude-standard", "-z", "--", *CODE_PATHS) or b""
    for name in sorted(n for n in listing.split(b"\0") if n):
        h.update(name + b"\0")
        try:
            h.update((top / name.decode()).read_bytes())
        except OSError:
            h.update(b"<unreadable>")
    return h.hexdigest()[:12]


def git_state() -> dict:
    """``git_commit`` (HEAD) and ``git_dirty`` (any uncommitted change), ``code_commit`` and
    ``code_dirty`` (the same for the code paths only) and ``code``, the identity a finished
    cell must share to be reused; every value ``"unknown"`` without a checkout."""
    top = source_checkout()
    head = _git(top, "rev-parse", "HEAD") if top else None
    if top is None or head is None:
        return {"git_commit": UNKNOWN, "git_dirty": UNKNOWN, "code_commit": UNKNOWN, "code_dirty": UNKNOWN,
                "code": UNKNOWN}
    status = _git(top, "status", "--porcelain") or b""
    code_status = _git(top, "status", "--porcelain", "--", *CODE_PATHS) or b""
    code_commit = (_git(top, "log", "-1", "--format=%H", "--", *CODE_PATHS) or b"").decode().strip() or UNKNOWN
    code_dirty = bool(code_status.strip())
    if code_commit == UNKNOWN:
        code = UNKNOWN
    else:
        code = f"{code_commit}+dirty.{_dirty_hash(top)}" if code_dirty else code_commit
    return {"git_commit": head.decode().strip(), "git_dirty": bool(status.strip()), "code_commit": code_commit,
            "code_dirty": code_dirty, "code": code}


def same_code(a: str | None, b: str | None) -> bool:
    """Whether two results come from the same code: equal and known (``unknown`` or a missing
    record never matches, not even itself)."""
    return bool(a) and bool(b) and a != UNKNOWN and a == b


def natverk_version() -> str:
    """natverk's version, never empty: the extension's, else the installed distribution's."""
    import natverk

    version = str(getattr(natverk, "__version__", "") or "").strip()
    if version:
        return version
    try:
        from importlib.metadata import PackageNotFoundError, version as dist_version

        return dist_version("natverk") or UNKNOWN
    except (ImportError, PackageNotFoundError, ValueError):
        return UNKNOWN


def data_root(root=None) -> Path | None:
    """The folder the datasets are read from: ``root``, else ``$NATVERK_DATA`` (absolute)."""
    base = root if root is not None else os.environ.get("NATVERK_DATA")
    if not base:
        return None
    return Path(os.path.abspath(os.path.expanduser(os.fspath(base))))


class PathScrubber:
    """Rewrites machine paths in text: the data root becomes ``<data root>``, paths inside the
    source checkout or the current folder become relative, the output folder ``out`` (when
    outside both) ``<out>``, the home folder ``~``."""

    def __init__(self, root=None, out=None):
        pairs: list[tuple[str, str]] = []
        base = data_root(root)
        if base is not None:
            pairs += [(str(base), DATA_ROOT_TOKEN), (str(base.resolve()), DATA_ROOT_TOKEN)]
        top = source_checkout()
        here = [f for f in (top, Path.cwd()) if f is not None]
        if out is not None:
            folder = Path(os.path.abspath(os.fspath(out)))
            if not any(folder.resolve().is_relative_to(f.resolve()) for f in here):
                pairs += [(str(folder), "<out>"), (str(folder.resolve()), "<out>")]
        for folder in here:
            if folder is not None:
                pairs += [(str(folder) + os.sep, ""), (str(folder.resolve()) + os.sep, ""),
                          (str(folder), "."), (str(folder.resolve()), ".")]
        home = os.path.expanduser("~")
        if home and home != os.sep:
            pairs.append((home, "~"))
        seen = set()
        self.pairs = []
        for old, new in sorted(pairs, key=lambda p: -len(p[0])):  # longest first: the data root inside cwd
            if old and old != os.sep and old not in seen:
                seen.add(old)
                self.pairs.append((old, new))

    def __call__(self, text: str) -> str:
        for old, new in self.pairs:
            text = text.replace(old, new)
        return text


def command_line() -> str:
    """How this process was started, as a user would type it (``python -m natverk ...``)."""
    if not sys.argv or not sys.argv[0]:
        return ""
    prog = "python -m natverk" if Path(sys.argv[0]).name == "__main__.py" else Path(sys.argv[0]).name
    return " ".join([prog] + sys.argv[1:])
