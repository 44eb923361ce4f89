"""int8 cosine and packed-bit Hamming: score matrices, norms and top-k search.

int8 vectors must lie in [-127, 127] (what the quantizers emit): -128 raises
a ValueError naming the argument, or counts as -127 with ``clamp=True``.
Rows hold at most 65536 elements, where int32 dot products stay exact.

Cosine scores are float32, computed as
``min(1, max(-1, (float32(dot) * rq) * rx))`` with ``r = float32(1 / norm)``
(float64 division) and ``norm = float32(sqrt(sum x**2))`` (float64 sqrt of
the exact integer sum), 0 for a zero vector: within a few float32 ulps of
``dot / (|q| |x|)``, and the same in every function and on every ISA.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from . import _core
from ._validate import array_arg, out_arg, out_pair_arg, rows_arg, threads_arg

MAX_DIM = 65536
METRICS = ("cosine", "hamming")


def _rows(x, name: str, dtype, what: str) -> tuple[np.ndarray, bool]:
    x = array_arg(x, name)
    if x.dtype != dtype:
        raise TypeError(f"{name}: expected {what} ({np.dtype(dtype)}), got {x.dtype}")
    x, single = rows_arg(x, name)
    if x.shape[1] > MAX_DIM:
        raise ValueError(f"{name}: rows hold {x.shape[1]} elements; at most {MAX_DIM} are supported")
    return x, single


def _database(x, name: str, dtype, what: str) -> np.ndarray:
    x = array_arg(x, name)
    if x.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D array [N, width], got shape {x.shape}")
    x, _ = _rows(x, name, dtype, what)
    return x


def _same_width(q: np.ndarray, x: np.ndarray, qname: str, xname: str, unit: str) -> None:
    if q.shape[1] != x.shape[1]:
        raise ValueError(
            f"{xname}: rows hold {x.shape[1]} {unit} but {qname} rows hold {q.shape[1]}"
        )


def _norms_arg(norms, n: int, name: str):
    if norms is None:
        return None
    norms = array_arg(norms, name)
    if norms.dtype != np.float32:
        raise TypeError(f"{name}: expected float32 norms, got {norms.dtype}")
    if norms.shape != (n,):
        raise ValueError(f"{name}: expected shape ({n},) (one norm per database row), got {norms.shape}")
    if not np.all(np.isfinite(norms)) or np.any(norms < 0):
        raise ValueError(f"{name}: norms must be finite and >= 0")
    return np.ascontiguousarray(norms)


def _bool_arg(v, name: str) -> bool:
    if not isinstance(v, (bool, np.bool_)):
        raise TypeError(f"{name}: expected a bool, got {type(v).__name__}")
    return bool(v)


def norms(x: npt.ArrayLike, *, clamp: bool = False, threads: int | None = None,
          out: np.ndarray | None = None) -> np.ndarray:
    """float32 L2 norms of int8 rows [N, D] (or one row [D]):
    float32(sqrt(sum x**2)) with the sum exact and the sqrt in float64,
    what an index stores for cosine search. out: float32 [N] (0-d for one
    row) to write into."""
    n_threads = threads_arg(threads)
    x, single = _rows(x, "x", np.int8, "int8 vectors")
    o = out_arg(out, (x.shape[0],), np.float32, [x], single)
    result = _core.norms(x, _bool_arg(clamp, "clamp"), o, n_threads)
    if out is not None:
        return out
    return result[0] if single else result


def cosine(a: npt.ArrayLike, b: npt.ArrayLike, *, norms: npt.ArrayLike | None = None, clamp: bool = False,
           threads: int | None = None, out: np.ndarray | None = None) -> np.ndarray:
    """Cosine similarity matrix of int8 rows: a [M, D] (or one query [D]) x
    b [N, D] -> float32 [M, N] (or [N]; in `out` when given); 0 where either
    norm is 0. norms: precomputed float32 norms of b (see ``norms``)."""
    n_threads = threads_arg(threads)
    a, single = _rows(a, "a", np.int8, "int8 vectors")
    b = _database(b, "b", np.int8, "int8 vectors")
    _same_width(a, b, "a", "b", "elements")
    nb = _norms_arg(norms, b.shape[0], "norms")
    o = out_arg(out, (a.shape[0], b.shape[0]), np.float32, [a, b, nb], single)
    result = _core.cosine(a, b, nb, _bool_arg(clamp, "clamp"), o, n_threads)
    if out is not None:
        return out
    return result[0] if single else result


def hamming(a: npt.ArrayLike, b: npt.ArrayLike, *, threads: int | None = None,
            out: np.ndarray | None = None) -> np.ndarray:
    """Hamming distance matrix of packed bit codes: uint8 a [M, B] (or one
    code [B]) x b [N, B] -> int32 [M, N] (or [N]; in `out` when given)."""
    n_threads = threads_arg(threads)
    a, single = _rows(a, "a", np.uint8, "packed bits")
    b = _database(b, "b", np.uint8, "packed bits")
    _same_width(a, b, "a", "b", "bytes")
    o = out_arg(out, (a.shape[0], b.shape[0]), np.int32, [a, b], single)
    result = _core.hamming(a, b, o, n_threads)
    if out is not None:
        return out
    return result[0] if single else result


def _k_arg(k) -> int:
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"k: expected a positive int, got {type(k).__name__}")
    if k <= 0:
        raise ValueError(f"k: expected a positive int, got {k}")
    return int(min(k, 2**62))


def _candidates_arg(candidates, m: int, n: int):
    if candidates is None:
        return None
    c = array_arg(candidates, "candidates")
    if c.dtype.kind not in "iu":
        raise TypeError(f"candidates: expected integer row ids (int64), got {c.dtype}")
    if c.ndim == 1 and m == 1:
        c = c[None, :]
    if c.ndim != 2 or c.shape[0] != m:
        raise ValueError(f"candidates: expected shape [{m}, C] (one row of ids per query), got {c.shape}")
    if c.shape[1] == 0:
        raise ValueError("candidates: expected at least one candidate per query")
    c = np.ascontiguousarray(c, dtype=np.int64)
    if c.size and (c.min() < -1 or c.max() >= n):
        raise ValueError(f"candidates: ids must be -1 (padding) or in [0, {n}) (database rows)")
    return c


def topk(queries: npt.ArrayLike, database: npt.ArrayLike, k: int, *, metric: str = "cosine",
         threads: int | None = None, database_norms: npt.ArrayLike | None = None,
         candidates: npt.ArrayLike | None = None, clamp: bool = False,
         out: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The k best database rows for each query, without building the [M, N]
    score matrix.

    cosine:  queries int8 [M, D] (or one [D]), database int8 [N, D]; scores
             float32, descending. database_norms: float32 [N] from ``norms``
             (used as given; with clamp=True pass ``norms(x, clamp=True)``).
    hamming: packed uint8 codes [M, B] and [N, B]; scores int32 distances,
             ascending.
    Ties go to the lower row id; results are identical for every thread count.

    Returns (scores [M, k'], ids int64 [M, k']) with k' = min(k, N), or 1-D
    for a 1-D query.

    candidates: int64 [M, C] database row ids per query (two-stage search:
    rescoring a first stage's hits). Each query is ranked among its own
    candidates only, and k' = min(k, C). -1 entries are padding and skipped;
    a repeated id counts once. Where a query has fewer than k' distinct
    candidates, the remaining columns hold id -1 and score -inf (cosine) or
    2**31 - 1 (Hamming). Other ids outside [0, N) raise ValueError.

    out: a pair (scores, ids) of arrays of the result's shapes and dtypes to
    write into (returned).
    """
    if metric not in METRICS:
        raise ValueError(f"metric: expected 'cosine' or 'hamming', got {metric!r}")
    n_threads = threads_arg(threads)
    k = _k_arg(k)
    clamp = _bool_arg(clamp, "clamp")
    dtype: type[np.integer]
    if metric == "cosine":
        dtype, what, unit = np.int8, "int8 vectors", "elements"
    else:
        dtype, what, unit = np.uint8, "packed bits", "bytes"
        if database_norms is not None:
            raise ValueError("database_norms: only used with metric='cosine'")
    q, single = _rows(queries, "queries", dtype, what)
    x = _database(database, "database", dtype, what)
    _same_width(q, x, "queries", "database", unit)
    if x.shape[0] == 0:
        raise ValueError("database: is empty; expected at least one row")
    c = _candidates_arg(candidates, q.shape[0], x.shape[0])
    kk = min(k, x.shape[0] if c is None else c.shape[1])
    score_dtype = np.float32 if metric == "cosine" else np.int32
    shape = (q.shape[0], kk)
    os_, oi = out_pair_arg(out, [shape, shape], [score_dtype, np.int64], [q, x, c], single, "scores, ids")
    scores: np.ndarray
    if metric == "cosine":
        nx = _norms_arg(database_norms, x.shape[0], "database_norms")
        scores, ids = _core.topk_cosine(q, x, k, nx, c, clamp, os_, oi, n_threads)
    else:
        scores, ids = _core.topk_hamming(q, x, k, c, os_, oi, n_threads)
    if out is not None:
        return out[0], out[1]
    return (scores[0], ids[0]) if single else (scores, ids)
