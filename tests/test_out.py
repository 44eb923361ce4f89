"""out=: every function that returns arrays writes the same values into a
caller's buffer as into a fresh array, returns that buffer, and refuses a
buffer of the wrong dtype, shape or layout, a read-only one, and one that
overlaps an input. The C++ bindings refuse bad buffers on their own too."""

import numpy as np
import pytest

import pplx_kernels as pk
from pplx_kernels import _core


def int8_rows(rng, n, d):
    return rng.integers(-127, 128, size=(n, d)).astype(np.int8)


def calls(rng):
    """(name, call taking out=...) for every function with out=; the inputs
    have odd widths so tails are written too."""
    x = rng.standard_normal((37, 203)).astype(np.float32)
    hidden = rng.standard_normal((5, 9, 67)).astype(np.float32)
    mask = (rng.random((5, 9)) < 0.7).astype(np.int64)
    spans = np.array([[0, 3], [2, 9], [4, 4]])
    q, db = int8_rows(rng, 7, 203), int8_rows(rng, 300, 203)
    bits = pk.pack_bits(x)
    cand = rng.integers(-1, 300, size=(7, 20))
    return [
        ("mean_pool", lambda **o: pk.mean_pool(hidden, mask, **o)),
        ("mean_pool_spans", lambda **o: pk.mean_pool_spans(hidden[0], spans, **o)),
        ("quantize tanh", lambda **o: pk.quantize(x, **o)),
        ("quantize absmax dims", lambda **o: pk.quantize(x, scheme="absmax", dimensions=100, **o)),
        ("quantize binary", lambda **o: pk.quantize(x, "binary", **o)),
        ("quantize ubinary little", lambda **o: pk.quantize(x, "ubinary", bitorder="little", **o)),
        ("quantize one vector", lambda **o: pk.quantize(x[3], **o)),
        ("quantize strided rows", lambda **o: pk.quantize(x[::2], **o)),
        ("quantize_fused", lambda **o: pk.quantize_fused(x, **o)),
        ("quantize_fused one vector", lambda **o: pk.quantize_fused(x[0], dimensions=99, **o)),
        ("pack_bits float", lambda **o: pk.pack_bits(x, **o)),
        ("pack_bits bool", lambda **o: pk.pack_bits(x > 0, bitorder="little", **o)),
        ("unpack_bits", lambda **o: pk.unpack_bits(bits, 203, **o)),
        ("unpack_bits one row", lambda **o: pk.unpack_bits(bits[5], 203, signed=False, **o)),
        ("norms", lambda **o: pk.norms(db, **o)),
        ("norms one row", lambda **o: pk.norms(db[0], **o)),
        ("cosine", lambda **o: pk.cosine(q, db, **o)),
        ("cosine one query", lambda **o: pk.cosine(q[0], db, **o)),
        ("hamming", lambda **o: pk.hamming(bits[:7], bits, **o)),
        ("topk cosine", lambda **o: pk.topk(q, db, 10, **o)),
        ("topk cosine one query", lambda **o: pk.topk(q[0], db, 10, **o)),
        ("topk cosine candidates", lambda **o: pk.topk(q, db, 5, candidates=cand, **o)),
        ("topk hamming", lambda **o: pk.topk(bits[:7], bits, 10, metric="hamming", **o)),
        ("topk k > N", lambda **o: pk.topk(q, db[:4], 10, **o)),
    ]


NAMES = [name for name, _ in calls(np.random.default_rng(0))]


def call_named(rng, name):
    return dict(calls(rng))[name]


def as_tuple(result):
    return result if isinstance(result, tuple) else (result,)


def buffers_like(result, fill):
    return tuple(np.full(r.shape, fill, r.dtype) for r in as_tuple(result))


def out_kw(bufs):
    return bufs if len(bufs) > 1 else bufs[0]


@pytest.mark.parametrize("name", NAMES)
def test_out_receives_the_result_and_is_returned(rng, isa, name):
    call = call_named(rng, name)
    fresh = as_tuple(call())
    # Two different fills: every element must be written, none left over.
    for fill in (0, 77):
        bufs = buffers_like(fresh, fill)
        got = as_tuple(call(out=out_kw(bufs)))
        assert len(got) == len(bufs)
        for g, b, f in zip(got, bufs, fresh):
            assert g is b
            np.testing.assert_array_equal(b, f)


