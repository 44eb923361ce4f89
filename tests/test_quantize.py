"""int8 (tanh, absmax), binary and the fused int8 + bits pass, against the
numpy references of int8_reference.py and here, at every ISA level."""

import numpy as np
import pytest

import pplx_kernels as pk
from int8_reference import reference_absmax, reference_tanh

DIMS = [1, 7, 8, 9, 31, 33, 384, 1000, 1024, 2560]


def reference_sign(x):
    return np.where(x >= 0, 1, -1).astype(np.int8)


def tie_inputs():
    """float32 values whose 127*tanh lies as close as float32 allows to a .5
    boundary, both signs: the cases where an approximate tanh goes wrong."""
    k = np.arange(0, 127) + 0.5
    centers = np.arctanh(k / 127.0).astype(np.float32)
    around = [np.nextafter(centers, np.float32(np.inf)), centers, np.nextafter(centers, np.float32(-np.inf))]
    v = np.concatenate(around)
    return np.concatenate([v, -v]).astype(np.float32)


@pytest.mark.parametrize("dim", DIMS)
def test_tanh_matches_float64_reference(isa, rng, dim):
    x = (rng.standard_normal((37, dim)) * rng.choice([0.01, 0.3, 1.0, 5.0], size=(37, 1))).astype(np.float32)
    np.testing.assert_array_equal(pk.quantize(x, "int8", scheme="tanh"), reference_tanh(x))


