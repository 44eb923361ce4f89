"""Search kernels against numpy references: cosine and Hamming matrices,
norms, and top-k (dense and candidate form) on every ISA level."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

import pplx_kernels as pk
from pplx_kernels import _core
from pplx_kernels.tune import ensure_tuned

DIMS = [8, 24, 100, 384, 1024, 2560, 4096]


# ---------------------------------------------------------------- references

def ref_norms(x):
    return np.sqrt((x.astype(np.int64) ** 2).sum(1).astype(np.float64)).astype(np.float32)


def ref_recip(norms):
    n = norms.astype(np.float64)
    with np.errstate(divide="ignore"):
        return np.where(n > 0, 1.0 / n, 0.0).astype(np.float32)


def ref_cosine(a, b, b_norms=None):
    """The documented float32 formula, op for op."""
    dots = a.astype(np.int64) @ b.astype(np.int64).T
    rq = ref_recip(ref_norms(a))
    rx = ref_recip(ref_norms(b) if b_norms is None else b_norms)
    s = (dots.astype(np.float32) * rq[:, None]) * rx[None, :]
    return np.clip(s, np.float32(-1), np.float32(1))


def ref_hamming(a, b):
    out = np.empty((a.shape[0], b.shape[0]), np.int32)
    for i in range(a.shape[0]):
        out[i] = np.unpackbits(a[i][None, :] ^ b, axis=1).sum(1)
    return out


def ref_topk(scores, k, descending, ids=None):
    """Best k per row, ties to the lower id (lexsort: last key is primary)."""
    m, n = scores.shape
    if ids is None:
        ids = np.broadcast_to(np.arange(n), (m, n))
    key = -scores.astype(np.float64) if descending else scores
    order = np.lexsort((ids, key), axis=1)[:, :k]
    return np.take_along_axis(scores, order, 1), np.take_along_axis(ids, order, 1)


def assert_cosine_and_top5(q, x):
    """The cosine matrix and the top-5 equal the references exactly."""
    full = ref_cosine(q, x)
    np.testing.assert_array_equal(pk.cosine(q, x), full)
    want_s, want_i = ref_topk(full, 5, True)
    s, i = pk.topk(q, x, 5)
    np.testing.assert_array_equal(i, want_i)
    np.testing.assert_array_equal(s, want_s)


def int8_rows(rng, n, d, n_unique=None):
    """int8 rows in [-127, 127]; with n_unique, rows repeat (forcing ties)."""
    if n_unique is None:
        return rng.integers(-127, 128, (n, d), dtype=np.int8)
    base = rng.integers(-127, 128, (n_unique, d), dtype=np.int8)
    return base[rng.integers(0, n_unique, n)]


def code_rows(rng, n, nbytes, n_unique=None):
    if n_unique is None:
        return rng.integers(0, 256, (n, nbytes), dtype=np.uint8)
    base = rng.integers(0, 256, (n_unique, nbytes), dtype=np.uint8)
    return base[rng.integers(0, n_unique, n)]


# ---------------------------------------------------------------- matrices

@pytest.mark.parametrize("d", DIMS)
def test_cosine_matrix(isa, rng, d):
    a = int8_rows(rng, 9, d)
    b = int8_rows(rng, 37, d)
    a[1] = 0  # a zero vector scores 0
    got = pk.cosine(a, b)
    assert got.dtype == np.float32 and got.shape == (9, 37)
    np.testing.assert_array_equal(got, ref_cosine(a, b))
    exact = (a.astype(np.float64) @ b.astype(np.float64).T) / np.maximum(
        1e-300, np.outer(np.linalg.norm(a.astype(np.float64), axis=1), np.linalg.norm(b.astype(np.float64), axis=1)))
    np.testing.assert_allclose(got, exact, rtol=2e-6, atol=2e-7)
    # Given norms and a 1-D query give the same numbers.
    np.testing.assert_array_equal(pk.cosine(a[3], b, norms=pk.norms(b)), got[3])


@pytest.mark.parametrize("bits", DIMS)
def test_hamming_matrix(isa, rng, bits):
    nbytes = (bits + 7) // 8
    a = code_rows(rng, 7, nbytes)
    b = code_rows(rng, 41, nbytes)
    got = pk.hamming(a, b)
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, ref_hamming(a, b))
    np.testing.assert_array_equal(pk.hamming(a[2], b), got[2])


@pytest.mark.parametrize("d", DIMS)
def test_norms(isa, rng, d):
    x = int8_rows(rng, 33, d)
    x[0] = 0
    x[1] = 127
    x[2] = -127
    got = pk.norms(x)
    np.testing.assert_array_equal(got, ref_norms(x))
    assert got[1] == np.float32(np.sqrt(d * 127.0 * 127.0))


def test_variants_match_across_isas(rng):
    """Each SIMD kernel against the scalar reference, on awkward sizes."""
    a, b = int8_rows(rng, 13, 1000), int8_rows(rng, 70, 1000)
    ca, cb = code_rows(rng, 13, 77), code_rows(rng, 70, 77)
    before = pk.get_isa()
    try:
        results = {}
        for level in pk.available_isas():
            pk.set_isa(level)
            results[level] = (pk.cosine(a, b), pk.hamming(ca, cb), pk.topk(a, b, 5), pk.topk(ca, cb, 5, metric="hamming"))
    finally:
        pk.set_isa(before)
    for level, r in results.items():
        for x, y in zip(r[:2], results["scalar"][:2]):
            np.testing.assert_array_equal(x, y, err_msg=level)
        for x, y in zip(r[2:], results["scalar"][2:]):
            np.testing.assert_array_equal(x[0], y[0], err_msg=level)
            np.testing.assert_array_equal(x[1], y[1], err_msg=level)


def test_cpu_info_names_the_variant(isa):
    info = pk.cpu_info()
    f = info["features"]
    expected = {
        "scalar": ("scalar", "scalar"),
        "avx2": ("avx2", "avx2"),
        "avx512": ("avx512_vnni" if f["avx512vnni"] else "avx2",
                   "avx512_vpopcntdq" if f["avx512vpopcntdq"] else "avx2"),
        "neon": ("neon_dotprod" if f["neon_dotprod"] else "neon", "neon"),
    }[isa]
    assert (info["kernels"]["cosine"], info["kernels"]["hamming"]) == expected


# ---------------------------------------------------------------- top-k

TOPK_CASES = [  # (M, N, d)
    (1, 1, 8), (2, 3, 24), (5, 100, 100), (3, 257, 384), (4, 600, 1024),
    (2, 130, 2560), (1, 70, 4096), (300, 700, 8), (17, 3000, 24),
]


def _ks(n):
    return sorted({1, 10, n, n + 5})


@pytest.mark.parametrize("m,n,d", TOPK_CASES)
def test_topk_cosine(isa, rng, m, n, d):
    q = int8_rows(rng, m, d)
    x = int8_rows(rng, n, d, n_unique=max(1, n // 3))  # duplicates force ties
    q[0] = x[0]  # an exact match, and its duplicates tie at 1.0
    full = ref_cosine(q, x)
    for k in _ks(n):
        scores, ids = pk.topk(q, x, k)
        want_s, want_i = ref_topk(full, min(k, n), True)
        assert scores.dtype == np.float32 and ids.dtype == np.int64
        np.testing.assert_array_equal(ids, want_i, err_msg=f"k={k}")
        np.testing.assert_array_equal(scores, want_s)


@pytest.mark.parametrize("m,n,bits", TOPK_CASES)
def test_topk_hamming(isa, rng, m, n, bits):
    nbytes = (bits + 7) // 8
    q = code_rows(rng, m, nbytes)
    x = code_rows(rng, n, nbytes, n_unique=max(1, n // 3))
    full = ref_hamming(q, x)
    for k in _ks(n):
        scores, ids = pk.topk(q, x, k, metric="hamming")
        want_s, want_i = ref_topk(full, min(k, n), False)
        assert scores.dtype == np.int32 and ids.dtype == np.int64
        np.testing.assert_array_equal(ids, want_i, err_msg=f"k={k}")
        np.testing.assert_array_equal(scores, want_s)


@pytest.mark.parametrize("metric", ["cosine", "hamming"])
def test_topk_large_n_same_for_every_thread_count(isa, rng, metric):
    """N = 100,000 with heavy ties: many chunks, both query blocks, 1-3 threads."""
    m, n, d = 300, 100_000, 8
    if metric == "cosine":
        q, x = int8_rows(rng, m, d), int8_rows(rng, n, d, n_unique=5000)
        full = ref_cosine(q[:20], x)
    else:
        q, x = code_rows(rng, m, d), code_rows(rng, n, d, n_unique=5000)
        full = ref_hamming(q[:20], x)
    results = [pk.topk(q, x, 10, metric=metric, threads=t) for t in (1, 2, 3)]
    for s, i in results[1:]:
        np.testing.assert_array_equal(i, results[0][1])
        np.testing.assert_array_equal(s, results[0][0])
    want_s, want_i = ref_topk(full, 10, metric == "cosine")
    np.testing.assert_array_equal(results[0][1][:20], want_i)
    np.testing.assert_array_equal(results[0][0][:20], want_s)


def test_topk_database_norms_and_strided_rows(isa, rng):
    x = int8_rows(rng, 500, 100)
    q = int8_rows(rng, 6, 100)
    base = pk.topk(q, x, 7)
    with_norms = pk.topk(q, x, 7, database_norms=pk.norms(x))
    np.testing.assert_array_equal(base[1], with_norms[1])
    np.testing.assert_array_equal(base[0], with_norms[0])
    # Rows of a wider array (strided rows), and a non-contiguous last axis (one copy).
    wide = np.zeros((500, 160), np.int8)
    wide[:, :100] = x
    np.testing.assert_array_equal(pk.topk(q, wide[:, :100], 7)[1], base[1])
    inter = np.zeros((500, 200), np.int8)
    inter[:, ::2] = x
    np.testing.assert_array_equal(pk.topk(q, inter[:, ::2], 7)[1], base[1])
    # One query as a 1-D array.
    s1, i1 = pk.topk(q[2], x, 7)
    assert i1.shape == (7,)
    np.testing.assert_array_equal(i1, base[1][2])


def test_norms_outside_int8_range_refused_on_every_isa(isa):
    # The reported case: tiny positive norms overflowed 1/norm and scored NaN
    # on AVX-512, above the exact match. An int8 vector's norm is 0 or in
    # [1, 127 sqrt(D)], so anything else is refused by name, by the Python
    # layer and by the compiled core.
    db = np.zeros((3, 16), np.int8)
    db[0, 0], db[1, 1], db[2, 2] = 100, 100, 100
    q = np.zeros(16, np.int8)
    q[1] = 100
    top = np.float32(127 * 4)  # 127 sqrt(16)
    for bad in [1e-40, 0.5, np.nextafter(np.float32(1), np.float32(0)), -1.0, np.nan, np.inf,
                np.nextafter(top, np.float32(np.inf))]:
        norms = np.array([bad, 100, 1e-40 if bad != 1e-40 else 100], np.float32)
        _raises(ValueError, "database_norms", lambda: pk.topk(q, db, 3, database_norms=norms))
        _raises(ValueError, "norms", lambda: pk.cosine(q, db, norms=norms))
        _raises(ValueError, "database_norms",
                lambda: pk._core.topk_cosine(q[None], db, 3, norms, None, None, False, None, None, 1))
        _raises(ValueError, "norms", lambda: pk._core.cosine(q[None], db, norms, False, None, 1))
    # Valid norms, the bounds included, give the reference's answer.
    for norms in [pk.norms(db), np.array([0, 100, 0], np.float32), np.array([1, top, 100], np.float32)]:
        full = ref_cosine(q[None], db, norms)
        want_s, want_i = ref_topk(full, 3, True)
        s, i = pk.topk(q[None], db, 3, database_norms=norms)
        np.testing.assert_array_equal(i, want_i)
        np.testing.assert_array_equal(s, want_s)
        np.testing.assert_array_equal(pk.cosine(q[None], db, norms=norms), full)


@pytest.mark.parametrize("m", [1, 4, 9, 16])  # row-wise, and the packed AVX-512 kernels (8+)
def test_longest_rows_d_65536(isa, rng, m):
    # Dots of near-full rows reach 65536 x 127 x 127, close to 2^30.
    d, n = 65536, 24
    x = int8_rows(rng, n, d)
    x[0], x[1] = 127, -127
    x[2:6] = np.where(rng.random((4, d)) < 0.5, 127, -127).astype(np.int8)
    q = int8_rows(rng, m, d)
    q[0] = 127
    if m > 1:
        q[1] = x[2]
    assert_cosine_and_top5(q, x)
    # Hamming over 65536-byte codes, same query counts.
    cq, cx = code_rows(rng, m, d), code_rows(rng, n, d)
    cx[0] = cq[0]
    full_h = ref_hamming(cq, cx)
    np.testing.assert_array_equal(pk.hamming(cq, cx), full_h)
    want_s, want_i = ref_topk(full_h, 5, False)
    s, i = pk.topk(cq, cx, 5, metric="hamming")
    np.testing.assert_array_equal(i, want_i)
    np.testing.assert_array_equal(s, want_s)


@pytest.mark.parametrize("metric", ["cosine", "hamming"])
def test_topk_candidates(isa, rng, metric):
    m, n = 6, 400
    if metric == "cosine":
        q, x = int8_rows(rng, m, 100), int8_rows(rng, n, 100, n_unique=150)
        full = ref_cosine(q, x)
        pad = -np.inf
    else:
        q, x = code_rows(rng, m, 13), code_rows(rng, n, 13, n_unique=150)
        full = ref_hamming(q, x)
        pad = 2**31 - 1
    cand = rng.integers(0, n, (m, 30))
    cand[:, 5] = cand[:, 4]  # duplicates count once
    cand[:, -3:] = -1  # padding
    cand[1, :] = -1
    cand[1, :2] = [7, 7]  # one distinct candidate only
    for k in (1, 10, 30, 40):
        scores, ids = pk.topk(q, x, k, metric=metric, candidates=cand)
        kk = min(k, 30)
        assert ids.shape == (m, kk)
        for i in range(m):
            uniq = np.unique(cand[i][cand[i] >= 0])
            ws, wi = ref_topk(full[i][uniq][None, :], kk, metric == "cosine", ids=uniq[None, :])
            got = ids[i][: wi.shape[1]]
            np.testing.assert_array_equal(got, wi[0])
            np.testing.assert_array_equal(scores[i][: wi.shape[1]], ws[0])
            assert np.all(ids[i][wi.shape[1]:] == -1)
            assert np.all(scores[i][wi.shape[1]:] == pad)


def _masks(rng, n):
    """Row masks: random halves, one row, the last row only, a long masked
    run (whole blocks passed by), every row, and none."""
    half = rng.random(n) < 0.5
    one = np.zeros(n, bool)
    one[n // 3] = True
    last = np.zeros(n, bool)
    last[-1] = True
    run = np.ones(n, bool)
    run[: (3 * n) // 4] = False
    return [half, one, last, run, np.ones(n, bool), np.zeros(n, bool)]


@pytest.mark.parametrize("metric", ["cosine", "hamming"])
@pytest.mark.parametrize("m,width", [(1, 100), (3, 1024), (9, 100), (16, 1024)])  # row-wise and packed
def test_topk_row_mask(isa, rng, metric, m, width):
    n = 1003
    if metric == "cosine":
        q, x = int8_rows(rng, m, width), int8_rows(rng, n, width, n_unique=300)
        full, pad = ref_cosine(q, x), -np.inf
    else:
        q, x = code_rows(rng, m, width // 8), code_rows(rng, n, width // 8, n_unique=300)
        full, pad = ref_hamming(q, x), 2**31 - 1
    for mask in _masks(rng, n):
        allowed = np.flatnonzero(mask)
        for k in (1, 10, 2000):
            want_s, want_i = ref_topk(full[:, allowed], min(k, len(allowed)), metric == "cosine",
                                      ids=np.broadcast_to(allowed, (m, len(allowed))))
            for threads in (1, 2):
                scores, ids = pk.topk(q, x, k, metric=metric, row_mask=mask, threads=threads)
                assert ids.shape == (m, min(k, n))
                got = want_i.shape[1]
                np.testing.assert_array_equal(ids[:, :got], want_i)
                np.testing.assert_array_equal(scores[:, :got], want_s)
                assert np.all(ids[:, got:] == -1) and np.all(scores[:, got:] == pad)
        # uint8 masks: any non-zero byte allows the row
        as_bytes = np.where(mask, rng.integers(1, 256, n), 0).astype(np.uint8)
        np.testing.assert_array_equal(pk.topk(q, x, 10, metric=metric, row_mask=as_bytes)[1],
                                      pk.topk(q, x, 10, metric=metric, row_mask=mask)[1])


# ---------------------------------------------------------------- -128

@pytest.mark.parametrize("m", [3, 12])  # the row-wise and the packed AVX-512 kernels
def test_minus_128_raises_or_clamps(isa, rng, m):
    x = int8_rows(rng, 50, 40)
    q = int8_rows(rng, m, 40)
    x[17, 5] = -128
    for call in (lambda: pk.topk(q, x, 5), lambda: pk.cosine(q, x), lambda: pk.norms(x)):
        with pytest.raises(ValueError, match=r"-128") as e:
            call()
        assert "[-127, 127]" in str(e.value)
    with pytest.raises(ValueError, match=r"^database: row 17"):
        pk.topk(q, x, 5)
    with pytest.raises(ValueError, match=r"^b: row 17"):
        pk.cosine(q, x)
    with pytest.raises(ValueError, match=r"^queries: row 0"):
        pk.topk(np.full((1, 40), -128, np.int8), x, 5, clamp=False)
    clamped = np.maximum(x, -127)
    qc = q.copy()
    qc[1, 0] = -128
    want = pk.topk(np.maximum(qc, -127), clamped, 5)
    got = pk.topk(qc, x, 5, clamp=True)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_array_equal(pk.cosine(qc, x, clamp=True), pk.cosine(np.maximum(qc, -127), clamped))
    np.testing.assert_array_equal(pk.norms(x, clamp=True), ref_norms(clamped))
    cand = np.tile(np.array([[17, 3], [1, 2], [3, 17]]), (m // 3, 1))
    with pytest.raises(ValueError, match=r"^database: row 17"):
        pk.topk(q, x, 2, candidates=cand)
    got = pk.topk(qc, x, 2, candidates=cand, clamp=True)
    want = pk.topk(np.maximum(qc, -127), clamped, 2, candidates=cand)
    np.testing.assert_array_equal(got[1], want[1])


def test_minus_128_far_into_a_large_database(isa, rng):
    """Raised from a worker thread, named, with the row."""
    x = int8_rows(rng, 60_000, 24)
    x[59_321, 3] = -128
    q = int8_rows(rng, 10, 24)
    with pytest.raises(ValueError, match=r"^database: row 59321 holds -128"):
        pk.topk(q, x, 5, threads=2)
    got = pk.topk(q, x, 5, threads=2, clamp=True)
    want = pk.topk(q, np.maximum(x, -127), 5, threads=2)
    np.testing.assert_array_equal(got[1], want[1])


# ---------------------------------------------------------------- packed cosine

# Every value of the row-wise/packed threshold: the tuner's candidates, 1
# (packed for every query count) and never.
PACKED_FROM = sorted(set(_core.knob_candidates()["cosine_packed_min_queries"]) | {1, 1 << 30})


@pytest.fixture(params=PACKED_FROM)
def packed_from(request, isa):
    ensure_tuned()  # the level's own knobs first, or the next call would reset ours
    _core.set_knob("cosine_packed_min_queries", request.param)
    try:
        yield request.param
        assert _core.get_knobs()["cosine_packed_min_queries"] == request.param
    finally:
        _core.reset_knobs()


def extreme_rows(rng, n, d):
    """Rows of +127, of -127, alternating +-127, zeros, a single -127 in the
    last column, then random rows."""
    x = int8_rows(rng, n, d)
    x[0], x[1], x[3] = 127, -127, 0
    x[2] = np.where(np.arange(d) % 2, 127, -127)
    x[4] = 0
    x[4, -1] = -127
    return x


def test_packed_cosine_every_dim_up_to_70(packed_from, rng):
    # 9 and 17 queries (tiles of 4 and a remainder), 37 rows (a partial tile of 16).
    for d in range(1, 71):
        q, x = extreme_rows(rng, 9, d), extreme_rows(rng, 37, d)
        np.testing.assert_array_equal(pk.cosine(q, x), ref_cosine(q, x), err_msg=f"d={d}")
    q, x = extreme_rows(rng, 17, 33), extreme_rows(rng, 16, 33)
    np.testing.assert_array_equal(pk.cosine(q, x), ref_cosine(q, x))


@pytest.mark.parametrize("d", [67, 1024, 1029])
def test_packed_cosine_topk_extremes(packed_from, rng, d):
    q, x = extreme_rows(rng, 12, d), extreme_rows(rng, 100, d)
    q[5] = x[7]
    assert_cosine_and_top5(q, x)


def test_packed_cosine_d_65536(packed_from, rng):
    # Sums near 65536 x 127 x 127 (close to 2^30) through 9 queries x 21 rows.
    d = 65536
    q, x = extreme_rows(rng, 9, d), extreme_rows(rng, 21, d)
    q[0], q[1] = 127, -127
    np.testing.assert_array_equal(pk.cosine(q, x), ref_cosine(q, x))


def test_packed_cosine_minus_128(packed_from, rng):
    d = 67
    wide = extreme_rows(rng, 37, d + 5)
    wide[:, d:] = -128  # in the stride gap only: not part of the rows
    x = wide[:, :d]
    q = extreme_rows(rng, 9, d)
    np.testing.assert_array_equal(pk.cosine(q, x), ref_cosine(q, np.ascontiguousarray(x)))
    for row, col in [(36, d - 1), (16, 0), (5, 33)]:
        y = x.copy()
        y[row, col] = -128
        with pytest.raises(ValueError, match=rf"^b: row {row} holds -128"):
            pk.cosine(q, y)


# ---------------------------------------------------------------- memory

def test_topk_does_not_materialize_the_score_matrix():
    """[M, N] float32 would be 800 MB; the child's peak RSS must stay far below."""
    code = textwrap.dedent("""
        import resource, numpy as np, pplx_kernels as pk
        rng = np.random.default_rng(1)
        x = rng.integers(-127, 128, (200_000, 8), dtype=np.int8)
        q = rng.integers(-127, 128, (1000, 8), dtype=np.int8)
        pk.topk(q[:2], x[:100], 3)  # load everything first
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        s, i = pk.topk(q, x, 10, threads=2)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print((peak - base) // 1024)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    grown_mb = int(out.stdout.strip())
    assert grown_mb < 100, f"topk grew the peak RSS by {grown_mb} MB"


# ---------------------------------------------------------------- bad input

def _raises(exc, name, fn):
    with pytest.raises(exc) as e:
        fn()
    assert str(e.value).startswith(name + ":"), str(e.value)


def test_bad_inputs(rng):
    x = int8_rows(rng, 20, 16)
    q = int8_rows(rng, 2, 16)
    c = code_rows(rng, 20, 4)
    _raises(TypeError, "queries", lambda: pk.topk(q.astype(np.int16), x, 3))
    _raises(TypeError, "database", lambda: pk.topk(q, x.astype(np.float32), 3))
    _raises(TypeError, "queries", lambda: pk.topk(q, c, 3, metric="hamming"))
    _raises(ValueError, "database", lambda: pk.topk(q, x[:, :8], 3))
    _raises(ValueError, "database", lambda: pk.topk(q, x[:0], 3))
    _raises(ValueError, "database", lambda: pk.topk(q, x[0], 3))
    _raises(ValueError, "queries", lambda: pk.topk(q[None], x, 3))
    _raises(ValueError, "k", lambda: pk.topk(q, x, 0))
    _raises(ValueError, "k", lambda: pk.topk(q, x, -2))
    _raises(TypeError, "k", lambda: pk.topk(q, x, 2.5))
    _raises(ValueError, "metric", lambda: pk.topk(q, x, 3, metric="l2"))
    _raises(TypeError, "threads", lambda: pk.topk(q, x, 3, threads="2"))
    _raises(ValueError, "threads", lambda: pk.topk(q, x, 3, threads=0))
    _raises(TypeError, "database_norms", lambda: pk.topk(q, x, 3, database_norms=np.ones(20)))
    _raises(ValueError, "database_norms", lambda: pk.topk(q, x, 3, database_norms=np.ones(19, np.float32)))
    _raises(ValueError, "database_norms", lambda: pk.topk(q, x, 3, database_norms=np.full(20, np.nan, np.float32)))
    _raises(ValueError, "candidates", lambda: pk.topk(q, x, 3, candidates=np.array([[0, 20], [1, 2]])))
    _raises(TypeError, "row_mask", lambda: pk.topk(q, x, 3, row_mask=np.ones(20, np.int64)))
    _raises(ValueError, "row_mask", lambda: pk.topk(q, x, 3, row_mask=np.ones(19, bool)))
    _raises(ValueError, "row_mask", lambda: pk.topk(q, x, 3, row_mask=np.ones((20, 1), bool)))
    _raises(ValueError, "row_mask", lambda: pk.topk(q, x, 3, row_mask=np.ones(20, bool),
                                                    candidates=np.zeros((2, 3), np.int64)))
    _raises(ValueError, "candidates", lambda: pk.topk(q, x, 3, candidates=np.array([[0, -2], [1, 2]])))
    _raises(ValueError, "candidates", lambda: pk.topk(q, x, 3, candidates=np.array([[0, 1]])))
    _raises(TypeError, "candidates", lambda: pk.topk(q, x, 3, candidates=np.zeros((2, 2), np.float32)))
    _raises(TypeError, "clamp", lambda: pk.topk(q, x, 3, clamp="yes"))
    _raises(TypeError, "a", lambda: pk.cosine(None, x))
    _raises(ValueError, "b", lambda: pk.cosine(q, x[:, :4]))
    _raises(ValueError, "norms", lambda: pk.cosine(q, x, norms=np.ones(3, np.float32)))
    _raises(TypeError, "b", lambda: pk.hamming(c, x))
    _raises(ValueError, "b", lambda: pk.hamming(c, c[:, :3]))
    _raises(TypeError, "x", lambda: pk.norms(x.astype(np.uint8)))
    big = np.zeros((1, 65537), np.int8)
    _raises(ValueError, "queries", lambda: pk.topk(big, big, 1))
    _raises(ValueError, "a", lambda: pk.cosine(big, big))
