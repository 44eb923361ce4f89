"""The int8 schemes as DESIGN.md defines them, in plain numpy: the
references the quantize and the embedder tests compare the kernels with,
exactly."""

import numpy as np


def reference_tanh(x):
    """The pplx scheme in float64, as DESIGN.md defines it."""
    q = np.rint(127.0 * np.tanh(x.astype(np.float64)))  # numpy rint rounds half to even
    return np.clip(q, -127, 127).astype(np.int8)


def reference_absmax(x):
    """Per row: s = float32(127 / max|x|), q = rint(float32(x * s)); rows
    whose max|x| < 2^-100 are first scaled by 2^100 (exact)."""
    x = x.astype(np.float32)
    m = np.abs(x).max(axis=1, keepdims=True)
    pre = np.where(m < np.float32(2.0**-100), np.float32(2.0**100), np.float32(1.0)).astype(np.float32)
    xs = (x * pre).astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):  # all-zero rows: replaced below
        s = (np.float32(127.0) / (m * pre)).astype(np.float32)
        q = np.rint((xs * s).astype(np.float32))
    q = np.where(m == 0, 0, q)
    return np.clip(q, -127, 127).astype(np.int8)