def test_tanh_at_rounding_ties_and_extremes(isa):
    x = np.concatenate(
        [tie_inputs(), np.array([0.0, -0.0, 1e-45, -1e-45, 1e-30, 3.3, 20.0, -20.0, 3e38, -3e38], np.float32)]
    )
    x = np.resize(x, (7, (x.size + 6) // 7)).astype(np.float32)
    got = pk.quantize(x, scheme="tanh")
    ref = reference_tanh(x)
    # DESIGN allows 1 in 10^4 elements off by one at ties; this implementation is exact.
    np.testing.assert_array_equal(got, ref)
    assert got.min() >= -127 and got.max() <= 127


def test_tanh_dense_sweep_is_exact(isa):
    # every 1000th float32 between 0 and 4, both signs: 1e6 values
    bits = np.arange(0, np.float32(4.0).view(np.int32), 1000, dtype=np.int32)
    x = bits.view(np.float32)
    x = np.concatenate([x, -x])
    x = x[: x.size // 1000 * 1000].reshape(-1, 1000)
    np.testing.assert_array_equal(pk.quantize(x, scheme="tanh"), reference_tanh(x))


@pytest.mark.parametrize("dim", DIMS)
def test_absmax_matches_reference(isa, rng, dim):
    x = (rng.standard_normal((23, dim)) * rng.choice([1e-3, 1.0, 1e4], size=(23, 1))).astype(np.float32)
    x[0] = 0.0  # all-zero vector
    got = pk.quantize(x, "int8", scheme="absmax")
    np.testing.assert_array_equal(got, reference_absmax(x))
    nz = np.abs(x).max(axis=1) > 0
    assert (np.abs(got[nz]).max(axis=1) == 127).all(), "the largest |x| must map to 127"


def test_absmax_tiny_and_huge_magnitudes(isa):
    x = np.array(
        [
            [1e-45, -1e-45, 0.0, 2e-45],  # subnormal only
            [1e-38, -5e-39, 2.5e-39, 0.0],
            [3.4e38, -3.4e38, 1.7e38, 1.0],
            [-0.0, 0.0, -0.0, 0.0],
        ],
        dtype=np.float32,
    )
    np.testing.assert_array_equal(pk.quantize(x, scheme="absmax"), reference_absmax(x))


def test_absmax_ties_round_half_even(isa):
    # max 127 gives scale exactly 1: x * 1 keeps the .5 ties
    x = np.array([[127.0, 0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 126.5]], np.float32)
    np.testing.assert_array_equal(pk.quantize(x, scheme="absmax"), [[127, 0, 2, 2, 0, -2, -2, 126]])


@pytest.mark.parametrize("dim", DIMS)
def test_binary(isa, rng, dim):
    x = rng.standard_normal((11, dim)).astype(np.float32)
    x[0, 0] = 0.0
    x[-1, -1] = -0.0  # -0.0 >= 0: +1
    np.testing.assert_array_equal(pk.quantize(x, "binary"), reference_sign(x))


@pytest.mark.parametrize("dim", DIMS)
@pytest.mark.parametrize("bitorder", ["big", "little"])
def test_ubinary_and_fused(isa, rng, dim, bitorder):
    x = rng.standard_normal((13, dim)).astype(np.float32) * 0.01
    x[0, 0] = -0.0
    packed = pk.quantize(x, "ubinary", bitorder=bitorder)
    np.testing.assert_array_equal(packed, np.packbits(x >= 0, axis=1, bitorder=bitorder))
    for scheme, ref in [("tanh", reference_tanh), ("absmax", reference_absmax)]:
        codes, bits = pk.quantize_fused(x, scheme=scheme, bitorder=bitorder)
        np.testing.assert_array_equal(codes, ref(x))
        np.testing.assert_array_equal(bits, packed)


def test_fused_bits_come_from_float_signs():
    # -0.001 rounds to int8 0 but keeps its sign bit 0 (negative)
    x = np.array([[-0.001, 0.001, -0.0, 0.5, -0.5, 0.0, -1e-9, 1e-9]], np.float32)
    codes, bits = pk.quantize_fused(x)
    assert codes[0, 0] == 0 and codes[0, 6] == 0
    np.testing.assert_array_equal(np.unpackbits(bits, axis=1)[0], [0, 1, 1, 1, 0, 1, 0, 1])


@pytest.mark.parametrize("d", [1, 7, 64, 255])
def test_dimensions_truncates_before_quantizing(rng, d):
    x = rng.standard_normal((9, 256)).astype(np.float32)
    for quantization in ["int8", "binary", "ubinary"]:
        for scheme in ["tanh", "absmax"]:
            got = pk.quantize(x, quantization, scheme=scheme, dimensions=d)
            want = pk.quantize(np.ascontiguousarray(x[:, :d]), quantization, scheme=scheme)
            np.testing.assert_array_equal(got, want)
    # absmax depends on the kept dimensions only
    np.testing.assert_array_equal(pk.quantize(x, scheme="absmax", dimensions=d), reference_absmax(x[:, :d]))


def test_one_vector_and_float16_float64_inputs(rng):
    x = rng.standard_normal(33).astype(np.float32)
    np.testing.assert_array_equal(pk.quantize(x), reference_tanh(x[None])[0])
    x16 = x.astype(np.float16)
    np.testing.assert_array_equal(pk.quantize(x16), reference_tanh(x16.astype(np.float32)[None])[0])
    x64 = rng.standard_normal((3, 9))
    np.testing.assert_array_equal(pk.quantize(x64), reference_tanh(x64.astype(np.float32)))


def test_empty_batch(rng):
    out = pk.quantize(np.zeros((0, 16), np.float32))
    assert out.shape == (0, 16) and out.dtype == np.int8
    codes, bits = pk.quantize_fused(np.zeros((0, 16), np.float32))
    assert codes.shape == (0, 16) and bits.shape == (0, 2)


def test_levels_agree_bit_for_bit(rng):
    x = (rng.standard_normal((50, 1031)) * 2).astype(np.float32)
    x = np.concatenate([x, np.resize(tie_inputs(), (2, 1031))])
    before = pk.get_isa()
    outs = {}
    try:
        for level in pk.available_isas():
            pk.set_isa(level)
            outs[level] = [
                pk.quantize_fused(x, scheme="tanh", bitorder="little"),
                pk.quantize_fused(x, scheme="absmax"),
                pk.quantize(x, "binary"),
            ]
    finally:
        pk.set_isa(before)
    for level, results in outs.items():
        for got, want in zip(results, outs["scalar"]):
            np.testing.assert_array_equal(np.asarray(got[0] if isinstance(got, tuple) else got),
                                          np.asarray(want[0] if isinstance(want, tuple) else want), err_msg=level)
            if isinstance(got, tuple):
                np.testing.assert_array_equal(got[1], want[1], err_msg=level)


def test_results_do_not_depend_on_threads(rng):
    x = rng.standard_normal((3000, 1024)).astype(np.float32)
    base = pk.quantize_fused(x, threads=1)
    for t in (2, 3, 7):
        got = pk.quantize_fused(x, threads=t)
        np.testing.assert_array_equal(got[0], base[0])
        np.testing.assert_array_equal(got[1], base[1])


@pytest.mark.parametrize("quantization", ["int8", "binary", "ubinary"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_names_first_bad_row(isa, quantization, bad):
    x = np.ones((3000, 40), np.float32)
    x[1777, 39] = bad  # in the SIMD tail
    x[2500, 0] = bad
    with pytest.raises(ValueError, match=r"x: row 1777 "):
        pk.quantize(x, quantization)
    with pytest.raises(ValueError, match=r"x: row 1777 "):
        pk.quantize_fused(x, scheme="absmax")


@pytest.mark.parametrize(
    "kwargs,exc,name",
    [
        (dict(quantization="int4"), ValueError, "quantization"),
        (dict(scheme="minmax"), ValueError, "scheme"),
        (dict(bitorder="middle"), ValueError, "bitorder"),
        (dict(dimensions=0), ValueError, "dimensions"),
        (dict(dimensions=17), ValueError, "dimensions"),
        (dict(dimensions=2.5), TypeError, "dimensions"),
        (dict(threads=-1), ValueError, "threads"),
    ],
)
def test_quantize_bad_arguments(kwargs, exc, name):
    with pytest.raises(exc, match=f"^{name}: "):
        pk.quantize(np.ones((2, 16), np.float32), **kwargs)


@pytest.mark.parametrize(
    "x,exc",
    [
        (np.ones((2, 3, 4), np.float32), ValueError),
        (np.ones((2, 0), np.float32), ValueError),
        (np.ones((2, 4), np.int32), TypeError),
        (np.ones((2, 4), np.complex64), TypeError),
        (None, TypeError),
        ("text", TypeError),
    ],
)
def test_quantize_bad_x(x, exc):
    with pytest.raises(exc, match="^x: "):
        pk.quantize(x)
