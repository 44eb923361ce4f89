"""Search filters (allow_ids, deny_ids, min_score) equal brute force over
the allowed rows, in both modes, on an index spread over several segments,
with removed rows and rows still in memory; and get / documents / `in` /
upsert against a plain dict of what was added."""

import numpy as np
import pytest

from pplx_kernels import Index
from pplx_kernels.index import state

DIM = 40


@pytest.fixture(autouse=True, params=["candidates", "mask"])
def scan_path(request, monkeypatch):
    """Every test by each path a part with excluded rows can take: the
    kernels' candidate lists and their row mask."""
    monkeypatch.setattr(state, "_CANDIDATE_RATIO", 0 if request.param == "candidates" else 10**9)
    return request.param


def cosine_reference(queries, database):
    q, d = queries.astype(np.float64), database.astype(np.float64)
    dots = q @ d.T
    norms = np.linalg.norm(q, axis=1)[:, None] * np.linalg.norm(d, axis=1)[None, :]
    return np.divide(dots, norms, out=np.zeros_like(dots), where=norms > 0)


def brute_force(queries, vectors, k, min_score=None):
    """(scores, ids) over `vectors` {id: int8 row} in dict order: descending
    cosine, ties to the earlier row; -inf / -1 padding below min_score."""
    ids = np.array(list(vectors), np.int64)
    database = np.array([vectors[i] for i in ids.tolist()], np.int8).reshape(len(ids), DIM)
    sim = cosine_reference(queries, database)
    kk = min(k, len(ids))
    order = np.stack([np.lexsort((np.arange(len(ids)), -s))[:kk] for s in sim])
    scores, found = np.take_along_axis(sim, order, 1), ids[order]
    if min_score is not None:
        found = np.where(scores >= min_score, found, -1)
        scores = np.where(found >= 0, scores, -np.inf)
    return scores, found


def check(index, queries, vectors, k, **filters):
    """The index's exact search equals brute force over `vectors`; scores to
    float32 precision, ids exactly except among equal scores."""
    scores, ids = index.search(queries, k, **filters)
    ref_scores, ref_ids = brute_force(queries, vectors, k, filters.get("min_score"))
    assert scores.shape == ref_scores.shape and ids.shape == ref_ids.shape
    np.testing.assert_allclose(scores, ref_scores, atol=2e-6)
    true = cosine_reference(queries, np.array([vectors[i] if i >= 0 else np.zeros(DIM, np.int8)
                                               for i in ids.ravel().tolist()]).reshape(-1, DIM))
    for m in range(len(queries)):  # each id is an allowed row with the score reported for it
        for j, i in enumerate(ids[m].tolist()):
            if i >= 0:
                assert i in vectors
                assert abs(true[m, m * ids.shape[1] + j] - scores[m, j]) < 2e-6
    return scores, ids


@pytest.fixture(scope="module")
def populated(tmp_path_factory):
    """A durable index of 3,100 rows over several segments (flush every 500
    rows) with removed rows in segments and in memory, and the dict of its
    live rows in row order."""
    rng = np.random.default_rng(7)
    path = tmp_path_factory.mktemp("filters") / "ix"
    index = Index.open(path, create=True, dim=DIM, flush_rows=500)
    vectors = {}
    for lo in range(0, 3100, 310):
        codes = rng.integers(-127, 128, (310, DIM), dtype=np.int8)
        ids = rng.choice(10**12, 310, replace=False)
        codes[5] = codes[3]  # equal scores: ties go to the earlier row
        index.add(codes, ids, documents=[{"n": int(i)} for i in ids])
        vectors.update(zip(ids.tolist(), codes))
        if lo < 2790:  # the last batch stays in memory
            index.commit()
    gone = rng.choice(list(vectors), 200, replace=False)
    index.remove(gone)
    for i in gone.tolist():
        del vectors[i]
    assert len(index._segments) >= 4 and any(s.dead is not None for s in index._segments)
    assert index._mem.n > 0 and len(index) == len(vectors) == 2900
    assert index.ids.tolist() == list(vectors)
    return index, vectors