@pytest.mark.parametrize("name", NAMES)
def test_bad_out_is_refused(rng, name):
    call = call_named(rng, name)
    fresh = as_tuple(call())
    good = buffers_like(fresh, 0)

    def with_first(bad):
        return out_kw((bad, *good[1:]))

    first = good[0]
    wrong_dtype = np.zeros(first.shape, np.float64 if first.dtype != np.float64 else np.float32)
    with pytest.raises(TypeError, match="out"):
        call(out=with_first(wrong_dtype))
    with pytest.raises(ValueError, match=r"out.*expected shape"):
        call(out=with_first(np.zeros((first.size + 1,), first.dtype)))
    read_only = first.copy()
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        call(out=with_first(read_only))
    with pytest.raises(TypeError, match="out"):
        call(out=with_first(first.tolist()))
    if first.ndim >= 1 and first.size > 1:
        wide = np.zeros(first.shape[:-1] + (2 * first.shape[-1],), first.dtype)
        strided = wide[..., ::2]
        with pytest.raises(ValueError, match="C-contiguous"):
            call(out=with_first(strided))
    if len(good) > 1:
        with pytest.raises(TypeError, match="pair"):
            call(out=good[0])
        with pytest.raises(TypeError, match="pair"):
            call(out=(*good, good[0]))


def test_out_overlapping_an_input_is_refused():
    x = np.zeros((4, 16), np.uint8)
    with pytest.raises(ValueError, match="overlaps"):
        pk.pack_bits(x.view(np.bool_), out=x.reshape(-1)[:8].reshape(4, 2))
    buf = np.zeros((4, 16), np.uint8)
    with pytest.raises(ValueError, match="overlaps"):
        pk.unpack_bits(buf[:, :2], 16, out=buf.view(np.int8))
    f = np.ones((3, 8), np.float32)
    with pytest.raises(ValueError, match="overlaps"):
        pk.quantize(f, out=f.view(np.int8).reshape(-1)[:24].reshape(3, 8))
    db = np.ones((10, 8), np.int8)
    norms = pk.norms(db)
    with pytest.raises(ValueError, match="overlaps"):
        pk.cosine(db[:1], db, norms=norms, out=norms.reshape(1, 10))


def test_out_pair_members_must_not_overlap():
    q = np.ones((2, 8), np.int8)
    db = np.arange(80, dtype=np.int8).reshape(10, 8)
    buf = np.zeros(2 * 3 * 8, np.uint8)
    scores, ids = buf[:24].view(np.float32).reshape(2, 3), buf.view(np.int64).reshape(2, 3)
    with pytest.raises(ValueError, match=r"out\[1\].*overlaps"):
        pk.topk(q, db, 3, out=(scores, ids))
    f = np.ones((2, 16), np.float32)
    raw = np.zeros(64, np.uint8)
    with pytest.raises(ValueError, match=r"out\[1\].*overlaps"):
        pk.quantize_fused(f, out=(raw[:32].view(np.int8).reshape(2, 16), raw[:4].reshape(2, 2)))


def test_out_on_a_failing_call_raises_the_input_error():
    x = np.ones((3, 8), np.float32)
    x[2, 5] = np.nan
    out = np.zeros((3, 8), np.int8)
    with pytest.raises(ValueError, match="x: row 2"):
        pk.quantize(x, out=out)


def test_bindings_check_out_themselves():
    x = np.ones((3, 16), np.float32)
    with pytest.raises(ValueError, match="out"):
        _core.quantize_i8(x, "tanh", False, "big", np.zeros((3, 15), np.int8), None, 0)
    with pytest.raises(ValueError, match="out"):
        _core.quantize_i8(x, "tanh", False, "big", np.zeros((3, 16), np.uint8), None, 0)
    with pytest.raises(TypeError, match="out"):
        _core.sign_i8(x, [[0] * 16] * 3, 0)
    with pytest.raises(ValueError, match="C-contiguous"):
        _core.pack_bits(x, "big", np.zeros((6, 2), np.uint8)[::2], 0)
    read_only = np.zeros((3, 2), np.uint8)
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        _core.pack_bits(x, "big", read_only, 0)
    q = np.ones((2, 16), np.int8)
    with pytest.raises(ValueError, match="out"):
        _core.topk_cosine(q, q, 2, None, None, None, False, np.zeros((2, 3), np.float32), None, 0)
    with pytest.raises(ValueError, match="out"):
        _core.norms(q, False, np.zeros(3, np.float32), 0)
