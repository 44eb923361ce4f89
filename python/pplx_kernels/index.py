"""A flat in-memory index of int8 vectors with exact and two-stage search.

Each row holds an int8 vector, its float32 L2 norm, its packed sign bits
(MSB first) and an int64 user id. Where the bits come from:
  - float vectors are quantized with the index's scheme by quantize_fused,
    and the bits are the signs of the *float* values (a value that rounds
    to int8 0 keeps its sign, as pplx-embed's binary output does);
  - int8 vectors are stored as given and the bits are their signs, with
    0 counted as positive (x >= 0 -> 1), the same rule as pack_bits.
Queries follow the same rules, so a float query meets float-built bits.

Search modes:
  exact      int8 cosine top-k over every row.
  two_stage  Hamming top-(k * oversample) over the bits, then int8 cosine
             on those candidates only; with the default oversample, recall@10
             against exact search measured >= 0.95 on real embeddings
             (tests/test_index.py reports the figures).

Threads: mutations (add, remove) hold a lock; searches take no lock. The
index publishes its rows as an immutable snapshot (views of the first
`count` rows); a mutation writes only rows past every published snapshot or
into new arrays, then publishes a new snapshot. A search therefore always
sees one consistent state, before or after any concurrent mutation.

Growth is amortized: storage capacity doubles, so adding n vectors in any
number of batches copies O(n) data in total. remove() compacts (O(count)).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import numpy as np

from . import storage
from ._validate import array_arg, float32_arg, positive_int_arg, rows_arg, threads_arg
from .quantize import SCHEMES, pack_bits, quantize, quantize_fused
from .search import norms as _norms
from .search import topk as _topk

METRICS = ("cosine",)
MODES = ("exact", "two_stage")
# Two-stage recall@10 against exact search, on the default model's stdlib
# docstring embeddings (384 bits, not trained for binary codes), first passed
# 0.95 at oversample 6 for one-line queries (3 for whole-docstring queries);
# 10 leaves a margin. tests/test_index.py measures it on every run.
DEFAULT_OVERSAMPLE = 10


@dataclass(frozen=True)
class _Rows:
    """One published state of the index: equal-length, read-only views."""
    codes: np.ndarray  # int8 [n, dim]
    norms: np.ndarray  # float32 [n]
    bits: np.ndarray   # uint8 [n, ceil(dim / 8)]
    ids: np.ndarray    # int64 [n]


def _readonly(a: np.ndarray) -> np.ndarray:
    v = a.view()
    v.flags.writeable = False
    return v


class Index:
    """Flat int8 index with user ids; see the module docstring."""

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
        self._lock = threading.Lock()
        # Storage with spare capacity; rows [0, len) are published in _rows.
        self._codes = np.empty((0, self._dim), np.int8)
        self._norms = np.empty(0, np.float32)
        self._bits = np.empty((0, (self._dim + 7) // 8), np.uint8)
        self._ids = np.empty(0, np.int64)
        self._publish(0)
        self._id_set = None  # built on the first add/remove (loading stays O(1))

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
        """{"name": ..., "sha256": ...} of the model that made the vectors
        (metadata only; None values where unknown)."""
        return dict(self._model)

    @property
    def ids(self) -> np.ndarray:
        """User ids in row order (read-only int64 view)."""
        return self._rows.ids

    def __len__(self) -> int:
        return len(self._rows.ids)

    def __repr__(self) -> str:
        return (f"Index(dim={self._dim}, metric={self._metric!r}, scheme={self._scheme!r}, "
                f"count={len(self)}, model={self._model['name']!r})")

    # --- mutation --------------------------------------------------------------

    def add(self, vectors, ids=None) -> np.ndarray:
        """Adds vectors [M, dim] (or one [dim]): int8 stored as is, float
        quantized with the index's scheme. ids: M distinct int64 values not
        yet in the index; None assigns consecutive ids after the largest
        id the index has held (removed ids are not reused).
        Returns the ids added."""
        codes, bits, _ = self._encode(vectors, "vectors")
        m = len(codes)
        new_norms = _norms(codes) if m else np.empty(0, np.float32)
        given = None if ids is None else _ids_arg(ids, m)
        with self._lock:
            id_set = self._ensure_id_set()
            if given is None:
                if self._next_id + m - 1 > np.iinfo(np.int64).max:
                    raise ValueError("ids: no automatic ids left after the largest id; pass ids=")
                new_ids = np.arange(self._next_id, self._next_id + m, dtype=np.int64)
            else:
                new_ids = given
                for i in new_ids.tolist():
                    if i in id_set:
                        raise ValueError(f"ids: id {i} is already in the index")
            n = len(self)
            self._reserve(n + m)
            self._codes[n:n + m] = codes
            self._norms[n:n + m] = new_norms
            self._bits[n:n + m] = bits
            self._ids[n:n + m] = new_ids
            id_set.update(new_ids.tolist())
            if m:
                self._next_id = max(self._next_id, int(new_ids.max()) + 1)
            self._publish(n + m)
        return new_ids

    def remove(self, ids) -> int:
        """Removes the rows with these user ids; every id must be present
        (KeyError otherwise, and nothing is removed). Returns the count."""
        gone = _ids_arg(ids, None, allow_repeats=True)
        with self._lock:
            id_set = self._ensure_id_set()
            missing = [i for i in np.unique(gone).tolist() if i not in id_set]
            if missing:
                more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
                raise KeyError(f"ids: not in the index: {missing[:5]}{more}")
            rows = self._rows
            keep = ~np.isin(rows.ids, gone)
            # New arrays: published snapshots still point at the old ones.
            self._codes = rows.codes[keep]
            self._norms = rows.norms[keep]
            self._bits = rows.bits[keep]
            self._ids = rows.ids[keep]
            id_set.difference_update(gone.tolist())
            self._publish(len(self._ids))
            return len(rows.ids) - len(self._ids)

    def _reserve(self, need: int) -> None:
        cap = len(self._ids)
        if need <= cap and self._ids.flags.writeable:
            return
        cap = max(need, 2 * cap, 16)
        n = len(self)
        for name in ("_codes", "_norms", "_bits", "_ids"):
            old = getattr(self, name)
            new = np.empty((cap,) + old.shape[1:], old.dtype)
            new[:n] = old[:n]
            setattr(self, name, new)

    def _publish(self, n: int) -> None:
        self._rows = _Rows(_readonly(self._codes[:n]), _readonly(self._norms[:n]),
                           _readonly(self._bits[:n]), _readonly(self._ids[:n]))

    def _ensure_id_set(self) -> set:
        if self._id_set is None:
            ids = self._rows.ids
            self._id_set = set(ids.tolist())
            # Automatic ids continue after the largest ever seen; never reused.
            self._next_id = int(ids.max()) + 1 if len(ids) else 0
        return self._id_set

    # --- search --------------------------------------------------------------

    def search(self, queries, k=10, *, mode="exact", oversample=None, threads=None):
        """Top-k rows by int8 cosine for queries [M, dim] (or one [dim]).

        Returns (scores float32 [M, k'], ids int64 [M, k']) with k' =
        min(k, len), best first, ties to the earlier row; 1-D for one
        1-D query. mode "two_stage" rescores the k * oversample nearest
        rows by Hamming distance (default oversample DEFAULT_OVERSAMPLE).
        """
        k = positive_int_arg(k, "k")
        if mode not in MODES:
            raise ValueError(f"mode: expected one of {MODES}, got {mode!r}")
        if oversample is None:  # (ignored by mode="exact", but still checked)
            oversample = DEFAULT_OVERSAMPLE
        if isinstance(oversample, bool) or not isinstance(oversample, (int, float, np.integer, np.floating)) \
                or not oversample >= 1 or math.isinf(oversample):
            raise ValueError(f"oversample: expected a finite number >= 1, got {oversample!r}")
        threads_arg(threads)
        rows = self._rows  # one consistent snapshot for the whole search
        codes, bits, single = self._encode(queries, "queries", need_bits=mode == "two_stage")
        n, m = len(rows.ids), len(codes)
        kk = min(k, n)
        if m == 0 or kk == 0:
            scores, ids = np.empty((m, kk), np.float32), np.empty((m, kk), np.int64)
        else:
            candidates = None
            n_cand = min(n, math.ceil(k * oversample))
            if mode == "two_stage" and n_cand < n:
                _, candidates = _topk(bits, rows.bits, n_cand, metric="hamming", threads=threads)
            scores, pos = _topk(codes, rows.codes, k, metric="cosine", threads=threads,
                                database_norms=rows.norms, candidates=candidates)
            ids = rows.ids[pos]
        return (scores[0], ids[0]) if single else (scores, ids)

    def _encode(self, x, name: str, need_bits: bool = True):
        """(int8 codes [M, dim], packed bits [M, ceil(dim/8)] or None, single)."""
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

    def _check_width(self, x: np.ndarray, name: str) -> None:
        if x.shape[1] != self._dim:
            raise ValueError(f"{name}: expected vectors of {self._dim} dimensions (the index's dim), got {x.shape[1]}")

    # --- persistence -------------------------------------------------------------

    def save(self, path, *, attachments=None) -> None:
        """Writes the index to directory `path` (see storage.py), replacing
        an index already there atomically. attachments: extra files saved
        and checksummed with it, {file name: bytes or a path to copy}."""
        rows = self._rows
        header = {"dim": self._dim, "count": len(rows.ids), "metric": self._metric,
                  "scheme": self._scheme, "model": self._model, "created_by": _version()}
        storage.save(path, header, {"codes": rows.codes, "norms": rows.norms,
                                    "bits": rows.bits, "ids": rows.ids}, attachments)

    @classmethod
    def load(cls, path, *, mmap=True, verify=None) -> "Index":
        """Opens an index directory. mmap=True maps the files read-only
        (opening reads only the header; the first add or remove copies the
        rows into memory). verify: check every file's sha256 (default: only
        when mmap is False, where the files are read anyway)."""
        loaded = storage.load(path, mmap=mmap, verify=verify)
        h = loaded.header
        if h.get("metric") not in METRICS or h.get("scheme") not in SCHEMES:
            raise storage.IndexFormatError(
                f"{path}: header.json has an unknown metric or scheme ({h.get('metric')!r}, {h.get('scheme')!r})")
        index = cls(h["dim"], metric=h["metric"], scheme=h["scheme"], model=h.get("model"))
        a = loaded.arrays
        index._codes, index._norms, index._bits, index._ids = a["codes"], a["norms"], a["bits"], a["ids"]
        index._publish(h["count"])
        return index


def _version() -> str:
    from . import __version__
    return f"pplx-kernels {__version__}"


def _model_arg(model) -> dict:
    if model is None:
        return {"name": None, "sha256": None}
    if isinstance(model, str):
        return {"name": model, "sha256": None}
    if isinstance(model, dict) and set(model) <= {"name", "sha256"} and all(
            v is None or isinstance(v, str) for v in model.values()):
        return {"name": model.get("name"), "sha256": model.get("sha256")}
    raise ValueError(f"model: expected None, a name, or {{'name': str, 'sha256': str}}, got {model!r}")


def _ids_arg(ids, m, allow_repeats: bool = False) -> np.ndarray:
    """ids as a fresh int64 [m] array (any integer dtype that fits); one
    scalar id counts as [id]."""
    a = np.asarray(ids)
    if a.ndim == 0:
        a = a.reshape(1)
    if a.ndim != 1 or (a.dtype.kind not in "iu" and a.size):
        raise TypeError(f"ids: expected a 1-D array of integers, got {a.dtype} of shape {a.shape}")
    if a.dtype.kind == "u" and a.size and a.max() > np.iinfo(np.int64).max:
        raise ValueError("ids: values must fit in int64")
    a = a.astype(np.int64)
    if m is not None and len(a) != m:
        raise ValueError(f"ids: expected {m} ids (one per vector), got {len(a)}")
    if not allow_repeats and len(a) > 1:
        s = np.sort(a)
        dup = s[1:][s[1:] == s[:-1]]
        if len(dup):
            raise ValueError(f"ids: id {int(dup[0])} appears more than once")
    return a
