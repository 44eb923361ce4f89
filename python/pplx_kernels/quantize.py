"""int8 and binary quantization, and bit packing."""

from __future__ import annotations

import numpy as np

from . import _core
from ._validate import (
    array_arg,
    bitorder_arg,
    dimensions_arg,
    float32_arg,
    out_arg,
    out_pair_arg,
    raise_non_finite,
    rows_arg,
    threads_arg,
)

QUANTIZATIONS = ("int8", "binary", "ubinary")
SCHEMES = ("tanh", "absmax")


def _float_rows(x, dimensions):
    x = float32_arg(array_arg(x, "x"), "x")
    x, single = rows_arg(x, "x")
    d = dimensions_arg(dimensions, x.shape[1])
    return x[:, :d], single


def _scheme_arg(scheme) -> str:
    if scheme not in SCHEMES:
        raise ValueError(f"scheme: expected 'tanh' or 'absmax', got {scheme!r}")
    return scheme


def quantize(x, quantization="int8", *, scheme="tanh", dimensions=None, bitorder="big", threads=None,
             out=None):
    """Quantizes float vectors [N, D] (or one vector [D]).

    quantization:
      "int8"    -> int8 [N, d]; scheme "tanh" (pplx-embed: round(127 tanh x))
                   or "absmax" (per vector, largest |x| -> 127)
      "binary"  -> int8 [N, d] of +1 (x >= 0) and -1
      "ubinary" -> uint8 [N, ceil(d/8)], packbits(x >= 0) in `bitorder`
    dimensions keeps the first d dimensions (Matryoshka) before quantizing.
    out: an array of the result's dtype and shape to write into (returned);
    its contents are unspecified when the call raises.
    """
    if quantization not in QUANTIZATIONS:
        raise ValueError(f"quantization: expected one of {QUANTIZATIONS}, got {quantization!r}")
    _scheme_arg(scheme)
    bitorder_arg(bitorder)
    n_threads = threads_arg(threads)
    x, single = _float_rows(x, dimensions)
    n, d = x.shape
    if quantization == "ubinary":
        o = out_arg(out, (n, (d + 7) // 8), np.uint8, [x], single)
        result, bad = _core.pack_bits(x, bitorder, o, n_threads)
    else:
        o = out_arg(out, (n, d), np.int8, [x], single)
        if quantization == "int8":
            result, _, bad = _core.quantize_i8(x, scheme, False, bitorder, o, None, n_threads)
        else:
            result, bad = _core.sign_i8(x, o, n_threads)
    raise_non_finite("x", bad)
    if out is not None:
        return out
    return result[0] if single else result


def quantize_fused(x, *, scheme="tanh", dimensions=None, bitorder="big", threads=None, out=None):
    """int8 codes and packed sign bits of float vectors in one pass.

    Returns (codes int8 [N, d], bits uint8 [N, ceil(d/8)]); the bits are the
    signs of the float input (a value whose code rounds to 0 keeps its sign).
    out: a pair (codes, bits) of arrays to write into (returned).
    """
    _scheme_arg(scheme)
    bitorder_arg(bitorder)
    n_threads = threads_arg(threads)
    x, single = _float_rows(x, dimensions)
    n, d = x.shape
    oc, ob = out_pair_arg(out, [(n, d), (n, (d + 7) // 8)], [np.int8, np.uint8], [x], single, "codes, bits")
    codes, bits, bad = _core.quantize_i8(x, scheme, True, bitorder, oc, ob, n_threads)
    raise_non_finite("x", bad)
    if out is not None:
        return tuple(out)
    return (codes[0], bits[0]) if single else (codes, bits)


def pack_bits(x, *, bitorder="big", threads=None, out=None):
    """packbits along the last axis: float and int8 input pack x >= 0, bool
    input packs as is. Returns uint8 [N, ceil(D/8)], padding bits zero (in
    `out` when given)."""
    bitorder_arg(bitorder)
    n_threads = threads_arg(threads)
    x = array_arg(x, "x")
    if x.dtype.kind == "f":
        x = float32_arg(x, "x")
    elif x.dtype not in (np.int8, np.bool_):
        raise TypeError(f"x: expected float, int8 or bool, got {x.dtype}")
    x, single = rows_arg(x, "x")
    o = out_arg(out, (x.shape[0], (x.shape[1] + 7) // 8), np.uint8, [x], single)
    bits, bad = _core.pack_bits(x, bitorder, o, n_threads)
    raise_non_finite("x", bad)
    if out is not None:
        return out
    return bits[0] if single else bits


def unpack_bits(packed, dim, *, bitorder="big", signed=True, threads=None, out=None):
    """Inverse of pack_bits: uint8 [N, ceil(dim/8)] -> int8 [N, dim] of +1/-1
    (signed) or 1/0 (in `out` when given)."""
    bitorder_arg(bitorder)
    n_threads = threads_arg(threads)
    packed = array_arg(packed, "packed")
    if packed.dtype != np.uint8:
        raise TypeError(f"packed: expected uint8, got {packed.dtype}")
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)):
        raise TypeError(f"dim: expected a positive int, got {type(dim).__name__}")
    packed, single = rows_arg(packed, "packed")
    if not (1 <= dim and (dim + 7) // 8 == packed.shape[1]):
        raise ValueError(
            f"dim: expected a width that packs into {packed.shape[1]} bytes "
            f"({8 * packed.shape[1] - 7}..{8 * packed.shape[1]}), got {dim}"
        )
    o = out_arg(out, (packed.shape[0], int(dim)), np.int8, [packed], single)
    result = _core.unpack_bits(packed, int(dim), bitorder, bool(signed), o, n_threads)
    if out is not None:
        return out
    return result[0] if single else result
