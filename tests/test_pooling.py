"""mean_pool and mean_pool_spans against a float64 numpy reference, at every
ISA level, and the levels against the scalar one bit for bit."""

import numpy as np
import pytest

import pplx_kernels as pk

DIMS = [1, 7, 8, 9, 31, 33, 384, 1000, 1024, 2560]


def reference_mean_pool(hidden, mask):
    h = hidden.astype(np.float64)
    m = (mask != 0).astype(np.float64)
    counts = m.sum(axis=1, keepdims=True)
    sums = np.einsum("bsh,bs->bh", h, m)
    return np.where(counts > 0, sums / np.maximum(counts, 1), 0.0)


def random_mask(rng, batch, seq):
    lengths = rng.integers(0, seq + 1, size=batch)
    lengths[0] = seq  # one full row
    if batch > 1:
        lengths[1] = 0  # one row with no tokens
    mask = (np.arange(seq)[None, :] < lengths[:, None]).astype(np.int64)
    return mask


# float32 sums of S terms of magnitude ~1 are within S * 2^-24 * max|sum term|
# of the float64 value; the tolerance below is that bound with room.
def assert_close_to_reference(out, ref, seq):
    tol = 4 * seq * np.finfo(np.float32).eps * (np.abs(ref).max() + 1)
    np.testing.assert_allclose(out, ref, rtol=0, atol=tol)


@pytest.mark.parametrize("dim", DIMS)
def test_mean_pool_matches_reference(isa, rng, dim):
    batch, seq = 5, 13
    hidden = rng.standard_normal((batch, seq, dim)).astype(np.float32)
    mask = random_mask(rng, batch, seq)
    out = pk.mean_pool(hidden, mask)
    assert out.dtype == np.float32 and out.shape == (batch, dim)
    assert_close_to_reference(out, reference_mean_pool(hidden, mask), seq)
    assert not out[1].any(), "a row with no tokens must pool to zeros"


@pytest.mark.parametrize("mask_dtype", [np.int64, np.int32, np.bool_])
def test_mask_dtypes_agree(rng, mask_dtype):
    hidden = rng.standard_normal((4, 9, 33)).astype(np.float32)
    mask = random_mask(rng, 4, 9)
    np.testing.assert_array_equal(pk.mean_pool(hidden, mask.astype(mask_dtype)), pk.mean_pool(hidden, mask))


def test_nonbinary_mask_values_count_as_tokens(rng):
    hidden = rng.standard_normal((2, 6, 16)).astype(np.float32)
    mask = np.array([[3, 0, -1, 1, 0, 2], [0, 0, 0, 0, 0, 7]], dtype=np.int64)
    assert_close_to_reference(pk.mean_pool(hidden, mask), reference_mean_pool(hidden, mask), 6)


@pytest.mark.parametrize("dim", [1, 9, 33, 384, 1024])
def test_float16_input(isa, rng, dim):
    hidden = (rng.standard_normal((3, 11, dim)) * 4).astype(np.float16)
    # include subnormal and extreme halves
    hidden[0, 0, 0] = np.float16(6.0e-8)
    hidden[0, 1, 0] = np.float16(-65504.0)
    mask = random_mask(rng, 3, 11)
    out = pk.mean_pool(hidden, mask)
    np.testing.assert_allclose(out, reference_mean_pool(hidden.astype(np.float64), mask), rtol=1e-5, atol=1e-4)


def test_levels_agree_bit_for_bit(rng):
    hidden32 = rng.standard_normal((7, 29, 1000)).astype(np.float32) * 100
    hidden16 = hidden32.astype(np.float16)
    mask = random_mask(rng, 7, 29)
    before = pk.get_isa()
    results = {}
    try:
        for level in pk.available_isas():
            pk.set_isa(level)
            results[level] = (pk.mean_pool(hidden32, mask), pk.mean_pool(hidden16, mask))
    finally:
        pk.set_isa(before)
    for level, (o32, o16) in results.items():
        np.testing.assert_array_equal(o32, results["scalar"][0], err_msg=level)
        np.testing.assert_array_equal(o16, results["scalar"][1], err_msg=level)


def test_strided_and_noncontiguous_hidden(rng):
    base = rng.standard_normal((4, 10, 70)).astype(np.float32)
    mask = random_mask(rng, 4, 10)
    view = base[:, :, 3:67]  # rows strided, last axis contiguous
    np.testing.assert_array_equal(pk.mean_pool(view, mask), pk.mean_pool(np.ascontiguousarray(view), mask))
    view2 = base[:, :, ::2]  # last axis strided: copied once
    np.testing.assert_array_equal(pk.mean_pool(view2, mask), pk.mean_pool(np.ascontiguousarray(view2), mask))


