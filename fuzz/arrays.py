"""Turns fuzzer bytes into numpy arrays of arbitrary dtype, shape, strides
and values, adversarial ones (NaN, Inf, -0.0, -128, huge, tiny) often."""

from __future__ import annotations

import numpy as np

DTYPES = [np.float32, np.float16, np.float64, np.int8, np.uint8, np.int32, np.int64, np.bool_, np.complex64]
SPECIAL_FLOATS = [0.0, -0.0, np.nan, np.inf, -np.inf, 1e-45, -1e-45, 3.4e38, -3.4e38, 0.5, -0.5, 1e-30]
SPECIAL_INTS = [-128, -127, 0, 127, 1, -1]


# The only acceptable failures of a public function on fuzzed input.
CLEAN = (TypeError, ValueError)


def call(fn, *args, **kwargs):
    """fn's result, or None when it refused the input cleanly."""
    try:
        return fn(*args, **kwargs)
    except CLEAN:
        return None


class ArrayMaker:
    def __init__(self, fdp):
        self.fdp = fdp

    def int(self, lo, hi):
        return self.fdp.ConsumeIntInRange(lo, hi)

    def pick(self, options):
        return options[self.int(0, len(options) - 1)]

    def dtype(self, preferred=None):
        # most of the time the dtype the function expects, else anything
        if preferred is not None and self.int(0, 3):
            return np.dtype(preferred)
        return np.dtype(self.pick(DTYPES))

    def shape(self, ndim, max_dim=70):
        return tuple(self.int(0, max_dim) for _ in range(ndim))

    def array(self, shape, dtype):
        n = int(np.prod(shape)) if shape else 1
        raw = self.fdp.ConsumeBytes(n * dtype.itemsize)
        raw = raw + bytes(n * dtype.itemsize - len(raw))
        a = np.frombuffer(raw, dtype=dtype).copy().reshape(shape)
        if a.size and self.int(0, 1):  # sprinkle special values
            flat = a.reshape(-1)
            for _ in range(self.int(1, 8)):
                i = self.int(0, flat.size - 1)
                if dtype.kind in "fc":
                    flat[i] = self.pick(SPECIAL_FLOATS)
                elif dtype.kind == "i":
                    flat[i] = np.array(self.pick(SPECIAL_INTS)).astype(dtype)
        elif dtype.kind == "f" and self.int(0, 1):
            a = np.nan_to_num(a, nan=0.0, posinf=1.0, neginf=-1.0)  # mostly clean values too
        return self.layout(a)

    def layout(self, a):
        """Same values, other memory layouts: transposed, strided, offset."""
        choice = self.int(0, 4)
        if choice == 1 and a.ndim >= 2:
            return np.ascontiguousarray(a.swapaxes(-1, -2)).swapaxes(-1, -2)  # Fortran-like
        if choice == 2 and a.ndim >= 1:
            big = np.repeat(a, 2, axis=-1)
            return big[..., ::2]  # last axis strided
        if choice == 3 and a.ndim >= 1 and a.shape[0] > 1:
            return a[::-1]  # negative stride
        if choice == 4 and a.ndim >= 1:
            pad = np.zeros(a.shape[:-1] + (a.shape[-1] + 3,), a.dtype)
            pad[..., 1 : 1 + a.shape[-1]] = a
            return pad[..., 1 : 1 + a.shape[-1]]  # rows strided, last axis contiguous
        return a

    def threads(self):
        return self.pick([None, 1, 2, 3, 0, -1])
