"""The write-ahead log: adds, removes and upserts since the last segment
flush, appended as records and replayed on open.

    file    = MAGIC record*
    record  = u32 payload length, u32 crc32(payload), payload
    payload = u8 kind, i64 m, then
              ADD, UPSERT: ids i64[m], codes i8[m, dim], bits u8[m, nbytes],
                           docs: i64 length, UTF-8 JSON list (or b"null")
              REMOVE:      ids i64[m]

Norms are not logged: they are recomputed from the codes on replay. An
upsert is one record, so a torn write never leaves it half applied. Replay
stops at the first record that is short or fails its checksum (a torn tail
from a crash before commit) and reports where the valid prefix ends.
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from dataclasses import dataclass

import numpy as np

from .storage import IndexFormatError

MAGIC = b"PKWAL\x00\x00\x01"
ADD, REMOVE, UPSERT = 1, 2, 3
_HEAD = struct.Struct("<II")
_COUNT = struct.Struct("<Bq")


@dataclass
class Record:
    kind: int
    ids: np.ndarray
    codes: np.ndarray | None = None
    bits: np.ndarray | None = None
    docs: list | None = None  # JSON-encoded bytes per row (None: no document)


def encode(kind: int, ids: np.ndarray, codes=None, bits=None, docs=None) -> bytes:
    parts = [_COUNT.pack(kind, len(ids)), ids.astype("<i8").tobytes()]
    if kind != REMOVE:
        parts += [np.ascontiguousarray(codes).tobytes(), np.ascontiguousarray(bits).tobytes()]
        blob = b"null" if docs is None else b"[" + b",".join(b"null" if d is None else d for d in docs) + b"]"
        parts += [struct.pack("<q", len(blob)), blob]
    payload = b"".join(parts)
    return _HEAD.pack(len(payload), zlib.crc32(payload)) + payload


def _decode(payload: bytes, dim: int) -> Record:
    kind, m = _COUNT.unpack_from(payload, 0)
    pos = _COUNT.size
    ids = np.frombuffer(payload, "<i8", m, pos).astype(np.int64)
    pos += 8 * m
    if kind == REMOVE:
        return Record(kind, ids)
    nbytes = (dim + 7) // 8
    codes = np.frombuffer(payload, np.int8, m * dim, pos).reshape(m, dim)
    pos += m * dim
    bits = np.frombuffer(payload, np.uint8, m * nbytes, pos).reshape(m, nbytes)
    pos += m * nbytes
    (length,) = struct.unpack_from("<q", payload, pos)
    pos += 8
    listed = json.loads(payload[pos:pos + length])
    docs = None if listed is None else [
        None if d is None else json.dumps(d, ensure_ascii=False, separators=(",", ":")).encode() for d in listed]
    return Record(kind, ids, codes, bits, docs)


def create(path: str) -> None:
    """A new, empty log (fsynced; the caller fsyncs the directory)."""
    with open(path, "xb") as fh:
        fh.write(MAGIC)
        fh.flush()
        os.fsync(fh.fileno())


def read(path: str, dim: int, limit: int | None = None) -> tuple[list, int]:
    """(records, end of the valid prefix in bytes), reading at most `limit`
    bytes (a reader stops at the committed length its manifest names)."""
    with open(path, "rb") as fh:
        data = fh.read() if limit is None else fh.read(limit)
    if data[:len(MAGIC)] != MAGIC:
        if len(data) < len(MAGIC) and MAGIC.startswith(data):
            return [], 0  # torn while being created
        raise IndexFormatError(f"{path}: not a pplx-kernels write-ahead log")
    records, pos = [], len(MAGIC)
    while pos + _HEAD.size <= len(data):
        length, crc = _HEAD.unpack_from(data, pos)
        start, end = pos + _HEAD.size, pos + _HEAD.size + length
        if end > len(data) or zlib.crc32(data[start:end]) != crc:
            break
        try:
            records.append(_decode(data[start:end], dim))
        except (ValueError, struct.error):
            break
        pos = end
    return records, pos


class Writer:
    """Appends records to an open log; fsync() makes them durable."""

    def __init__(self, path: str, end: int):
        self.path = path
        self._fd = os.open(path, os.O_WRONLY)
        os.ftruncate(self._fd, end)  # drop a torn tail before appending
        os.lseek(self._fd, end, os.SEEK_SET)
        self.end = end

    def append(self, record: bytes) -> None:
        view = memoryview(record)
        try:
            while view:
                view = view[os.write(self._fd, view):]
        except BaseException:  # (a full disk): no partial record stays behind
            self.truncate(self.end)
            raise
        self.end += len(record)

    def truncate(self, end: int) -> None:
        os.ftruncate(self._fd, end)
        os.lseek(self._fd, end, os.SEEK_SET)
        self.end = end

    def fsync(self) -> None:
        os.fsync(self._fd)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
