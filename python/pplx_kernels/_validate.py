"""Argument checks shared by the public functions. Each error names the
argument and says what was expected."""

from __future__ import annotations

import operator

import numpy as np

BITORDERS = ("big", "little")


def threads_arg(threads) -> int:
    """threads=None means the process-wide setting (0 for the core)."""
    if threads is None:
        return 0
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)):
        raise TypeError(f"threads: expected None or a positive int, got {type(threads).__name__}")
    if threads < 1:
        raise ValueError(f"threads: expected None or a positive int, got {threads}")
    return int(threads)


def positive_int_arg(value, name: str) -> int:
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError(f"{name}: expected a positive int, got {type(value).__name__}") from None
    if isinstance(value, bool) or v < 1:
        raise ValueError(f"{name}: expected a positive int, got {value!r}")
    return v


def bitorder_arg(bitorder) -> str:
    if bitorder not in BITORDERS:
        raise ValueError(f"bitorder: expected 'big' or 'little', got {bitorder!r}")
    return bitorder


def array_arg(x, name: str) -> np.ndarray:
    if isinstance(x, np.ndarray):
        return x
    if x is None or isinstance(x, (str, bytes, dict)):
        raise TypeError(f"{name}: expected a numpy array, got {type(x).__name__}")
    try:
        return np.asarray(x)
    except Exception as exc:  # objects numpy cannot read
        raise TypeError(f"{name}: expected an array, got {type(x).__name__}") from exc


def rows_arg(x: np.ndarray, name: str) -> tuple[np.ndarray, bool]:
    """A [N, D] view of a 1-D or 2-D array (and whether it was 1-D). Rows may
    be strided; elements within a row must be contiguous, else one copy."""
    if x.ndim == 1:
        x, single = x[None, :], True
    elif x.ndim == 2:
        single = False
    else:
        raise ValueError(f"{name}: expected a 1-D or 2-D array, got shape {x.shape}")
    if x.shape[1] == 0:
        raise ValueError(f"{name}: expected at least one dimension per vector, got shape {x.shape}")
    if x.shape[1] > 1 and x.strides[1] != x.itemsize or (x.shape[0] > 1 and x.strides[0] < 0):
        x = np.ascontiguousarray(x)
    return x, single


def float32_arg(x: np.ndarray, name: str) -> np.ndarray:
    if x.dtype == np.float32:
        return x
    if x.dtype.kind == "f":
        return x.astype(np.float32)
    raise TypeError(f"{name}: expected a float array (float32, float16 or float64), got {x.dtype}")


def dimensions_arg(dimensions, dim: int) -> int:
    if dimensions is None:
        return dim
    try:
        d = operator.index(dimensions)
    except TypeError:
        raise TypeError(f"dimensions: expected None or an int, got {type(dimensions).__name__}") from None
    if not 1 <= d <= dim:
        raise ValueError(f"dimensions: expected 1 <= dimensions <= {dim} (the input's width), got {d}")
    return d


def raise_non_finite(name: str, row: int) -> None:
    if row >= 0:
        raise ValueError(f"{name}: row {row} contains NaN or Inf")


def out_arg(out, shape: tuple, dtype, inputs, single: bool = False, name: str = "out"):
    """The caller's buffer for a result of `shape` and `dtype`, or None. The
    kernel writes the whole result into it, so it must match exactly, and it
    must not overlap what the kernel reads. With single=True (a 1-D input)
    out has shape[1:]; the view returned always has `shape`."""
    if out is None:
        return None
    want = tuple(shape)[1:] if single else tuple(shape)
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{name}: expected a numpy array, got {type(out).__name__}")
    if out.dtype != dtype:
        raise TypeError(f"{name}: expected dtype {np.dtype(dtype)}, got {out.dtype}")
    if out.shape != want:
        raise ValueError(f"{name}: expected shape {want}, got {out.shape}")
    if not out.flags.c_contiguous:
        raise ValueError(f"{name}: must be C-contiguous")
    if not out.flags.writeable:
        raise ValueError(f"{name}: is read-only")
    for a in inputs:
        if a is not None and np.may_share_memory(out, a):
            raise ValueError(f"{name}: overlaps an input array; pass a separate buffer")
    return out if out.shape == tuple(shape) else out.reshape(shape)


def out_pair_arg(out, shapes, dtypes, inputs, single: bool, what: str):
    """out=(a, b) for the functions that return two arrays, or (None, None)."""
    if out is None:
        return None, None
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise TypeError(f"out: expected a pair of arrays ({what}), got {type(out).__name__}")
    a = out_arg(out[0], shapes[0], dtypes[0], inputs, single, "out[0]")
    b = out_arg(out[1], shapes[1], dtypes[1], [*inputs, a], single, "out[1]")
    return a, b
