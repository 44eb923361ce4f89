"""A flat index of int8 vectors with exact and two-stage search, in memory
or durable in a directory.

Each row holds an int8 vector, its float32 L2 norm, its packed sign bits
(MSB first), an int64 user id and optionally a JSON document. Where the
bits come from:
  - float vectors are quantized with the index's scheme by quantize_fused,
    and the bits are the signs of the *float* values (a value that rounds
    to int8 0 keeps its sign, as pplx-embed's binary output does);
  - int8 vectors are stored as given and the bits are their signs, with
    0 counted as positive (x >= 0 -> 1), the same rule as pack_bits;
  - a Quantized (Embedder.encode_fused) is stored as it is: codes and bits
    the embedder made from the same floats, with a scheme that must be the
    index's, so it gives the rows adding those floats would.
Queries follow the same rules, so a float query meets float-built bits.

Search modes:
  exact      int8 cosine top-k over every allowed row.
  two_stage  per part, Hamming top-(k * oversample) over the bits of the
             allowed rows, then int8 cosine on those candidates only; with
             the default oversample, recall@10 against exact search
             measured >= 0.95 on real embeddings (tests/test_index.py).
Filters (allow_ids, deny_ids) and removed rows become a per-part row mask
for the kernels' scan (or candidate lists when few rows are allowed), so
results equal brute force over the allowed rows.

Storage (Index.open): immutable segments plus a manifest plus a
write-ahead log; see storage.py, segments.py and wal.py. add/remove/upsert
append to the log; commit() fsyncs it and publishes the committed length
in a new manifest (group commit: concurrent callers share one fsync);
every `flush_rows` rows the in-memory rows become a segment; compact()
rewrites the live rows as one segment. Index(dim) is the same without a
directory; Index.load is a read-only snapshot of the last commit.

Threads: mutations hold a lock; searches take none: they read one
published State (state.py), which no mutation changes.
"""

from __future__ import annotations

import dataclasses
import math
import os
import threading

import numpy as np

from .._validate import array_arg, float32_arg, positive_int_arg, rows_arg, threads_arg
from ..quantize import SCHEMES, Quantized, pack_bits, quantize, quantize_fused
from ..search import norms as _norms
from ..search import topk as _topk
from . import directory, documents, legacy, segments, storage, wal
from .state import Memtable, State
from .storage import IndexFormatError, IndexLockedError

__all__ = ["Index", "IndexFormatError", "IndexLockedError", "DEFAULT_OVERSAMPLE"]

METRICS = ("cosine",)
MODES = ("exact", "two_stage")
# Two-stage recall@10 against exact search, on the default model's stdlib
# docstring embeddings (384 bits, not trained for binary codes), first passed
# 0.95 at oversample 6 for one-line queries (3 for whole-docstring queries);
# 10 leaves a margin. tests/test_index.py measures it on every run.
DEFAULT_OVERSAMPLE = 10
# Rows kept in memory (and in the log) before they become a segment.
FLUSH_ROWS = 1 << 16
# Tail segments merged into one once this many share a size tier, so a
# directory holds O(MERGE_FANOUT * log(rows)) segments.
MERGE_FANOUT = 8
_OPEN_RETRIES = 50  # a reader retries when a compaction deletes its files


