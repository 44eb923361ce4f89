"""pack_bits / unpack_bits against numpy's packbits / unpackbits."""

import numpy as np
import pytest

import pplx_kernels as pk

DIMS = [1, 7, 8, 9, 31, 32, 33, 63, 64, 65, 384, 1000, 1024, 2560]


@pytest.mark.parametrize("dim", DIMS)
@pytest.mark.parametrize("bitorder", ["big", "little"])
def test_pack_float_int8_bool(isa, rng, dim, bitorder):
    x = rng.standard_normal((17, dim)).astype(np.float32)
    x[0, 0] = 0.0
    x[1, -1] = -0.0
    want = np.packbits(x >= 0, axis=1, bitorder=bitorder)
    np.testing.assert_array_equal(pk.pack_bits(x, bitorder=bitorder), want)
    codes = rng.integers(-127, 128, size=(17, dim)).astype(np.int8)
    codes[0, :] = 0
    codes[1, :] = -128  # pack_bits only reads signs; -128 is negative
    np.testing.assert_array_equal(pk.pack_bits(codes, bitorder=bitorder), np.packbits(codes >= 0, axis=1, bitorder=bitorder))
    flags = rng.random((17, dim)) < 0.5
    np.testing.assert_array_equal(pk.pack_bits(flags, bitorder=bitorder), np.packbits(flags, axis=1, bitorder=bitorder))


@pytest.mark.parametrize("dim", DIMS)
@pytest.mark.parametrize("bitorder", ["big", "little"])
def test_unpack_inverts_pack(isa, rng, dim, bitorder):
    flags = rng.random((19, dim)) < 0.5
    packed = np.packbits(flags, axis=1, bitorder=bitorder)
    unsigned = pk.unpack_bits(packed, dim, bitorder=bitorder, signed=False)
    np.testing.assert_array_equal(unsigned, flags.astype(np.int8))
    signed = pk.unpack_bits(packed, dim, bitorder=bitorder)
    np.testing.assert_array_equal(signed, np.where(flags, 1, -1).astype(np.int8))
    assert signed.dtype == np.int8 and unsigned.dtype == np.int8


def test_padding_bits_are_zero_and_ignored(rng):
    x = np.ones((4, 9), np.float32)
    packed = pk.pack_bits(x)
    np.testing.assert_array_equal(packed[:, 1], 0x80)  # only the 9th bit set
    noisy = packed.copy()
    noisy[:, 1] |= 0x7F  # garbage in the padding
    np.testing.assert_array_equal(pk.unpack_bits(noisy, 9), pk.unpack_bits(packed, 9))


def test_one_vector_and_empty():
    np.testing.assert_array_equal(pk.pack_bits(np.array([1.0, -1.0, 0.0], np.float32)), [0b10100000])
    assert pk.pack_bits(np.zeros((0, 12), np.float32)).shape == (0, 2)
    assert pk.unpack_bits(np.zeros((0, 2), np.uint8), 12).shape == (0, 12)


def test_strided_rows_and_threads(rng):
    x = rng.standard_normal((5000, 130)).astype(np.float32)
    view = x[:, 1:100]
    want = np.packbits(view >= 0, axis=1)
    for t in (1, 2, 3):
        np.testing.assert_array_equal(pk.pack_bits(view, threads=t), want)


def test_levels_agree(rng):
    x = rng.standard_normal((40, 1033)).astype(np.float32)
    before = pk.get_isa()
    outs = {}
    try:
        for level in pk.available_isas():
            pk.set_isa(level)
            p = pk.pack_bits(x, bitorder="little")
            outs[level] = (p, pk.unpack_bits(p, 1033, bitorder="little"))
    finally:
        pk.set_isa(before)
    for level, (p, u) in outs.items():
        np.testing.assert_array_equal(p, outs["scalar"][0], err_msg=level)
        np.testing.assert_array_equal(u, outs["scalar"][1], err_msg=level)


def test_non_finite_float_input():
    x = np.zeros((3, 70), np.float32)
    x[1, 65] = np.nan
    with pytest.raises(ValueError, match="x: row 1"):
        pk.pack_bits(x)


@pytest.mark.parametrize(
    "call,exc,name",
    [
        (lambda: pk.pack_bits(np.ones((2, 8), np.int32)), TypeError, "x"),
        (lambda: pk.pack_bits(np.ones((2, 8), np.uint8)), TypeError, "x"),
        (lambda: pk.pack_bits(np.ones((2, 8), np.float32), bitorder="BIG"), ValueError, "bitorder"),
        (lambda: pk.pack_bits(np.ones((2, 2, 8), np.float32)), ValueError, "x"),
        (lambda: pk.unpack_bits(np.ones((2, 2), np.uint8), 17), ValueError, "dim"),
        (lambda: pk.unpack_bits(np.ones((2, 2), np.uint8), 8), ValueError, "dim"),
        (lambda: pk.unpack_bits(np.ones((2, 2), np.uint8), 0), ValueError, "dim"),
        (lambda: pk.unpack_bits(np.ones((2, 2), np.uint8), "16"), TypeError, "dim"),
        (lambda: pk.unpack_bits(np.ones((2, 2), np.int8), 16), TypeError, "packed"),
        (lambda: pk.unpack_bits(np.ones((2, 2), np.uint8), 16, bitorder=None), ValueError, "bitorder"),
    ],
)
def test_bad_input(call, exc, name):
    with pytest.raises(exc, match=f"^{name}: "):
        call()
