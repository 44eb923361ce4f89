"""Checks the tanh int8 kernel of every ISA level against the float64
formula on every non-negative float32 below 10 (about 1.09e9 values; above
10 every code is 127), and the negative of each. Takes about two minutes on
one core; .ci/run runs it (the test suite runs a dense sample of the sweep).

    PYTHONPATH=python python scripts/verify_tanh_exhaustive.py
"""

import sys
import time

import numpy as np

import pplx_kernels as pk

CHUNK = 1 << 22
LIMIT = int(np.float32(10.0).view(np.int32))


def main():
    levels = sys.argv[1:] or pk.available_isas()
    start = time.time()
    mismatches = {level: 0 for level in levels}
    for lo in range(0, LIMIT, CHUNK):
        bits = np.arange(lo, min(lo + CHUNK, LIMIT), dtype=np.int32)
        x = bits.view(np.float32)
        x = np.concatenate([x, -x]).reshape(-1, 1024) if x.size % 512 == 0 else np.concatenate([x, -x])[None]
        ref = np.clip(np.rint(127.0 * np.tanh(x.astype(np.float64))), -127, 127).astype(np.int8)
        for level in levels:
            pk.set_isa(level)
            got = pk.quantize(x, scheme="tanh")
            bad = int((got != ref).sum())
            if bad:
                i = np.flatnonzero((got != ref).ravel())[0]
                print(f"{level}: x={x.ravel()[i]!r} got {got.ravel()[i]} want {ref.ravel()[i]}")
            mismatches[level] += bad
    print(f"checked {2 * LIMIT} values in {time.time() - start:.0f}s; mismatches: {mismatches}")
    return 1 if any(mismatches.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
