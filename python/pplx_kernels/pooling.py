"""Mean pooling of transformer hidden states."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from . import _core
from ._validate import array_arg, out_arg, threads_arg


def _hidden_arg(hidden: npt.ArrayLike, ndim: int) -> np.ndarray:
    hidden = array_arg(hidden, "hidden")
    if hidden.dtype.kind != "f":
        raise TypeError(f"hidden: expected float32 or float16, got {hidden.dtype}")
    if hidden.dtype not in (np.float32, np.float16):
        hidden = hidden.astype(np.float32)
    if hidden.ndim != ndim:
        raise ValueError(f"hidden: expected {ndim} dimensions, got shape {hidden.shape}")
    if hidden.shape[-1] == 0:
        raise ValueError(f"hidden: expected a hidden size of at least 1, got shape {hidden.shape}")
    if hidden.shape[-1] > 1 and hidden.strides[-1] != hidden.itemsize or min(hidden.strides) < 0:
        hidden = np.ascontiguousarray(hidden)
    return hidden


def _check_finite(out: np.ndarray, what: str) -> np.ndarray:
    finite = np.isfinite(out).all(axis=1)
    if not finite.all():
        row = int(np.argmin(finite))
        raise ValueError(f"hidden: {what} {row} contains NaN or Inf in the tokens it pools")
    return out


def mean_pool(hidden: npt.ArrayLike, attention_mask: npt.ArrayLike | None, *, threads: int | None = None,
              out: np.ndarray | None = None) -> np.ndarray:
    """Mean of hidden[b, t] over the tokens t with attention_mask[b, t] != 0.

    hidden: float32 or float16 [B, S, H]; attention_mask: int64, int32 or
    bool [B, S] (None pools every token). Returns float32 [B, H] (in `out`
    when given); a row with no tokens gives zeros.
    """
    hidden = _hidden_arg(hidden, 3)
    mask = None
    if attention_mask is not None:
        m = array_arg(attention_mask, "attention_mask")
        if m.dtype.kind not in "biu":
            raise TypeError(f"attention_mask: expected int64, int32 or bool, got {m.dtype}")
        if m.shape != hidden.shape[:2]:
            raise ValueError(
                f"attention_mask: expected shape {hidden.shape[:2]} (hidden's [B, S]), got {m.shape}"
            )
        mask = np.ascontiguousarray(m != 0).view(np.uint8)
    n_threads = threads_arg(threads)
    o = out_arg(out, (hidden.shape[0], hidden.shape[2]), np.float32, [hidden, mask])
    return _check_finite(_core.mean_pool(hidden, mask, o, n_threads), "batch row")


def mean_pool_spans(hidden: npt.ArrayLike, spans: npt.ArrayLike, *, threads: int | None = None,
                    out: np.ndarray | None = None) -> np.ndarray:
    """Mean of hidden[start:end] for each [start, end) row of spans, over one
    sequence hidden [S, H] (late chunking). Returns float32 [n, H] (in `out`
    when given); an empty span gives zeros."""
    hidden = _hidden_arg(hidden, 2)
    spans = array_arg(spans, "spans")
    if spans.dtype.kind not in "iu":
        raise TypeError(f"spans: expected integer [start, end) pairs, got {spans.dtype}")
    if spans.ndim != 2 or spans.shape[1] != 2:
        raise ValueError(f"spans: expected shape [n, 2], got {spans.shape}")
    spans = np.ascontiguousarray(spans, dtype=np.int64)
    seq = hidden.shape[0]
    bad = (spans[:, 0] < 0) | (spans[:, 1] < spans[:, 0]) | (spans[:, 1] > seq)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(
            f"spans: span {i} = [{spans[i, 0]}, {spans[i, 1]}) must satisfy 0 <= start <= end <= {seq}"
        )
    n_threads = threads_arg(threads)
    o = out_arg(out, (spans.shape[0], hidden.shape[1]), np.float32, [hidden, spans])
    return _check_finite(_core.mean_pool_spans(hidden, spans, o, n_threads), "span")