@pytest.mark.parametrize("n_allowed", [1, 100, 1450, 2900])
def test_allow_list_equals_brute_force(populated, n_allowed):
    index, vectors = populated
    rng = np.random.default_rng(n_allowed)
    allowed = rng.choice(list(vectors), n_allowed, replace=False)
    # Ids not in the index are ignored, repeats count once.
    allow_ids = np.concatenate([allowed, allowed[:3], [-5, 10**15]])
    queries = rng.integers(-127, 128, (6, DIM), dtype=np.int8)
    wanted = {i: v for i, v in vectors.items() if i in set(allowed.tolist())}
    check(index, queries, wanted, 10, allow_ids=allow_ids)


def test_deny_list_equals_brute_force(populated):
    index, vectors = populated
    rng = np.random.default_rng(1)
    queries = rng.integers(-127, 128, (6, DIM), dtype=np.int8)
    # Deny the true top hits, so the denied rows really would have come back.
    _, top = index.search(queries, 5)
    denied = np.concatenate([top.ravel(), rng.choice(list(vectors), 300, replace=False)])
    wanted = {i: v for i, v in vectors.items() if i not in set(denied.tolist())}
    check(index, queries, wanted, 10, deny_ids=denied)
    # allow and deny together: allowed minus denied.
    allowed = rng.choice(list(vectors), 700, replace=False)
    both = {i: v for i, v in wanted.items() if i in set(allowed.tolist())}
    check(index, queries, both, 10, allow_ids=allowed, deny_ids=denied)


@pytest.mark.parametrize("min_score", [-1.0, 0.1, 0.25, 2.0])
def test_min_score_equals_brute_force(populated, min_score):
    index, vectors = populated
    rng = np.random.default_rng(3)
    queries = rng.integers(-127, 128, (5, DIM), dtype=np.int8)
    queries[0] = vectors[index.ids[10]]  # one query with a perfect hit
    scores, ids = check(index, queries, vectors, 20, min_score=min_score)
    kept = ids >= 0
    assert np.all(scores[kept] >= min_score) and np.all(np.isneginf(scores[~kept]))


@pytest.mark.parametrize("n_allowed", [1, 100, 1450])
def test_two_stage_filters_rescore_only_allowed_rows(populated, n_allowed):
    """Two-stage with a filter: every hit is allowed, and with an oversample
    covering every allowed row it is exact."""
    index, vectors = populated
    rng = np.random.default_rng(10 + n_allowed)
    allowed = rng.choice(list(vectors), n_allowed, replace=False)
    wanted = {i: v for i, v in vectors.items() if i in set(allowed.tolist())}
    queries = rng.integers(-127, 128, (4, DIM), dtype=np.int8)
    s_exact, i_exact = index.search(queries, 10, allow_ids=allowed)
    s_two, i_two = index.search(queries, 10, mode="two_stage", oversample=3000, allow_ids=allowed)
    assert np.array_equal(s_two, s_exact) and np.array_equal(i_two, i_exact)
    s_few, i_few = index.search(queries, 10, mode="two_stage", oversample=2, allow_ids=allowed,
                                deny_ids=allowed[:1], min_score=0.05)
    assert set(i_few[i_few >= 0].tolist()) <= set(allowed[1:].tolist())
    assert np.all(s_few[i_few >= 0] >= 0.05)
    ref = cosine_reference(queries, np.array([wanted[i] for i in allowed.tolist()]).reshape(-1, DIM))
    for m in range(len(queries)):
        for j, i in enumerate(i_few[m].tolist()):
            if i >= 0:
                assert abs(ref[m, allowed.tolist().index(i)] - s_few[m, j]) < 2e-6


def test_filters_on_an_in_memory_index_and_one_query(rng):
    index = Index(DIM)
    codes = rng.integers(-127, 128, (500, DIM), dtype=np.int8)
    index.add(codes)
    index.remove(np.arange(0, 500, 7))
    vectors = {i: codes[i] for i in range(500) if i % 7}
    q = rng.integers(-127, 128, DIM, dtype=np.int8)
    s, i = index.search(q, 5, allow_ids=[3, 7, 8])  # 7 was removed
    ref_s, ref_i = brute_force(q[None], {3: vectors[3], 8: vectors[8]}, 5)
    assert s.shape == (2,) and np.array_equal(i, ref_i[0])
    np.testing.assert_allclose(s, ref_s[0], atol=2e-6)
    check(index, q[None], vectors, 10)
    s, i = index.search(q, 5, allow_ids=[])
    assert s.shape == (0,) and i.shape == (0,)