class Index:
    """Flat int8 index with user ids and documents; see the module docstring."""

    _state: State  # the published rows, replaced whole by each mutation (set by _publish)

    def __init__(self, dim, *, metric="cosine", scheme="tanh", model=None):
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
            raise ValueError(f"dim: expected a positive int, got {dim!r}")
        if metric not in METRICS:
            raise ValueError(f"metric: expected one of {METRICS}, got {metric!r}")
        if scheme not in SCHEMES:
            raise ValueError(f"scheme: expected one of {SCHEMES}, got {scheme!r}")
        self._dim = int(dim)
        self._metric = metric
        self._scheme = scheme
        self._model = _model_arg(model)
        self._lock = threading.RLock()       # mutations
        self._commit_lock = threading.Lock()  # commit, flush, compact (taken before _lock)
        self._segments: tuple = ()
        self._mem = Memtable(self._dim)
        self._next_id = 0
        self._readonly = False
        self._closed = False
        # directory state (None for an in-memory index)
        self._dir = None
        self._lock_fd = None
        self._wal = None
        self._manifest = None
        self._generation = 0
        self._durable = 0
        self._dirty = set()  # segments whose tombstones changed since the last manifest
        self._mmap = True
        self._publish(None)

    # --- properties ----------------------------------------------------------

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def metric(self) -> str:
        return self._metric

    @property
    def scheme(self) -> str:
        return self._scheme

    @property
    def model(self) -> dict:
        """{"name", "sha256", "path"} of the model that made the vectors
        (metadata only; None values where unknown)."""
        return dict(self._model)

    @property
    def path(self) -> str | None:
        """The index directory (None in memory)."""
        return self._dir

    @property
    def ids(self) -> np.ndarray:
        """User ids of the live rows in row order (read-only int64)."""
        return self._state.live_ids

    def __len__(self) -> int:
        return self._state.live_count

    def __contains__(self, id_) -> bool:
        try:
            ids = _ids_arg(id_, None, allow_repeats=True)
        except (TypeError, ValueError):
            return False
        return len(ids) == 1 and bool(self._positions(ids)[0] >= 0)

    def __repr__(self) -> str:
        where = f", path={self._dir!r}" if self._dir else ""
        return (f"Index(dim={self._dim}, metric={self._metric!r}, scheme={self._scheme!r}, "
                f"count={len(self)}, model={self._model['name']!r}{where})")

    def __enter__(self) -> "Index":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        """Commits and closes; after an exception, drops what was not
        committed instead (the log is cut back to the last commit)."""
        if exc_type is not None and self._wal is not None and not self._closed:
            with self._commit_lock, self._lock:
                self._wal.truncate(self._durable)
                self._release()
            return
        self.close()

    # --- reading by id ----------------------------------------------------------

    def _positions(self, ids: np.ndarray, state: State | None = None) -> np.ndarray:
        state = state or self._state
        idmap = state.idmap
        if idmap is None:
            idmap = state.build_idmap()
            with self._lock:
                if self._state is state:
                    self._state = state.with_idmap(idmap)
        return state.lookup(ids, idmap)

    def _existing(self, ids, name="ids", state=None) -> tuple:
        ids = _ids_arg(ids, None, allow_repeats=True, name=name)
        state = state or self._state
        pos = self._positions(ids, state)
        missing = ids[pos < 0]
        if len(missing):
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            raise KeyError(f"{name}: not in the index: {missing[:5].tolist()}{more}")
        return pos, state

    def get(self, ids) -> np.ndarray:
        """Stored int8 vectors [n, dim] of these ids (KeyError if any is absent)."""
        pos, state = self._existing(ids)
        return state.gather(pos, "codes") if len(pos) else np.empty((0, self._dim), np.int8)

    def get_bits(self, ids) -> np.ndarray:
        """Stored packed sign bits uint8 [n, ceil(dim / 8)] of these ids
        (KeyError if any is absent): the signs of the floats the int8 codes
        came from."""
        pos, state = self._existing(ids)
        return state.gather(pos, "bits") if len(pos) else np.empty((0, (self._dim + 7) // 8), np.uint8)

    def hamming_candidates(self, queries, c: int, *, allow_ids=None, deny_ids=None, threads=None):
        """The first stage of two-stage search, with its second stage's
        scores: the c live rows nearest each query by Hamming distance on the
        sign bits, ties to the lower id (by row order within a segment, which
        is id order in an index written in id order), and their int8 cosine.
        Returns (distances int32 [M, c'], ids int64 [M, c'], cosine float32
        [M, c']), c' = min(c, rows), sorted by (distance, id). For merging
        shards' first stages exactly (pplx_kernels.distributed). allow_ids /
        deny_ids: as in search(), applied inside the scan."""
        if self._closed:
            raise ValueError("index: is closed")
        c = positive_int_arg(c, "c")
        state = self._state
        codes, bits, _ = self._encode(queries, "queries", need_bits=True)
        m = len(codes)
        found = []
        for part, allowed in zip(state.parts, self._allowed_rows(state, allow_ids, deny_ids)):
            if allowed is None:  # no removed row, no filter
                n, mask = min(c, part.count), None
            else:
                n, mask = min(c, len(allowed)), np.zeros(part.count, bool)
                mask[allowed] = True
            if n == 0:
                continue
            dist, rows = _topk(bits, part.bits, n, metric="hamming", threads=threads, row_mask=mask)
            cos, rows2 = _topk(codes, part.codes, n, metric="cosine", threads=threads,
                               database_norms=part.norms, candidates=rows)
            # Both hold the same n rows per query: line the cosine scores up
            # with the Hamming order.
            lined = np.empty_like(cos)
            q = np.arange(m)[:, None]
            lined[q, np.argsort(rows, axis=1)] = np.take_along_axis(cos, np.argsort(rows2, axis=1), 1)
            found.append((dist, part.ids[rows], lined))
        if not found:
            return np.empty((m, 0), np.int32), np.empty((m, 0), np.int64), np.empty((m, 0), np.float32)
        dist, ids, cos = (np.concatenate(x, axis=1) for x in zip(*found))
        near = np.lexsort((ids, dist), axis=1)[:, :c]
        return tuple(np.take_along_axis(x, near, 1) for x in (dist, ids, cos))

    def documents(self, ids) -> list:
        """Stored documents of these ids, in order: a dict, or None where a
        row has none (KeyError if an id is absent)."""
        pos, state = self._existing(ids)
        return state.documents(pos)

    # --- mutation --------------------------------------------------------------

    def _check_writable(self) -> None:
        if self._closed:
            raise ValueError("index: is closed")
        if self._readonly:
            raise ValueError("index: is read-only (opened with Index.load or readonly=True)")

    def add(self, vectors, ids=None, documents=None) -> np.ndarray:
        """Adds vectors [M, dim] (or one [dim]): int8 stored as is, float
        quantized with the index's scheme. ids: M distinct int64 values not
        in the index; None assigns consecutive ids after the largest id the
        index has held (removed ids are not reused). documents: None or M
        JSON-able dicts (or None), stored with the rows. Returns the ids."""
        return self._write(wal.ADD, vectors, ids, documents)

    def upsert(self, vectors, ids, documents=None) -> np.ndarray:
        """Adds rows, replacing the rows of ids already in the index (one
        log record: a crash never leaves an upsert half done)."""
        if ids is None:
            raise ValueError("ids: upsert needs the ids of the rows to add or replace")
        return self._write(wal.UPSERT, vectors, ids, documents)

    def _write(self, kind: int, vectors, ids, docs) -> np.ndarray:
        self._check_writable()
        codes, bits, _ = self._encode(vectors, "vectors")
        m = len(codes)
        given = None if ids is None else _ids_arg(ids, m)
        blobs = documents.encode(docs, m)
        with self._lock:
            self._check_writable()
            if given is None:
                if self._next_id + m - 1 > np.iinfo(np.int64).max:
                    raise ValueError("ids: no automatic ids left after the largest id; pass ids=")
                new_ids = np.arange(self._next_id, self._next_id + m, dtype=np.int64)
            else:
                new_ids = given
                if kind == wal.ADD:
                    present = new_ids[self._positions(new_ids) >= 0]
                    if len(present):
                        raise ValueError(f"ids: id {int(present[0])} is already in the index")
            if self._wal is not None:
                self._wal.append(wal.encode(kind, new_ids, codes, bits, blobs))
            self._apply(kind, new_ids, codes, bits, blobs)
        return new_ids

    def remove(self, ids) -> int:
        """Removes the rows with these user ids; every id must be present
        (KeyError otherwise, and nothing is removed). Returns the count."""
        self._check_writable()
        gone = np.unique(_ids_arg(ids, None, allow_repeats=True))
        with self._lock:
            self._check_writable()
            self._existing(gone)
            if self._wal is not None:
                self._wal.append(wal.encode(wal.REMOVE, gone))
            return self._apply(wal.REMOVE, gone)

    def _apply(self, kind: int, ids, codes=None, bits=None, blobs=None) -> int:
        """Applies one mutation (live or replayed from the log) under _lock.
        Removing an absent id is a no-op here (replay is idempotent)."""
        removed = 0
        if kind in (wal.REMOVE, wal.UPSERT):
            pos = self._positions(ids)
            removed = self._kill(pos[pos >= 0])
        if kind in (wal.ADD, wal.UPSERT) and len(ids):
            state = self._state
            start = state.total
            self._mem.append(codes, _norms(codes), bits, ids, blobs)
            self._next_id = max(self._next_id, int(ids.max()) + 1)
            idmap = state.idmap
            self._publish(None)
            if idmap is not None:
                new_pos = np.arange(start, start + len(ids), dtype=np.int64)
                self._state = self._state.with_idmap(idmap.add(ids, new_pos, self._state.live))
        return removed

    def _kill(self, pos: np.ndarray) -> int:
        if not len(pos):
            return 0
        state = self._state
        segs = list(self._segments)
        for part, _, rows in state.split(pos):
            if part.name is None:
                self._mem.kill(rows)
            else:
                i = next(j for j, s in enumerate(segs) if s.name == part.name)
                dead = np.zeros(part.count, bool) if part.dead is None else part.dead.copy()
                dead[rows] = True
                segs[i] = segments.with_dead(segs[i], dead)
                self._dirty.add(part.name)
        self._segments = tuple(segs)
        self._publish(state.idmap)
        if self._dir is None and 2 * self._state.live_count < self._state.total:
            self._compact_memory()  # in memory, removed rows are dropped once they are the majority
        return len(pos)

    def _publish(self, idmap) -> None:
        start = sum(s.count for s in self._segments)
        parts = self._segments + (self._mem.part(start),)
        self._state = State(parts, idmap)

    # --- search --------------------------------------------------------------

    def search(self, queries, k=10, *, mode="exact", oversample=None, allow_ids=None, deny_ids=None,
               min_score=None, threads=None):
        """Top-k rows by int8 cosine for queries [M, dim] (or one [dim]).

        Returns (scores float32 [M, k'], ids int64 [M, k']) with k' =
        min(k, rows allowed), best first, ties to the earlier row; 1-D for
        one 1-D query. allow_ids / deny_ids: only / never these ids (ids
        not in the index are ignored). min_score: results scoring below it
        become id -1 and score -inf (padding, at the end of each row).
        mode "two_stage" rescores the k * oversample nearest rows by Hamming
        distance (default oversample DEFAULT_OVERSAMPLE).
        """
        k, oversample = search_args(k, mode, oversample)
        min_score_arg(min_score)
        threads_arg(threads)
        if self._closed:
            raise ValueError("index: is closed")
        state = self._state  # one consistent state for the whole search
        codes, bits, single = self._encode(queries, "queries", need_bits=mode == "two_stage")
        scores, pos = state.scan(codes, bits, k, two_stage=mode == "two_stage", oversample=oversample,
                                 allowed=self._allowed_rows(state, allow_ids, deny_ids), threads=threads)
        scores, pos = apply_min_score(scores, pos, min_score)
        ids = np.full(pos.shape, -1, np.int64)
        hit = pos >= 0
        ids[hit] = state.gather(pos[hit], "ids")
        return (scores[0], ids[0]) if single else (scores, ids)

    def _allowed_rows(self, state: State, allow_ids, deny_ids) -> list:
        """Per part of state: None (every row) or the ascending live rows a
        search with these filters may return."""
        allow = deny = None
        if allow_ids is not None:
            allow = self._positions(_ids_arg(allow_ids, None, allow_repeats=True, name="allow_ids"), state)
            allow = _unique_positions(allow, state.total)
        if deny_ids is not None:
            deny = self._positions(_ids_arg(deny_ids, None, allow_repeats=True, name="deny_ids"), state)
            deny = _unique_positions(deny, state.total)
        return state.allowed_rows(allow, deny)

    def _encode(self, x, name: str, need_bits: bool = True):
        """(int8 codes [M, dim], packed bits [M, ceil(dim/8)] or None, single)."""
        if isinstance(x, Quantized):
            return self._quantized(x, name)
        x = array_arg(x, name)
        if x.dtype == np.int8:
            x, single = rows_arg(x, name)
            self._check_width(x, name)
            if x.size and x.min() < -127:
                row = int(np.nonzero((x == -128).any(axis=1))[0][0])
                raise ValueError(f"{name}: row {row} contains -128; int8 vectors must lie in [-127, 127]")
            bits = pack_bits(x) if need_bits else None
            return x, bits, single
        if x.dtype.kind != "f":
            raise TypeError(f"{name}: expected int8 or float vectors, got {x.dtype}")
        x, single = rows_arg(float32_arg(x, name), name)
        self._check_width(x, name)
        try:
            if need_bits:
                codes, bits = quantize_fused(x, scheme=self._scheme)
                return codes, bits, single
            return quantize(x, "int8", scheme=self._scheme), None, single
        except ValueError as exc:  # name our argument, not the quantizer's
            message = str(exc)
            raise ValueError(f"{name}: {message[3:] if message.startswith('x: ') else message}") from None

    def _quantized(self, q: Quantized, name: str):
        """Codes and bits an embedder quantized from the same floats, stored
        as they are (Embedder.encode_fused, encode_iter(..., "fused")): the
        same rows as adding those floats, if the schemes agree."""
        if q.scheme != self._scheme:
            raise ValueError(f"{name}: quantized with scheme {q.scheme!r}, but the index's scheme is "
                             f"{self._scheme!r}; queries would be quantized differently")
        if q.bitorder != "big":
            raise ValueError(f"{name}: the index stores bits MSB first (bitorder 'big'), got {q.bitorder!r}")
        codes, single = rows_arg(q.codes, name)
        bits, _ = rows_arg(q.bits, name)
        self._check_width(codes, name)
        if codes.size and codes.min() < -127:
            raise ValueError(f"{name}: codes contain -128; int8 vectors must lie in [-127, 127]")
        return codes, bits, single

    def _check_width(self, x: np.ndarray, name: str) -> None:
        if x.shape[1] != self._dim:
            raise ValueError(f"{name}: expected vectors of {self._dim} dimensions (the index's dim), got {x.shape[1]}")

    # --- durability --------------------------------------------------------------

    @classmethod
    def open(cls, path, *, create=False, dim=None, metric="cosine", scheme="tanh", model=None,
             mmap=True, readonly=False, flush_rows=FLUSH_ROWS) -> "Index":
        """Opens (create=True: or creates) an index directory for writing;
        readonly=True gives a snapshot of the last commit (like load).
        dim/scheme/model are needed to create one; when given for an
        existing index they must match it. mmap: map segment files instead
        of reading them. flush_rows: rows kept in the log before they
        become a segment."""
        path = _path_arg(path)
        flush_rows = positive_int_arg(flush_rows, "flush_rows")
        if readonly:
            index = cls.load(path, mmap=mmap)
        else:
            if not os.path.exists(path) and not create:
                raise FileNotFoundError(f"path: no index at {path} (pass create=True to make one)")
            storage.remove_stale_beside(path)
            index = directory.open_writer(cls, path, create=create, dim=dim, metric=metric, scheme=scheme,
                                 model=model, mmap=mmap)
            index._flush_rows = flush_rows
        if dim is not None and dim != index.dim:
            index.close()
            raise ValueError(f"dim: the index at {path} has dim {index.dim}, not {dim!r}")
        return index

    _flush_rows = FLUSH_ROWS

    def commit(self) -> None:
        """Makes every add/remove/upsert before it durable: fsyncs the log
        and publishes its length in a new manifest. Threads that commit at
        once share one fsync. A no-op in memory."""
        self._check_writable()
        if self._wal is None:
            return
        target = self._wal.end
        with self._commit_lock:
            if self._durable >= target and self._mem.n < self._flush_rows:
                return  # another thread's commit covered ours
            if self._mem.n >= self._flush_rows:
                with self._lock:
                    self._flush()
            else:
                self._write_manifest()
            self._merge_tail()

    def compact(self) -> None:
        """Rewrites the live rows as one segment (dropping removed rows) and
        commits. Searches, adds and removes go on meanwhile (commits wait);
        rows removed while it runs are removed from the new segment too."""
        self._check_writable()
        with self._commit_lock:
            with self._lock:
                if self._dir is None:
                    self._compact_memory()
                    return
                self._flush()
                n = len(self._segments)
                nothing_to_do = n <= 1 and not any(s.dead is not None for s in self._segments)
            if nothing_to_do:
                self._write_manifest()
            else:
                self._merge(0, n)

    def close(self) -> None:
        """Commits a writable index, releases its lock and files; later
        calls fail (search included). Closing twice is fine."""
        if self._closed:
            return
        try:
            if self._wal is not None and not self._readonly:
                self.commit()
        finally:
            self._release()

    def __del__(self):
        # Forgotten without close(): free the lock and files (no commit).
        if not getattr(self, "_closed", True):
            try:
                self._release()
            except Exception:
                pass

    def _release(self) -> None:
        self._closed = True
        if self._wal is not None:
            self._wal.close()
        storage.unlock(self._lock_fd)
        self._lock_fd = None

    def _compact_memory(self) -> None:
        state = self._state
        mem = Memtable(self._dim)
        for p in state.parts:
            rows = p.live_rows()
            if len(rows):
                mem.append(p.codes[rows], p.norms[rows], p.bits[rows], p.ids[rows], p.docs.get(rows))
        self._segments, self._mem = (), mem
        self._publish(None)

    def _write_manifest(self) -> None:
        """A new manifest for the current segments and log length (commit
        lock held). What it lists is taken at one moment under the
        mutation lock; the fsync and the writing happen after, so adds and
        removes wait only for that moment. The log is fsynced before the
        manifest is written: a manifest (tombstones included) never runs
        ahead of the durable log."""
        with self._lock:
            end, wal_name = self._wal.end, os.path.basename(self._wal.path)
            self._generation += 1
            generation, segs = self._generation, self._segments
            dirty = [s for s in segs if s.name in self._dirty]
            self._dirty -= {s.name for s in dirty}
            head = {"generation": generation, "dim": self._dim, "metric": self._metric, "scheme": self._scheme,
                    "model": self._model, "next_id": self._next_id, "created_by": storage.created_by()}
        self._wal.fsync()
        entries = {s.name: dict(s.entry, deleted=segments.write_deleted(self._dir, s.name, generation, s.dead))
                   for s in dirty}
        if entries:
            storage.fsync_dir(self._dir)
        manifest = dict(head, segments=[entries.get(s.name, s.entry) for s in segs],
                        wal={"file": wal_name, "bytes": end})
        storage.write_manifest(self._dir, manifest)
        with self._lock:
            self._durable = max(self._durable, end)
            self._segments = tuple(dataclasses.replace(s, entry=entries[s.name]) if s.name in entries else s
                                   for s in self._segments)
            self._publish(self._state.idmap)
            old, self._manifest = self._manifest, manifest
        if old is not None:
            storage.remove_files(self._dir, storage.listed_files(old) - storage.listed_files(manifest))

    def _flush(self) -> None:
        """The in-memory rows become segment seg-G and the log starts anew
        (both locks held). The new manifest makes everything durable at once."""
        if self._mem.n == 0:
            return
        self._generation += 1
        name = f"seg-{self._generation:06d}"
        part = self._state.parts[-1]
        entry = segments.write(self._dir, name, [(part, np.arange(part.count))], self._dim)
        seg = segments.open_segment(self._dir, entry, self._dim, part.start, mmap=self._mmap, verify=False)
        if part.dead is not None:
            seg = segments.with_dead(seg, part.dead)
            self._dirty.add(name)
        new_wal = os.path.join(self._dir, f"wal-{self._generation:06d}.log")
        wal.create(new_wal)
        storage.fsync_dir(self._dir)
        self._wal.close()
        self._wal = wal.Writer(new_wal, len(wal.MAGIC))
        self._durable = self._wal.end
        idmap = self._state.idmap
        self._segments = self._segments + (seg,)
        self._mem = Memtable(self._dim)
        self._publish(idmap)  # same positions: the rows only moved to disk
        self._write_manifest()

    def _merge_tail(self) -> None:
        """Merges the last MERGE_FANOUT segments while they share a size tier
        (commit lock held)."""
        def tier(seg):
            return int(math.log(max(seg.count, 1) / self._flush_rows + 1, MERGE_FANOUT))
        while len(self._segments) >= MERGE_FANOUT:
            tail = self._segments[-MERGE_FANOUT:]
            if len({tier(s) for s in tail}) != 1:
                break
            self._merge(len(self._segments) - MERGE_FANOUT, len(self._segments))

    def _merge(self, lo: int, hi: int) -> None:
        """Segments [lo, hi) become one segment of their live rows, and a
        manifest says so. Called with the commit lock only: the segment list
        cannot change (only flushes and merges change it, under the commit
        lock), but rows may be removed while the new segment is written."""
        with self._lock:
            old = self._segments[lo:hi]
            self._generation += 1
            name = f"seg-{self._generation:06d}"
        sources = [(s, s.live_rows()) for s in old]
        entry = segments.write(self._dir, name, sources, self._dim)
        storage.fsync_dir(self._dir)
        merged = segments.open_segment(self._dir, entry, self._dim, old[0].start, mmap=self._mmap, verify=False)
        with self._lock:
            now = self._segments[lo:hi]
            # Rows removed meanwhile: their place in the merged segment.
            dead, offset = np.zeros(merged.count, bool), 0
            for seg, (_, rows) in zip(now, sources):
                if seg.dead is not None:
                    dead[offset + np.flatnonzero(seg.dead[rows])] = True
                offset += len(rows)
            if dead.any():
                merged = segments.with_dead(merged, dead)
                self._dirty.add(merged.name)
            shift = sum(s.count for s in old) - merged.count
            after = tuple(s.moved(s.start - shift) for s in self._segments[hi:])
            self._segments = self._segments[:lo] + (merged,) + after
            self._dirty -= {s.name for s in old}
            idmap = self._state.idmap
            if idmap is not None:  # positions moved: move them in the id map too (O(n), no sort)
                idmap = idmap.remapped(_mover(old, sources, shift))
            self._publish(idmap)
        self._write_manifest()

    # --- save / load ---------------------------------------------------------------

    def save(self, path) -> None:
        """Writes the live rows (with documents) as a new index directory at
        `path`: a compaction into that directory. An index already there is
        replaced atomically (its manifest), anything else is refused."""
        path = _path_arg(path)
        if self._dir is not None and path == self._dir and self._wal is not None:
            self.commit()
            self.compact()
            return
        state = self._state
        directory.save_state(self, state, path)

    @classmethod
    def load(cls, path, *, mmap=True, verify=None) -> "Index":
        """A read-only snapshot of the index directory's last commit (also of
        a format-1 directory). mmap=True maps the files (opening reads only
        the manifest and the log); verify: check every file's sha256
        (default: only when mmap is False, where the files are read anyway)."""
        path = _path_arg(path)
        if verify is None:
            verify = not mmap
        if not os.path.isdir(path):
            if os.path.exists(path):
                raise IndexFormatError(f"{path}: not an index directory (it is a file)")
            raise FileNotFoundError(f"{path}: no such index directory")
        for attempt in range(_OPEN_RETRIES):
            try:
                if not os.path.exists(os.path.join(path, storage.MANIFEST)):
                    if os.path.exists(os.path.join(path, legacy.HEADER_FILE)):
                        return directory.load_legacy(cls, path, mmap=mmap, verify=verify)
                    raise IndexFormatError(f"{path}: not a pplx-kernels index (no {storage.MANIFEST})")
                manifest = storage.read_manifest(path)
                index = directory.from_manifest(cls, path, manifest, mmap=mmap, verify=verify)
                records, _ = directory.read_log(path, manifest, limit=manifest["wal"]["bytes"])
                with index._lock:
                    for r in records:
                        index._apply(r.kind, r.ids, r.codes, r.bits, r.docs)
                index._readonly = True
                return index
            except FileNotFoundError:
                if attempt == _OPEN_RETRIES - 1:
                    raise
        raise AssertionError("unreachable")


# --- helpers ------------------------------------------------------------------------


def search_args(k, mode, oversample) -> tuple[int, float]:
    """k and oversample (None: DEFAULT_OVERSAMPLE; ignored by mode="exact",
    but still checked) as search() takes them, and mode checked."""
    k = positive_int_arg(k, "k")
    if mode not in MODES:
        raise ValueError(f"mode: expected one of {MODES}, got {mode!r}")
    if oversample is None:
        oversample = DEFAULT_OVERSAMPLE
    if isinstance(oversample, bool) or not isinstance(oversample, (int, float, np.integer, np.floating)) \
            or not oversample >= 1 or math.isinf(oversample):
        raise ValueError(f"oversample: expected a finite number >= 1, got {oversample!r}")
    return k, float(oversample)


def min_score_arg(min_score) -> None:
    if min_score is not None and (isinstance(min_score, bool) or not isinstance(
            min_score, (int, float, np.integer, np.floating)) or math.isnan(min_score)):
        raise ValueError(f"min_score: expected None or a number, got {min_score!r}")


def apply_min_score(scores: np.ndarray, found: np.ndarray, min_score):
    """Results scoring below min_score become -1 / -inf padding."""
    if min_score is None:
        return scores, found
    found = np.where(scores >= min_score, found, -1)
    return np.where(found >= 0, scores, np.float32(-np.inf)).astype(np.float32), found


def filter_ids_arg(ids, name: str):
    """A filter's ids as int64 (None stays None), checked as search() checks them."""
    return None if ids is None else _ids_arg(ids, None, allow_repeats=True, name=name)


def _unique_positions(pos: np.ndarray, total: int) -> np.ndarray:
    """The ascending distinct positions >= 0 of pos (a filter's rows): by a
    mask over all rows when pos is long (O(total), no sort), else np.unique."""
    pos = pos[pos >= 0]
    if len(pos) * 16 < total:
        return np.unique(pos)
    seen = np.zeros(total, bool)
    seen[pos] = True
    return np.flatnonzero(seen)


def _mover(old: tuple, sources: list, shift: int):
    """move(positions) for a merge of the consecutive segments `old` whose
    rows `sources` were kept: kept rows get their merged position, the
    others -1; positions after the merged ones move down by `shift`."""
    start, n_old = old[0].start, sum(s.count for s in old)
    table, offset, new = np.full(n_old, -1, np.int64), 0, start
    for seg, (_, rows) in zip(old, sources):
        table[offset + rows] = np.arange(new, new + len(rows))
        offset, new = offset + seg.count, new + len(rows)

    def move(pos: np.ndarray) -> np.ndarray:
        out = pos.copy()
        inside = (pos >= start) & (pos < start + n_old)
        out[inside] = table[pos[inside] - start]
        out[pos >= start + n_old] -= shift
        return out
    return move


def _model_arg(model) -> dict:
    keys = ("name", "sha256", "path")
    if model is None:
        return dict.fromkeys(keys)
    if isinstance(model, str):
        return dict(dict.fromkeys(keys), name=model)
    if isinstance(model, dict) and set(model) <= set(keys) and all(
            v is None or isinstance(v, str) for v in model.values()):
        return {k: model.get(k) for k in keys}
    raise ValueError(f"model: expected None, a name, or a dict of 'name', 'sha256', 'path' strings, got {model!r}")


def _path_arg(path) -> str:
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(f"path: expected a path, got {type(path).__name__}")
    # The real path: writing through a symlink writes into its target.
    return os.path.realpath(os.fsdecode(os.fspath(path)))


def _ids_arg(ids, m, allow_repeats: bool = False, name: str = "ids") -> np.ndarray:
    """ids as a fresh int64 [m] array (any integer dtype that fits); one
    scalar id counts as [id]."""
    a = np.asarray(ids)
    if a.ndim == 0:
        a = a.reshape(1)
    if a.ndim != 1 or (a.dtype.kind not in "iu" and a.size):
        raise TypeError(f"{name}: expected a 1-D array of integers, got {a.dtype} of shape {a.shape}")
    if a.dtype.kind == "u" and a.size and a.max() > np.iinfo(np.int64).max:
        raise ValueError(f"{name}: values must fit in int64")
    a = a.astype(np.int64)
    if m is not None and len(a) != m:
        raise ValueError(f"{name}: expected {m} ids (one per vector), got {len(a)}")
    if not allow_repeats and len(a) > 1:
        s = np.sort(a)
        dup = s[1:][s[1:] == s[:-1]]
        if len(dup):
            raise ValueError(f"{name}: id {int(dup[0])} appears more than once")
    return a