def test_results_do_not_depend_on_threads(rng):
    hidden = rng.standard_normal((9, 40, 1024)).astype(np.float32)
    mask = random_mask(rng, 9, 40)
    outs = [pk.mean_pool(hidden, mask, threads=t) for t in (1, 2, 3, 8)]
    for o in outs[1:]:
        np.testing.assert_array_equal(o, outs[0])


def test_extreme_magnitudes(isa):
    hidden = np.zeros((2, 4, 9), dtype=np.float32)
    hidden[0, :, :] = 1e-38
    hidden[1, :2, :] = 3e37
    mask = np.ones((2, 4), dtype=np.int64)
    out = pk.mean_pool(hidden, mask)
    np.testing.assert_allclose(out, reference_mean_pool(hidden, mask), rtol=1e-6)


def test_non_finite_hidden_names_row():
    hidden = np.zeros((3, 4, 8), dtype=np.float32)
    hidden[2, 1, 3] = np.nan
    with pytest.raises(ValueError, match=r"hidden.*2"):
        pk.mean_pool(hidden, np.ones((3, 4), dtype=np.int64))
    # a NaN in a masked-out token is never read
    mask = np.ones((3, 4), dtype=np.int64)
    mask[2, 1] = 0
    assert np.isfinite(pk.mean_pool(hidden, mask)).all()


@pytest.mark.parametrize(
    "hidden,mask,exc,name",
    [
        (np.zeros((2, 3), np.float32), np.ones((2, 3), np.int64), ValueError, "hidden"),
        (np.zeros((2, 3, 4), np.int32), np.ones((2, 3), np.int64), TypeError, "hidden"),
        (np.zeros((2, 3, 0), np.float32), np.ones((2, 3), np.int64), ValueError, "hidden"),
        (np.zeros((2, 3, 4), np.float32), np.ones((2, 4), np.int64), ValueError, "attention_mask"),
        (np.zeros((2, 3, 4), np.float32), np.ones((2, 3), np.float32), TypeError, "attention_mask"),
        ("not an array", np.ones((2, 3), np.int64), TypeError, "hidden"),
    ],
)
def test_mean_pool_bad_input(hidden, mask, exc, name):
    with pytest.raises(exc, match=name):
        pk.mean_pool(hidden, mask)


def test_threads_argument_checked():
    hidden = np.zeros((1, 2, 3), np.float32)
    with pytest.raises(ValueError, match="threads"):
        pk.mean_pool(hidden, np.ones((1, 2), np.int64), threads=0)
    with pytest.raises(TypeError, match="threads"):
        pk.mean_pool(hidden, np.ones((1, 2), np.int64), threads=1.5)


@pytest.mark.parametrize("dim", [1, 9, 384, 1024])
def test_mean_pool_spans(isa, rng, dim):
    seq = 50
    hidden = rng.standard_normal((seq, dim)).astype(np.float32)
    spans = np.array([[0, 10], [11, 30], [30, 30], [31, 50], [5, 6]], dtype=np.int64)
    out = pk.mean_pool_spans(hidden, spans)
    for i, (s, e) in enumerate(spans):
        ref = hidden[s:e].astype(np.float64).mean(axis=0) if e > s else np.zeros(dim)
        np.testing.assert_allclose(out[i], ref, rtol=0, atol=1e-5)
    # same as mean_pool with a mask that selects the span
    mask = np.zeros((1, seq), dtype=np.int64)
    mask[0, 11:30] = 1
    np.testing.assert_array_equal(out[1], pk.mean_pool(hidden[None], mask)[0])


@pytest.mark.parametrize(
    "spans,exc",
    [
        (np.array([[0, 51]]), ValueError),
        (np.array([[-1, 3]]), ValueError),
        (np.array([[5, 3]]), ValueError),
        (np.array([0, 3]), ValueError),
        (np.array([[0.0, 3.0]]), TypeError),
    ],
)
def test_mean_pool_spans_bad_spans(spans, exc):
    with pytest.raises(exc, match="spans"):
        pk.mean_pool_spans(np.zeros((50, 4), np.float32), spans)


def test_large_batch_by_whole_rows_matches_scalar(isa, rng):
    # 16+ sequences are pooled a whole row per task (fewer: column blocks):
    # bit-identical to the scalar level either way.
    hidden = rng.standard_normal((20, 9, 1000)).astype(np.float32)
    mask = random_mask(rng, 20, 9)
    out = pk.mean_pool(hidden, mask)
    pk.set_isa("scalar")
    try:
        ref = pk.mean_pool(hidden, mask)
    finally:
        pk.set_isa(isa)
    assert np.array_equal(out, ref)
    assert np.allclose(out, reference_mean_pool(hidden, mask), atol=1e-5)


