"""Segments: immutable runs of rows, and the parts a published state is
made of.

A segment named seg-G (G: the generation that wrote it) is six files of
raw little-endian data, any tool can read them (np.memmap, sha256sum):

    seg-G.codes.i8     int8 vectors [count, dim]
    seg-G.norms.f32    float32 L2 norms of the codes [count]
    seg-G.bits.u8      packed sign bits [count, ceil(dim / 8)], MSB first
    seg-G.ids.i64      int64 user ids [count]
    seg-G.docs.jsonl   one JSON document (or null) per row
    seg-G.docs.off     uint64 byte offset of each line [count + 1]

Removed rows are not rewritten: seg-G.del-H.u1 holds the segment's
tombstones as of generation H (np.packbits, MSB first, 1 = removed). A
manifest lists each segment with its files' sizes and sha256 and its
current tombstone file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np

from . import documents
from .storage import IndexFormatError, array_bytes, check_file, write_file

# key -> (file suffix, dtype, shape from (count, dim))
ARRAYS = {
    "codes": ("codes.i8", "<i1", lambda n, d: (n, d)),
    "norms": ("norms.f32", "<f4", lambda n, d: (n,)),
    "bits": ("bits.u8", "|u1", lambda n, d: (n, (d + 7) // 8)),
    "ids": ("ids.i64", "<i8", lambda n, d: (n,)),
    "docs_offsets": ("docs.off", "<u8", lambda n, d: (n + 1,)),
}
_ROWS_PER_CHUNK = 1 << 16  # rows gathered per step while writing: bounded memory


@dataclass(frozen=True)
class Part:
    """Rows at global positions [start, start + count) of one state:
    a segment, or the rows still in memory (name None)."""
    codes: np.ndarray   # int8 [n, dim]
    norms: np.ndarray   # float32 [n]
    bits: np.ndarray    # uint8 [n, ceil(dim / 8)]
    ids: np.ndarray     # int64 [n]
    docs: object        # .get(rows) -> list of JSON bytes or None
    dead: np.ndarray | None  # bool [n], read-only; None: no row removed
    start: int
    name: str | None = None
    entry: dict | None = None  # the manifest's entry for a segment

    @property
    def count(self) -> int:
        return len(self.ids)

    @cached_property
    def n_dead(self) -> int:
        return 0 if self.dead is None else int(np.count_nonzero(self.dead))

    def moved(self, start: int) -> "Part":
        return replace(self, start=start)

    def live_rows(self) -> np.ndarray:
        return np.arange(self.count) if self.dead is None else np.flatnonzero(~self.dead)


def readonly(a: np.ndarray) -> np.ndarray:
    v = a.view()
    v.flags.writeable = False
    return v


def write(directory: str, name: str, sources: list, dim: int) -> dict:
    """Writes segment `name` from the given rows of existing parts
    (sources: [(Part, rows int64 ascending)], in order), streaming in
    chunks, fsyncing each file; returns its manifest entry. The caller
    fsyncs the directory."""
    n = sum(len(rows) for _, rows in sources)

    def pieces(key):
        for part, rows in sources:
            for lo in range(0, len(rows), _ROWS_PER_CHUNK):
                yield getattr(part, key)[rows[lo:lo + _ROWS_PER_CHUNK]]

    files = {}
    for key in ("codes", "norms", "bits", "ids"):
        suffix, dtype, _ = ARRAYS[key]
        fname = f"{name}.{suffix}"
        chunks = (array_bytes(np.asarray(a, dtype)) for a in pieces(key))
        files[key] = dict(write_file(os.path.join(directory, fname), chunks), file=fname)
    lengths = []

    def doc_lines():
        for part, rows in sources:
            for lo in range(0, len(rows), _ROWS_PER_CHUNK):
                data, line_lengths = part.docs.lines(rows[lo:lo + _ROWS_PER_CHUNK])
                lengths.append(line_lengths)
                yield data

    fname = f"{name}.docs.jsonl"
    files["docs"] = dict(write_file(os.path.join(directory, fname), doc_lines()), file=fname)
    offsets = np.zeros(n + 1, np.uint64)
    offsets[1:] = np.cumsum(np.concatenate(lengths or [np.empty(0, np.uint64)]))
    fname = f"{name}.{ARRAYS['docs_offsets'][0]}"
    files["docs_offsets"] = dict(write_file(os.path.join(directory, fname), array_bytes(offsets)), file=fname)
    return {"name": name, "count": n, "files": files, "deleted": None}


def with_dead(seg: Part, dead: np.ndarray) -> Part:
    """The segment with this tombstone mask (None when no row is removed)."""
    return replace(seg, dead=readonly(dead) if dead.any() else None)


def write_deleted(directory: str, name: str, generation: int, dead: np.ndarray) -> dict:
    fname = f"{name}.del-{generation:06d}.u1"
    entry = write_file(os.path.join(directory, fname), np.packbits(dead).tobytes())
    return dict(entry, file=fname, count=int(np.count_nonzero(dead)))


def open_segment(directory: str, entry: dict, dim: int, start: int, *, mmap: bool, verify: bool) -> Part:
    """The Part of a listed segment. Raises FileNotFoundError when a file
    is gone (a newer manifest replaced the segment: the caller retries)."""
    n = entry["count"]
    if not isinstance(n, int) or n < 0:
        raise IndexFormatError(f"{directory}: segment {entry.get('name')!r} has an invalid count {n!r}")
    arrays = {}
    for key, (_, dtype, shape_of) in ARRAYS.items():
        shape = shape_of(n, dim)
        listed = entry["files"][key]
        if listed["bytes"] != int(np.prod(shape)) * np.dtype(dtype).itemsize:
            raise IndexFormatError(f"{directory}: {listed['file']} has {listed['bytes']} bytes, "
                                   f"but count {n} and dim {dim} imply another size")
        path = check_file(directory, listed["file"], listed, verify)
        if mmap and listed["bytes"]:
            arrays[key] = np.memmap(path, dtype=np.dtype(dtype), mode="r", shape=shape)
        else:
            arrays[key] = np.fromfile(path, dtype=np.dtype(dtype)).reshape(shape)
    docs_path = check_file(directory, entry["files"]["docs"]["file"], entry["files"]["docs"], verify)
    dead = None
    if entry.get("deleted"):
        listed = entry["deleted"]
        path = check_file(directory, listed["file"], listed, verify)
        packed = np.fromfile(path, np.uint8)
        if len(packed) != (n + 7) // 8:
            raise IndexFormatError(f"{directory}: {listed['file']} does not match the segment's {n} rows")
        dead = readonly(np.unpackbits(packed, count=n).astype(bool))
    return Part(readonly(arrays["codes"]), readonly(arrays["norms"]), readonly(arrays["bits"]),
                readonly(arrays["ids"]), documents.OnDisk(docs_path, arrays["docs_offsets"]),
                dead, start, entry["name"], entry)
