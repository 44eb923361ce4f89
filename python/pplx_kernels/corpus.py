"""Corpus input: documents streamed from JSON Lines, text files or stdin, and
an offline corpus of real text, the Python standard library's docstrings.

read_corpus yields {"id", "title", "text"} one document at a time, so a
corpus of any size streams through `pplx-kernels index` and `embed`.

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
import itertools
import json
import os
import sys
import sysconfig
from pathlib import Path
from typing import Iterable, Iterator

STDLIB = "stdlib"  # read_corpus source name of the built-in stdlib docstring corpus
FORMATS = ("auto", "jsonl", "text")

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


def read_corpus(source: str, *, text_field: str = "text", id_field: str = "id", title_field: str = "title",
                fmt: str = "auto", limit: int | None = None) -> Iterator[dict]:
    """Yields documents {"id", "title", "text"} from `source`, one at a time:
    "stdlib" (the built-in corpus), "-" (stdin), a JSON Lines file, or a text
    file with one document per line (blank lines skipped; id = line number
    from 1; title None). JSON Lines: the id is `id_field` (else the line
    number), the title `title_field` when a string. Raises ValueError naming
    the line for bad JSON or a missing text, and for an id seen twice; a
    source without documents raises once it is read to the end.

    File errors (missing file, not UTF-8) raise at this call; the rest as
    the documents are read.
    """
    if fmt not in FORMATS:
        raise ValueError(f"fmt: expected one of {FORMATS}, got {fmt!r}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit: expected None or a positive int, got {limit!r}")
    if source == STDLIB:
        return iter(stdlib_docstrings(limit))
    if source == "-":
        return _documents(sys.stdin, "<stdin>", text_field, id_field, title_field, fmt, limit)
    try:
        fh = open(source, encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"corpus: no such file: {source}") from None
    except IsADirectoryError:
        raise ValueError(f"corpus: {source} is a directory, expected a file") from None
    return _closing(fh, _documents(fh, source, text_field, id_field, title_field, fmt, limit))


def _closing(fh, documents: Iterator[dict]) -> Iterator[dict]:
    with fh:
        yield from documents


def _documents(lines: Iterable[str], name: str, text_field: str, id_field: str, title_field: str,
               fmt: str, limit: int | None) -> Iterator[dict]:
    numbered: Iterator[tuple[int, str]] = enumerate(_utf8_lines(lines, name), 1)
    if fmt == "auto":
        # Peek at the first non-blank line, then read on from the start.
        head = []
        for item in numbered:
            head.append(item)
            if item[1].strip():
                break
        first = head[-1][1] if head else ""
        numbered = itertools.chain(head, numbered)
        jsonl = name.endswith((".jsonl", ".ndjson")) or first.lstrip().startswith("{")
        fmt = "jsonl" if jsonl else "text"
    seen = set()  # ids as JSON, to refuse a repeated id (a few bytes per document)
    count = 0
    for number, line in numbered:
        if limit is not None and count >= limit:
            break
        if not line.strip():
            continue
        doc = _text_document(number, line) if fmt == "text" else \
            _json_document(number, line, name, text_field, id_field, title_field)
        key = json.dumps(doc["id"], sort_keys=True)
        if key in seen:
            raise ValueError(f"corpus: {name} line {number}: document id {doc['id']!r} appears more than once "
                             f"(see --id-field)")
        seen.add(key)
        count += 1
        yield doc
    if not count:
        raise ValueError(f"corpus: {name} holds no documents")


def _utf8_lines(lines: Iterable[str], name: str) -> Iterator[str]:
    try:
        for line in lines:
            yield line.rstrip("\r\n")
    except UnicodeDecodeError as exc:
        raise ValueError(f"corpus: {name} is not UTF-8 text ({exc})") from None


def _text_document(number: int, line: str) -> dict:
    return {"id": number, "title": None, "text": line}


def _json_document(number: int, line: str, name: str, text_field: str, id_field: str, title_field: str) -> dict:
    try:
        obj = json.loads(line)
    except ValueError as exc:
        raise ValueError(f"corpus: {name} line {number} is not valid JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"corpus: {name} line {number} is not a JSON object")
    text = obj.get(text_field)
    if not isinstance(text, str):
        raise ValueError(f"corpus: {name} line {number} has no string field {text_field!r} (see --text-field)")
    title = obj.get(title_field)
    return {"id": obj.get(id_field, number), "title": title if isinstance(title, str) else None, "text": text}
