"""An offline corpus of real text: the Python standard library's docstrings.

Every machine with Python has it, and its lengths spread the way real
documents do (one-line function summaries up to module docstrings of several
pages), which is what batching by token length has to cope with. The
docstrings are read from the source files with `ast`, never by importing
the modules, so nothing runs (no `antigravity` opening a browser, no GUI
toolkit, no test package) and the whole walk takes about two seconds.

The order is deterministic for a given Python version: files sorted by
path, then module, classes and functions in source order.
"""

from __future__ import annotations

import ast
import functools
import os
import sysconfig
from pathlib import Path

# Top-level stdlib directories left out: tests, GUI toolkits and demos,
# vendored wheels, third-party packages, and the deprecated 2to3 grammar.
_SKIP_TOP = {
    "site-packages", "dist-packages", "test", "idlelib", "tkinter", "turtledemo",
    "lib2to3", "ensurepip", "venv", "__pycache__", "__phello__",
}
_SKIP_ANY = {"test", "tests", "__pycache__"}


def _stdlib_files(root: Path):
    for dirpath, dirnames, filenames in os.walk(root):
        parts = Path(dirpath).relative_to(root).parts
        if parts and (parts[0] in _SKIP_TOP or parts[0].startswith("config-") or _SKIP_ANY & set(parts)):
            dirnames[:] = []
            continue
        dirnames.sort()  # os.walk order is the file system's; sort for determinism
        for name in sorted(filenames):
            if name.endswith(".py") and not name.startswith("test_"):
                yield Path(dirpath) / name


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _docstrings(node, qualname: str):
    """(qualified name, docstring) of node and its classes and functions,
    in source order."""
    doc = ast.get_docstring(node)
    if doc:
        yield qualname, doc
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            yield from _docstrings(child, f"{qualname}.{child.name}")


@functools.lru_cache(maxsize=None)
def _all_docstrings() -> tuple:
    root = Path(sysconfig.get_paths()["stdlib"])
    seen = set()
    out = []
    for path in _stdlib_files(root):
        try:
            tree = ast.parse(path.read_bytes(), filename=str(path))
        except (SyntaxError, ValueError, OSError):
            continue  # e.g. a file written for another Python version
        for title, text in _docstrings(tree, _module_name(path, root)):
            # Overridden methods often repeat their parent's docstring; exact
            # duplicates would only make ties in a retrieval evaluation.
            if text in seen:
                continue
            seen.add(text)
            out.append((title, text))
    return tuple(out)


def stdlib_docstrings(limit: int | None = None) -> list[dict]:
    """The standard library's module, class and function docstrings.

    Returns a list of {"id": int, "title": qualified name (e.g.
    "json.decoder.JSONDecoder.decode"), "text": the cleaned docstring}, ids
    0, 1, 2, ... in a deterministic order; `limit` keeps the first `limit`.
    Exact duplicate texts are kept once. Typically about 6,500 entries.
    """
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int):
            raise TypeError(f"limit: expected None or an int, got {type(limit).__name__}")
        if limit < 0:
            raise ValueError(f"limit: expected None or an int >= 0, got {limit}")
    docs = _all_docstrings()
    if limit is not None:
        docs = docs[:limit]
    return [{"id": i, "title": title, "text": text} for i, (title, text) in enumerate(docs)]
