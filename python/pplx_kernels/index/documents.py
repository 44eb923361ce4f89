"""Documents stored with the rows: one JSON object (or nothing) per row.

On disk a segment keeps its documents as JSON Lines in row order (a row
without a document is the line `null`) plus the byte offset of every line
([count + 1] little-endian uint64), so documents(ids) reads only the lines
it needs. In memory (rows not yet flushed) they are kept as encoded bytes.
"""

from __future__ import annotations

import json
import os

import numpy as np


def encode(documents, m: int) -> list | None:
    """documents (None, or a list of m JSON-able dicts or None) as compact
    UTF-8 JSON bytes per row."""
    if documents is None:
        return None
    if isinstance(documents, (str, bytes, dict)) or not hasattr(documents, "__len__"):
        raise TypeError(f"documents: expected a list of dicts (one per vector), got {type(documents).__name__}")
    if len(documents) != m:
        raise ValueError(f"documents: expected {m} documents (one per vector), got {len(documents)}")
    out = []
    for row, doc in enumerate(documents):
        if doc is None:
            out.append(None)
            continue
        if not isinstance(doc, dict):
            raise TypeError(f"documents: row {row} is a {type(doc).__name__}; expected a dict or None")
        try:
            out.append(json.dumps(doc, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode())
        except (TypeError, ValueError) as exc:
            raise ValueError(f"documents: row {row} is not JSON-serialisable: {exc}") from None
    return out


def decode(blob: bytes | None):
    return None if blob is None else json.loads(blob)


class InMemory:
    """Documents of rows held in memory: a list only ever appended to, so a
    published snapshot's rows never change under a reader."""

    def __init__(self, blobs: list | None = None):
        self.blobs = blobs if blobs is not None else []

    def extend(self, docs: list | None, m: int) -> None:
        self.blobs.extend(docs if docs is not None else [None] * m)

    def get(self, rows) -> list:
        return [self.blobs[r] for r in rows]

    def lines(self, rows) -> tuple[bytes, np.ndarray]:
        """These rows as JSON Lines (`null` for no document) and each line's length."""
        blobs = [b"null" if b is None else b for b in self.get(rows)]
        lengths = np.fromiter(map(len, blobs), np.uint64, len(blobs)) + np.uint64(1)
        return b"\n".join(blobs) + b"\n" if blobs else b"", lengths


class OnDisk:
    """Documents of a segment: the JSON Lines file and its line offsets."""

    def __init__(self, data, offsets: np.ndarray):
        # Opened now and kept: a reader holds its segment's documents even
        # after a compaction deletes the file.
        self._file = open(data, "rb") if isinstance(data, str) else data
        self._offsets = offsets

    def get(self, rows) -> list:
        out = []
        for r in rows:
            start, end = int(self._offsets[r]), int(self._offsets[r + 1]) - 1
            blob = os.pread(self._file.fileno(), end - start, start)
            out.append(None if blob == b"null" else blob)
        return out

    def lines(self, rows) -> tuple[bytes, np.ndarray]:
        """Ascending rows as JSON Lines and each line's length: one read of
        their span, the lines gathered with numpy (no loop per row)."""
        rows = np.asarray(rows, np.int64)
        if not len(rows):
            return b"", np.empty(0, np.uint64)
        starts = np.asarray(self._offsets[rows], np.int64)
        ends = np.asarray(self._offsets[rows + 1], np.int64)
        lo, hi = int(starts[0]), int(ends[-1])
        span = np.frombuffer(os.pread(self._file.fileno(), hi - lo, lo), np.uint8)
        lengths = ends - starts
        if np.array_equal(starts[1:], ends[:-1]):  # contiguous rows: the span is the answer
            return span.tobytes(), lengths.astype(np.uint64)
        # Byte j of the output comes from starts[row] - lo + (j - first output byte of row).
        first = np.cumsum(lengths) - lengths
        take = np.arange(int(lengths.sum())) + np.repeat(starts - lo - first, lengths)
        return span[take].tobytes(), lengths.astype(np.uint64)


class Lines:
    """Documents of a format-1 index: docs.jsonl in row order, no offsets
    file; the offsets are found by one pass on first use."""

    def __init__(self, path: str | None, count: int):
        self._file = None if path is None else open(path, "rb")
        self._disk = None

    def _open(self) -> OnDisk | None:
        if self._disk is None and self._file is not None:
            offsets = [0]
            self._file.seek(0)
            for line in self._file:
                offsets.append(offsets[-1] + len(line))
            self._disk = OnDisk(self._file, np.array(offsets, np.uint64))
            self._lines = len(offsets) - 1
        return self._disk

    def get(self, rows) -> list:
        disk = self._open()
        if disk is None:
            return [None] * len(rows)
        return [disk.get([r])[0] if r < self._lines else None for r in rows]

    def lines(self, rows) -> tuple[bytes, np.ndarray]:
        return InMemory(self.get(rows)).lines(range(len(rows)))
