"""User id -> global row position, in numpy: two sorted runs.

`base` holds most ids, `recent` the ones added since the last merge; an add
merges its batch into `recent` (a stable sort of two sorted runs is a
linear merge) and `recent` merges into `base` once it is a quarter of its
size, so adding n ids costs O(n log n) in total. Removed rows stay in the
runs until the next merge; a lookup checks liveness with the caller's
`live(positions)`. Every merge drops removed rows, and the index keeps
at most one live row per id, so a run holds each id at most once and the
live copy, if any, is in the newest run that holds the id.
"""

from __future__ import annotations

import numpy as np

_EMPTY = (np.empty(0, np.int64), np.empty(0, np.int64))


def _merge(a, b, live=None):
    ids, pos = np.concatenate([a[0], b[0]]), np.concatenate([a[1], b[1]])
    if live is not None and len(pos):
        keep = live(pos)
        ids, pos = ids[keep], pos[keep]
    order = np.argsort(ids, kind="stable")
    return ids[order], pos[order]


class IdMap:
    """Immutable: add() returns a new map (sharing arrays), so each published
    state keeps the map that matches its rows."""

    def __init__(self, runs):
        self._runs = runs  # (base, recent), each (sorted ids, positions)

    @classmethod
    def build(cls, ids: np.ndarray, positions: np.ndarray) -> "IdMap":
        order = np.argsort(ids, kind="stable")
        return cls(((ids[order], positions[order]), _EMPTY))

    def add(self, ids: np.ndarray, positions: np.ndarray, live) -> "IdMap":
        base, recent = self._runs
        recent = _merge(recent, (ids, positions), live)
        if len(recent[0]) > max(len(base[0]) // 4, 1 << 16):
            base, recent = _merge(base, recent, live), _EMPTY
        return IdMap((base, recent))

    def remapped(self, move) -> "IdMap":
        """The map after rows moved: move(positions) gives the new positions
        (-1: the row is gone). The id order does not change."""
        runs = []
        for ids, pos in self._runs:
            new = move(pos)
            keep = new >= 0
            runs.append((ids[keep], new[keep]))
        return IdMap(tuple(runs))

    def lookup(self, ids: np.ndarray, live) -> np.ndarray:
        """Positions of `ids` (-1 where absent or removed)."""
        order = np.argsort(ids, kind="stable")  # sorted needles: a cache-friendly search
        needles = ids[order]
        found = np.full(len(ids), -1, np.int64)
        for sorted_ids, pos in reversed(self._runs):
            todo = np.flatnonzero(found < 0)
            if not len(todo) or not len(sorted_ids):
                continue
            q = needles[todo]
            i = np.minimum(np.searchsorted(sorted_ids, q), len(sorted_ids) - 1)
            hit = sorted_ids[i] == q
            cand = pos[i[hit]]
            ok = live(cand)
            found[todo[hit][ok]] = cand[ok]
        out = np.empty_like(found)
        out[order] = found
        return out