def test_bad_filter_arguments_name_the_argument(populated):
    index, _ = populated
    q = np.ones(DIM, np.int8)
    with pytest.raises(TypeError, match="^allow_ids: expected a 1-D array of integers"):
        index.search(q, 3, allow_ids=[0.5])
    with pytest.raises(TypeError, match="^deny_ids: expected a 1-D array of integers"):
        index.search(q, 3, deny_ids=[[1, 2]])
    with pytest.raises(ValueError, match="^min_score: expected None or a number"):
        index.search(q, 3, min_score="high")
    with pytest.raises(ValueError, match="^min_score: expected None or a number"):
        index.search(q, 3, min_score=float("nan"))


def test_get_documents_contains_and_upsert(rng, tmp_path):
    index = Index.open(tmp_path / "ix", create=True, dim=DIM, flush_rows=64)
    model = {}
    codes = rng.integers(-127, 128, (200, DIM), dtype=np.int8)
    ids = index.add(codes, documents=[{"row": r} if r % 3 else None for r in range(200)])
    model.update({i: (codes[r], {"row": r} if r % 3 else None) for r, i in enumerate(ids.tolist())})
    index.commit()
    new = rng.integers(-127, 128, (3, DIM), dtype=np.int8)
    index.upsert(new, [5, 150, 1000], documents=[{"v": 2}, None, {"v": 3}])
    model.update({5: (new[0], {"v": 2}), 150: (new[1], None), 1000: (new[2], {"v": 3})})
    index.remove([7, 8])
    del model[7], model[8]
    for reopened in (index, None):
        if reopened is None:
            index.close()
            reopened = Index.open(tmp_path / "ix")
        want = sorted(model)
        assert sorted(reopened.ids.tolist()) == want and len(reopened) == len(model)
        assert np.array_equal(reopened.get(want), np.array([model[i][0] for i in want]))
        assert reopened.documents(want) == [model[i][1] for i in want]
        assert 5 in reopened and 7 not in reopened and -1 not in reopened and "x" not in reopened
        with pytest.raises(KeyError, match=r"ids: not in the index: \[7\]"):
            reopened.get([5, 7])
        with pytest.raises(KeyError, match="ids: not in the index"):
            reopened.documents([8])
        with pytest.raises(ValueError, match="ids: id 5 is already in the index"):
            reopened.add(new[:1], [5])
    reopened.close()


def test_hamming_candidates_and_bits_equal_brute_force(populated, tmp_path):
    """hamming_candidates: the c live rows nearest by Hamming distance, with
    their cosine, sorted by (distance, id); get_bits: the stored sign bits.
    On an id-ordered one-segment index the ids equal a numpy lexsort of
    (distance, id) exactly; on the populated one (rows not in id order,
    removed rows) the distances do, and every row is live and scored right."""
    index, vectors = populated
    rng = np.random.default_rng(3)
    ids = np.array(list(vectors), np.int64)
    codes = np.array([vectors[i] for i in ids.tolist()], np.int8)
    np.testing.assert_array_equal(index.get_bits(ids[::7]), np.packbits(codes[::7] >= 0, axis=1))
    queries = rng.integers(-127, 128, (5, DIM), dtype=np.int8)
    qbits = np.packbits(queries >= 0, axis=1)
    dist_ref = np.unpackbits(qbits[:, None, :] ^ np.packbits(codes >= 0, axis=1)[None], axis=2).sum(2)
    cos_ref = cosine_reference(queries, codes)
    id_ordered = Index(DIM)
    order = np.argsort(ids)
    id_ordered.add(codes[order], ids[order])
    for c in (1, 30, 5000):
        for ix, exact_ids in ((index, False), (id_ordered, True)):
            dist, got, cos = ix.hamming_candidates(queries, c)
            cc = min(c, len(ids))
            assert dist.shape == got.shape == cos.shape == (5, cc)
            for m in range(5):
                want = np.lexsort((ids, dist_ref[m]))[:cc]
                np.testing.assert_array_equal(dist[m], dist_ref[m][want])
                if exact_ids:
                    np.testing.assert_array_equal(got[m], ids[want])
                row = np.searchsorted(ids[order], got[m])
                assert np.array_equal(ids[order][row], got[m])  # live ids only
                np.testing.assert_array_equal(dist[m], dist_ref[m][order][row])
                np.testing.assert_allclose(cos[m], cos_ref[m][order][row], atol=2e-6)
                assert np.all(np.diff(dist[m]) >= 0)
