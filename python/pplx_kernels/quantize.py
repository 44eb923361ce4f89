"""int8 and binary quantization, and bit packing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
import numpy.typing as npt

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


def _float_rows(x: npt.ArrayLike, dimensions: int | None) -> tuple[np.ndarray, bool]:
    x = float32_arg(array_arg(x, "x"), "x")
    x, single = rows_arg(x, "x")
    d = dimensions_arg(dimensions, x.shape[1])
    return x[:, :d], single


def _scheme_arg(scheme: str) -> str:
    if scheme not in SCHEMES:
        raise ValueError(f"scheme: expected 'tanh' or 'absmax', got {scheme!r}")
    return scheme


def quantize(x: npt.ArrayLike, quantization: str = "int8", *, scheme: str = "tanh",
             dimensions: int | None = None, bitorder: str = "big", threads: int | None = None,
             out: np.ndarray | None = None) -> np.ndarray:
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
    result: np.ndarray
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


def quantize_fused(x: npt.ArrayLike, *, scheme: str = "tanh", dimensions: int | None = None,
                   bitorder: str = "big", threads: int | None = None,
                   out: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
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
        return out[0], out[1]
    return (codes[0], bits[0]) if single else (codes, bits)


@dataclass(frozen=True)
class Quantized:
    """int8 codes and the packed sign bits of the same float vectors, with
    the scheme and bit order that made them: what an Index stores per row.

    The bits are the signs of the floats, so a value whose code rounds to 0
    keeps its sign; int8 codes alone cannot give them back (their zeros
    count as positive). Embedder.encode_fused returns one and Index.add
    takes it as is, checking that its scheme is the index's: the vectors
    are quantized once, and float and Quantized input give the same rows.
    Unpacks as a pair: `codes, bits = quantized`.
    """

    codes: np.ndarray  # int8 [N, d], or [d] for one vector
    bits: np.ndarray   # uint8 [N, ceil(d / 8)], or [ceil(d / 8)]
    scheme: str
    bitorder: str = "big"

    def __post_init__(self) -> None:
        _scheme_arg(self.scheme)
        bitorder_arg(self.bitorder)
        codes, bits = array_arg(self.codes, "codes"), array_arg(self.bits, "bits")
        if codes.dtype != np.int8:
            raise TypeError(f"codes: expected int8, got {codes.dtype}")
        if bits.dtype != np.uint8:
            raise TypeError(f"bits: expected uint8 packed sign bits, got {bits.dtype}")
        if codes.ndim not in (1, 2) or codes.shape[-1] == 0:
            raise ValueError(f"codes: expected a 1-D or 2-D array of width >= 1, got shape {codes.shape}")
        want = codes.shape[:-1] + ((codes.shape[-1] + 7) // 8,)
        if bits.shape != want:
            raise ValueError(f"bits: expected shape {want} (codes {codes.shape} packed 8 to a byte), "
                             f"got {bits.shape}")
        object.__setattr__(self, "codes", codes)
        object.__setattr__(self, "bits", bits)

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter((self.codes, self.bits))

    def __len__(self) -> int:
        return len(self.codes)


def pack_bits(x: npt.ArrayLike, *, bitorder: str = "big", threads: int | None = None,
              out: np.ndarray | None = None) -> np.ndarray:
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


def unpack_bits(packed: npt.ArrayLike, dim: int, *, bitorder: str = "big", signed: bool = True,
                threads: int | None = None, out: np.ndarray | None = None) -> np.ndarray:
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