# The AVX-512 kernel sums tokens in groups of 8 over 64-column blocks with
# masked tails: token counts around the group size, holes in the mask that
# make a group span a gap, and widths around 16 and 64 lanes exercise every
# edge. Each level is checked against numpy and, bit for bit, against scalar.
GROUP_DIMS = [1, 15, 17, 63, 65, 100, 129, 1000]
GROUP_LENGTHS = [0, 1, 7, 8, 9, 16, 17, 40]


def scattered_mask(rng, lengths, seq):
    """Rows with exactly lengths[b] tokens, at random positions (holes)."""
    mask = np.zeros((len(lengths), seq), dtype=np.int64)
    for b, n in enumerate(lengths):
        mask[b, rng.choice(seq, size=n, replace=False)] = 1
    return mask


def assert_within_rounding(out, hidden, mask):
    """Cancelling sums (+-3e37, +-65504): a float32 running sum over seq
    tokens is within seq roundings of its largest term of the exact mean."""
    seq = hidden.shape[1]
    largest = np.abs(hidden.astype(np.float64)).max(axis=(1, 2))[:, None]
    err = np.abs(out - reference_mean_pool(hidden, mask))
    assert (err <= seq * np.finfo(np.float32).eps * largest + 1e-44).all()


def pooled_at(level, hidden, mask):
    before = pk.get_isa()
    pk.set_isa(level)
    try:
        return pk.mean_pool(hidden, mask)
    finally:
        pk.set_isa(before)


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("dim", GROUP_DIMS)
def test_token_groups_and_tails_match_reference_and_scalar(isa, rng, dim, dtype):
    seq = 48
    hidden = (rng.standard_normal((len(GROUP_LENGTHS), seq, dim)) * 3).astype(dtype)
    mask = scattered_mask(rng, GROUP_LENGTHS, seq)
    out = pk.mean_pool(hidden, mask)
    ref = reference_mean_pool(hidden, mask)
    assert_close_to_reference(out, ref, seq)
    assert not out[0].any(), "a row with every token masked must pool to zeros"
    np.testing.assert_array_equal(out[1], hidden[1][mask[1] != 0][0].astype(np.float32))  # one token: itself
    np.testing.assert_array_equal(out, pooled_at("scalar", hidden, mask))


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_single_token_sequences(isa, rng, dtype):
    hidden = rng.standard_normal((17, 1, 70)).astype(dtype)
    out = pk.mean_pool(hidden, np.ones((17, 1), np.int64))
    np.testing.assert_array_equal(out, hidden[:, 0].astype(np.float32))


def test_all_tokens_masked_gives_zeros(isa, rng):
    hidden = rng.standard_normal((20, 12, 77)).astype(np.float32)
    hidden[:, :, 5] = np.nan  # never read: every token is masked
    out = pk.mean_pool(hidden, np.zeros((20, 12), np.int64))
    np.testing.assert_array_equal(out, np.zeros((20, 77), np.float32))


def test_extreme_values_match_scalar(isa, rng):
    # sums that reach float32's limits without overflowing, subnormals, and
    # signed zeros: rounding and the sign of zero must follow scalar's order
    seq, dim = 19, 81
    hidden = np.zeros((4, seq, dim), np.float32)
    hidden[0] = rng.choice([3.0e37, -3.0e37, 1.0], size=(seq, dim))
    hidden[1] = rng.choice([1e-45, -1e-45, 1e-39, 0.0], size=(seq, dim))
    hidden[2] = -0.0
    hidden[3] = rng.standard_normal((seq, dim)) * 1e30
    mask = scattered_mask(rng, [seq, 13, seq, 9], seq)
    out = pk.mean_pool(hidden, mask)
    np.testing.assert_array_equal(out, pooled_at("scalar", hidden, mask))
    assert_within_rounding(out, hidden, mask)


def test_float16_extremes_match_scalar(isa, rng):
    values = np.array([65504, -65504, 6.0e-8, -6.0e-8, 6.1e-5, 0.0, -0.0, 1.0], np.float16)
    hidden = rng.choice(values, size=(3, 21, 97))
    mask = scattered_mask(rng, [21, 10, 1], 21)
    out = pk.mean_pool(hidden, mask)
    np.testing.assert_array_equal(out, pooled_at("scalar", hidden, mask))
    assert_within_rounding(out, hidden, mask)
