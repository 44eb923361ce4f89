"""A published state of an index: its parts (segments, then the rows still
in memory), the id map, and the filtered top-k scan over them.

A state is never changed once published; a mutation builds a new one. A
search reads `index._state` once and uses only that, so it sees one
consistent set of rows whatever writers do meanwhile.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np

from ..search import topk as _topk
from . import documents
from .ids import IdMap
from .segments import Part, readonly

# Candidate lists are [queries, rows] int64: queries go to the kernel in
# chunks so that one chunk's list stays under this many entries (32 MB).
_MAX_CANDIDATE_ENTRIES = 1 << 22
# A part with fewer runs of allowed rows than this is scanned run by run
# (plain slices, no candidate lists to build).
_MAX_RUNS = 64
# Up to this fraction of a part's rows excluded, the exclusion path (see
# _scan_part) beats candidate lists, which cost a pass per query.
_MAX_EXCLUDED_FRACTION = 0.25
_EXCLUDED_PER_BLOCK, _MIN_BLOCK = 1024, 4096


class Memtable:
    """Rows added since the last flush, in arrays with spare capacity:
    rows [0, n) are published; an add writes only past n (or into new
    arrays), a remove copies the tombstone mask, so published views never
    change."""

    def __init__(self, dim: int):
        self.codes = np.empty((0, dim), np.int8)
        self.norms = np.empty(0, np.float32)
        self.bits = np.empty((0, (dim + 7) // 8), np.uint8)
        self.ids = np.empty(0, np.int64)
        self.dead = None
        self.docs = documents.InMemory()
        self.n = 0

    def append(self, codes, norms, bits, ids, docs) -> None:
        n, m = self.n, len(ids)
        if n + m > len(self.ids):
            cap = max(n + m, 2 * len(self.ids), 16)
            for name in ("codes", "norms", "bits", "ids", "dead"):
                old = getattr(self, name)
                if old is None:
                    continue
                new = np.zeros((cap,) + old.shape[1:], old.dtype)
                new[:n] = old[:n]
                setattr(self, name, new)
        self.codes[n:n + m], self.norms[n:n + m], self.bits[n:n + m], self.ids[n:n + m] = codes, norms, bits, ids
        if self.dead is not None:
            self.dead[n:n + m] = False
        self.docs.extend(docs, m)
        self.n = n + m

    def kill(self, rows: np.ndarray) -> None:
        """Marks live rows removed (copy on write: published masks stay)."""
        dead = np.zeros(len(self.ids), bool) if self.dead is None else self.dead.copy()
        dead[rows] = True
        self.dead = dead

    def part(self, start: int) -> Part:
        n = self.n
        dead = None if self.dead is None else readonly(self.dead[:n])
        return Part(readonly(self.codes[:n]), readonly(self.norms[:n]), readonly(self.bits[:n]),
                    readonly(self.ids[:n]), self.docs, dead, start)


@dataclass(frozen=True)
class State:
    parts: tuple
    idmap: IdMap | None = field(default=None, compare=False)

    @cached_property
    def starts(self) -> np.ndarray:
        return np.array([p.start for p in self.parts] or [0], np.int64)

    @cached_property
    def total(self) -> int:
        return sum(p.count for p in self.parts)

    @cached_property
    def live_count(self) -> int:
        return self.total - sum(p.n_dead for p in self.parts)

    @cached_property
    def live_ids(self) -> np.ndarray:
        if not self.parts:
            return readonly(np.empty(0, np.int64))
        return readonly(np.concatenate([p.ids if p.dead is None else p.ids[~p.dead] for p in self.parts]))

    def with_idmap(self, idmap) -> "State":
        return replace(self, idmap=idmap)

    def build_idmap(self) -> IdMap:
        live = [(p.ids[rows], rows + p.start) for p in self.parts for rows in [p.live_rows()]]
        if not live:
            return IdMap.build(np.empty(0, np.int64), np.empty(0, np.int64))
        return IdMap.build(np.concatenate([i for i, _ in live]), np.concatenate([r for _, r in live]).astype(np.int64))

    def live(self, pos: np.ndarray) -> np.ndarray:
        """Which global positions hold a live row of this state."""
        pos = np.asarray(pos, np.int64)
        ok = (pos >= 0) & (pos < self.total)
        with_dead = [p for p in self.parts if p.dead is not None]
        if len(pos) <= 64:  # a few ids: look only at the parts they are in
            which = np.searchsorted(self.starts, pos, side="right") - 1
            with_dead = [self.parts[i] for i in set(which[ok].tolist()) if self.parts[i].dead is not None]
        for p in with_dead:
            sel = np.flatnonzero(ok & (pos >= p.start) & (pos < p.start + p.count))
            ok[sel] = ~p.dead[pos[sel] - p.start]
        return ok

    def lookup(self, ids: np.ndarray, idmap: IdMap) -> np.ndarray:
        return idmap.lookup(ids, self.live)

    def split(self, pos: np.ndarray):
        """(part index, row) of each global position, grouped by part:
        yields (part, indices into pos, rows)."""
        which = np.searchsorted(self.starts, pos, side="right") - 1
        for i in np.unique(which).tolist():
            sel = np.flatnonzero(which == i)
            part = self.parts[i]
            yield part, sel, pos[sel] - part.start

    def gather(self, pos: np.ndarray, key: str) -> np.ndarray:
        first = getattr(self.parts[0], key) if self.parts else np.empty(0)
        out = np.empty((len(pos),) + first.shape[1:], first.dtype)
        for part, sel, rows in self.split(pos):
            out[sel] = getattr(part, key)[rows]
        return out

    def documents(self, pos: np.ndarray) -> list:
        out = [None] * len(pos)
        for part, sel, rows in self.split(pos):
            for i, blob in zip(sel.tolist(), part.docs.get(rows.tolist())):
                out[i] = documents.decode(blob)
        return out

    # --- search ---------------------------------------------------------------

    def allowed_rows(self, allow_pos, deny_pos) -> list:
        """Per part: None (every row) or the ascending rows a search may return."""
        out = []
        for p in self.parts:
            lo, hi = p.start, p.start + p.count
            if allow_pos is not None:
                rows = allow_pos[(allow_pos >= lo) & (allow_pos < hi)] - lo
            elif p.dead is None and (deny_pos is None or not len(deny_pos)):
                out.append(None)
                continue
            else:
                rows = p.live_rows()
            if deny_pos is not None and len(deny_pos):
                denied = deny_pos[(deny_pos >= lo) & (deny_pos < hi)] - lo
                rows = rows[~np.isin(rows, denied)]
            out.append(rows)
        return out

    def scan(self, codes, bits, k: int, *, two_stage: bool, oversample: float, allowed: list, threads):
        """(scores [M, k'], positions [M, k']) over the allowed rows of every
        part: ties to the lower global position, -1 / -inf padding."""
        m = len(codes)
        n_allowed = sum(p.count if rows is None else len(rows) for p, rows in zip(self.parts, allowed))
        kk = min(k, n_allowed)
        if m == 0 or kk == 0:
            return np.empty((m, kk), np.float32), np.empty((m, kk), np.int64)
        all_scores, all_pos = [], []
        for p, rows in zip(self.parts, allowed):
            n_rows = p.count if rows is None else len(rows)
            if n_rows == 0:
                continue
            s, r = _scan_part(p, rows, codes, bits, k, two_stage, oversample, threads)
            all_scores.append(s)
            all_pos.append(np.where(r >= 0, r + p.start, -1))
        return _merge_sorted(list(zip(all_scores, all_pos)), kk)  # parts in position order


def _scan_part(p: Part, rows, codes, bits, k: int, two_stage: bool, oversample: float, threads):
    """Top-k of one part, restricted to `rows` (None: all), by one of three
    exact paths, chosen by cost:
      runs       few excluded rows (removed or denied) leave a few runs of
                 consecutive rows: each is scanned as a plain slice;
      exclusion  up to a quarter of the rows excluded: per block of rows,
                 a plain scan for the top (k + excluded in the block), then
                 the excluded rows dropped (at most that many can be in it,
                 so the block's k best allowed rows remain);
      candidates otherwise (allow-lists): the rows go to the kernels'
                 candidate path, scored for each query alone."""
    if rows is None:
        return _scan(p.codes, p.norms, p.bits, None, codes, bits, k, two_stage, oversample, threads)
    breaks = np.flatnonzero(np.diff(rows) != 1) + 1
    if len(breaks) < _MAX_RUNS:
        firsts = np.concatenate([[0], breaks])
        lasts = np.concatenate([breaks, [len(rows)]])
        results = []
        for a, b in zip(rows[firsts].tolist(), (rows[lasts - 1] + 1).tolist()):
            s, r = _scan(p.codes[a:b], p.norms[a:b], p.bits[a:b], None, codes, bits, k, two_stage,
                         oversample, threads)
            results.append((s, np.where(r >= 0, r + a, -1)))
        return _merge_sorted(results, min(k, len(rows)))
    excluded = p.count - len(rows)
    if excluded <= _MAX_EXCLUDED_FRACTION * p.count:
        allowed = np.zeros(p.count, bool)
        allowed[rows] = True
        # Blocks of rows holding about _EXCLUDED_PER_BLOCK excluded rows each:
        # the kernels' top-k stays cheap (a top-10,000 costs 2.5x a top-10).
        block = int(min(p.count, max(_MIN_BLOCK, p.count * _EXCLUDED_PER_BLOCK // max(excluded, 1))))
        results = []
        for a in range(0, p.count, block):
            b = min(p.count, a + block)
            s, r = _scan_excluding(p.codes[a:b], p.norms[a:b], p.bits[a:b], allowed[a:b], codes, bits, k,
                                   two_stage, oversample, threads)
            if s is not None:
                results.append((s, np.where(r >= 0, r + a, -1)))
        return _merge_sorted(results, min(k, len(rows)))
    return _scan(p.codes, p.norms, p.bits, rows, codes, bits, k, two_stage, oversample, threads)


def _scan_excluding(db_codes, db_norms, db_bits, allowed, codes, bits, k, two_stage, oversample, threads):
    """Top-k over the allowed rows of a database: the top (k + excluded)
    of all rows, less the excluded ones, rescored as candidates (so scores
    and order are the kernel's). (None, None) when no row is allowed."""
    n_ok = int(np.count_nonzero(allowed))
    excluded = len(allowed) - n_ok
    if n_ok == 0:
        return None, None
    if excluded == 0:
        return _scan(db_codes, db_norms, db_bits, None, codes, bits, k, two_stage, oversample, threads)
    n_cand = min(n_ok, math.ceil(k * oversample))
    if two_stage and n_cand < n_ok:
        _, hits = _topk(bits, db_bits, n_cand + excluded, metric="hamming", threads=threads)
        cand = _first_allowed(hits, allowed, n_cand)
    else:
        _, hits = _topk(codes, db_codes, k + excluded, metric="cosine", threads=threads, database_norms=db_norms)
        cand = _first_allowed(hits, allowed, min(k, n_ok))
    return _topk(codes, db_codes, k, metric="cosine", threads=threads, database_norms=db_norms, candidates=cand)


def _first_allowed(hits: np.ndarray, allowed: np.ndarray, n: int) -> np.ndarray:
    """The first n allowed rows of each row of hits (-1 padding)."""
    keep = (hits >= 0) & allowed[np.maximum(hits, 0)]
    order = np.argsort(~keep, axis=1, kind="stable")[:, :n]  # kept entries first, in their order
    first = np.take_along_axis(hits, order, 1)
    return np.where(np.take_along_axis(keep, order, 1), first, -1)


def _merge_sorted(results: list, kk: int):
    """The kk best of per-run (scores, rows), runs in row order: ties keep
    the earlier run, i.e. the lower row."""
    scores = np.concatenate([s for s, _ in results], axis=1)
    rows = np.concatenate([r for _, r in results], axis=1)
    if len(results) > 1:
        order = np.argsort(-scores, axis=1, kind="stable")[:, :kk]
        scores, rows = np.take_along_axis(scores, order, 1), np.take_along_axis(rows, order, 1)
    return scores[:, :kk], rows[:, :kk]


def _scan(db_codes, db_norms, db_bits, rows, codes, bits, k: int, two_stage: bool, oversample: float, threads):
    """Top-k over a database (rows: None, or the candidate rows of it)."""
    n_rows = len(db_codes) if rows is None else len(rows)
    n_cand = min(n_rows, math.ceil(k * oversample))
    m = len(codes)
    if rows is not None:
        step = max(1, _MAX_CANDIDATE_ENTRIES // max(1, n_rows))
        parts_s, parts_r = [], []
        for lo in range(0, m, step):
            q = slice(lo, lo + step)
            cand = np.broadcast_to(rows, (len(codes[q]), n_rows))
            if two_stage and n_cand < n_rows:
                _, cand = _topk(bits[q], db_bits, n_cand, metric="hamming", threads=threads, candidates=cand)
            s, r = _topk(codes[q], db_codes, k, metric="cosine", threads=threads,
                         database_norms=db_norms, candidates=cand)
            parts_s.append(s)
            parts_r.append(r)
        return np.concatenate(parts_s), np.concatenate(parts_r)
    cand = None
    if two_stage and n_cand < n_rows:
        _, cand = _topk(bits, db_bits, n_cand, metric="hamming", threads=threads)
    return _topk(codes, db_codes, k, metric="cosine", threads=threads, database_norms=db_norms, candidates=cand)
