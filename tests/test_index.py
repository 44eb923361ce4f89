"""Index: search against numpy references, bookkeeping, persistence (round
trip, damage), concurrent readers, and two-stage recall on real embeddings
of the default model. Durability, filters and crashes: test_index_*.py."""

import hashlib
import json
import os
import threading

import numpy as np
import pytest

import pplx_kernels
from pplx_kernels import Index
from pplx_kernels.index import DEFAULT_OVERSAMPLE
from pplx_kernels.index import IndexFormatError
from pplx_kernels.index import storage as index_storage

PYTHON_DIR = os.path.dirname(os.path.dirname(pplx_kernels.__file__))


# --- references ----------------------------------------------------------------


def cosine_reference(queries, database):
    """float64 cosine of int8 rows; 0 where a norm is 0."""
    q, d = queries.astype(np.float64), database.astype(np.float64)
    dots = q @ d.T
    norms = np.linalg.norm(q, axis=1)[:, None] * np.linalg.norm(d, axis=1)[None, :]
    return np.divide(dots, norms, out=np.zeros_like(dots), where=norms > 0)


def topk_reference(queries, database, k):
    """(scores, rows): descending cosine, ties to the lower row."""
    sim = cosine_reference(queries, database)
    rows = np.arange(sim.shape[1])
    order = np.stack([np.lexsort((rows, -s))[:k] for s in sim])
    return np.take_along_axis(sim, order, 1), order


def segment_file(path, key):
    """Path of one file of the only segment of a saved index."""
    (segment,) = json.loads((path / "manifest.json").read_text())["segments"]
    return path / segment["files"][key]["file"]


def random_codes(rng, n, dim):
    return rng.integers(-127, 128, size=(n, dim), dtype=np.int8)


def check_against_reference(index_scores, index_ids, queries, database, ids, k):
    """Tie-proof comparison: the returned scores are the k best reference
    scores, and each returned id really has the score reported for it."""
    ref_scores, _ = topk_reference(queries, database, k)
    np.testing.assert_allclose(index_scores, ref_scores, atol=2e-6)
    row_of = {int(u): r for r, u in enumerate(ids)}
    sim = cosine_reference(queries, database)
    got = np.array([[sim[m, row_of[int(u)]] for u in row] for m, row in enumerate(index_ids)])
    np.testing.assert_allclose(index_scores, got, atol=2e-6)


# --- search --------------------------------------------------------------------


def test_exact_search_matches_numpy(rng):
    dim, n = 200, 3000
    data = random_codes(rng, n, dim)
    data[7] = 0  # a zero vector scores 0 against everything
    ids = rng.choice(10**12, n, replace=False)
    index = Index(dim)
    index.add(data[:1000], ids[:1000])
    index.add(data[1000:], ids[1000:])
    queries = random_codes(rng, 17, dim)
    scores, found = index.search(queries, 10)
    assert scores.dtype == np.float32 and found.dtype == np.int64 and scores.shape == (17, 10)
    check_against_reference(scores, found, queries, data, ids, 10)
    # One 1-D query gives 1-D results, the same as its row of a batch.
    s1, i1 = index.search(queries[3], 10)
    assert s1.shape == (10,) and np.array_equal(i1, found[3]) and np.array_equal(s1, scores[3])


def test_ties_go_to_the_earlier_row(rng):
    index = Index(16)
    v = random_codes(rng, 1, 16)
    index.add(np.repeat(v, 5, axis=0), ids=[50, 40, 30, 20, 10])
    _, found = index.search(v, 3)
    assert found.tolist() == [[50, 40, 30]]


def test_float_vectors_are_quantized_with_the_scheme(rng, tmp_path):
    x = rng.standard_normal((300, 64)).astype(np.float32)
    x[0, :5] = [1e-4, -1e-4, 0.0, -0.0, 2.0]  # rounds to int8 0 with either sign
    for scheme in ("tanh", "absmax"):
        index = Index(64, scheme=scheme)
        index.add(x)
        index.save(tmp_path / scheme)
        codes = np.fromfile(segment_file(tmp_path / scheme, "codes"), dtype=np.int8).reshape(300, 64)
        bits = np.fromfile(segment_file(tmp_path / scheme, "bits"), dtype=np.uint8).reshape(300, 8)
        assert np.array_equal(codes, pplx_kernels.quantize(x, scheme=scheme))
        # The bits are the signs of the floats, not of the codes.
        assert np.array_equal(bits, np.packbits(x >= 0, axis=1))
        # A float query is quantized the same way as the database.
        s_float, i_float = index.search(x[:5], 4)
        s_int8, i_int8 = index.search(pplx_kernels.quantize(x[:5], scheme=scheme), 4)
        assert np.array_equal(i_float, i_int8) and np.array_equal(s_float, s_int8)


def test_int8_vectors_get_bits_from_their_signs(rng, tmp_path):
    codes = random_codes(rng, 50, 20)
    codes[0, :3] = 0
    index = Index(20)
    index.add(codes)
    index.save(tmp_path / "ix")
    bits = np.fromfile(segment_file(tmp_path / "ix", "bits"), dtype=np.uint8).reshape(50, 3)
    assert np.array_equal(bits, np.packbits(codes >= 0, axis=1))


def test_two_stage_with_all_rows_as_candidates_is_exact(rng):
    index = Index(96)
    index.add(random_codes(rng, 400, 96))
    queries = random_codes(rng, 9, 96)
    exact = index.search(queries, 10)
    for oversample in (40, 1000):  # k * oversample >= count
        two = index.search(queries, 10, mode="two_stage", oversample=oversample)
        assert np.array_equal(exact[0], two[0]) and np.array_equal(exact[1], two[1])


def test_two_stage_rescores_the_hamming_candidates(rng):
    """Two-stage results = exact cosine restricted to the k*oversample
    nearest rows by Hamming distance (computed here with numpy)."""
    dim, n, k, oversample = 128, 2000, 5, 3
    data = rng.standard_normal((n, dim)).astype(np.float32)
    queries = rng.standard_normal((6, dim)).astype(np.float32)
    index = Index(dim, scheme="absmax")
    index.add(data)
    scores, found = index.search(queries, k, mode="two_stage", oversample=oversample)
    db_bits, q_bits = np.packbits(data >= 0, axis=1), np.packbits(queries >= 0, axis=1)
    codes, q_codes = pplx_kernels.quantize(data, scheme="absmax"), pplx_kernels.quantize(queries, scheme="absmax")
    for m in range(len(queries)):
        ham = np.unpackbits(db_bits ^ q_bits[m], axis=1).sum(1)
        cand = np.lexsort((np.arange(n), ham))[:k * oversample]
        sim = cosine_reference(q_codes[m:m + 1], codes[cand])[0]
        best = cand[np.lexsort((cand, -sim))[:k]]
        assert found[m].tolist() == best.tolist()
        np.testing.assert_allclose(scores[m], np.sort(sim)[::-1][:k], atol=2e-6)


def test_k_larger_than_the_index_and_empty_index(rng):
    index = Index(8)
    s, i = index.search(random_codes(rng, 3, 8), 5)
    assert s.shape == (3, 0) and i.shape == (3, 0)
    index.add(random_codes(rng, 4, 8))
    for mode in ("exact", "two_stage"):
        s, i = index.search(random_codes(rng, 3, 8), 5, mode=mode)
        assert s.shape == (3, 4) and sorted(i[0].tolist()) == [0, 1, 2, 3]


# --- bookkeeping -----------------------------------------------------------------


def test_ids_add_remove(rng):
    index = Index(8)
    assert index.add(random_codes(rng, 3, 8)).tolist() == [0, 1, 2]
    index.add(random_codes(rng, 2, 8), ids=[100, 7])
    assert index.add(random_codes(rng, 2, 8)).tolist() == [101, 102]  # after the largest
    assert len(index) == 7 and index.ids.tolist() == [0, 1, 2, 100, 7, 101, 102]
    with pytest.raises(ValueError, match="ids: id 7 is already in the index"):
        index.add(random_codes(rng, 2, 8), ids=[5, 7])
    with pytest.raises(ValueError, match="ids: id 9 appears more than once"):
        index.add(random_codes(rng, 2, 8), ids=[9, 9])
    with pytest.raises(ValueError, match="ids: expected 2 ids"):
        index.add(random_codes(rng, 2, 8), ids=[1])
    assert len(index) == 7  # failed adds changed nothing
    with pytest.raises(KeyError, match="not in the index: \\[55\\]"):
        index.remove([1, 55])
    assert index.remove([1, 100]) == 2
    assert index.ids.tolist() == [0, 2, 7, 101, 102]
    _, found = index.search(random_codes(rng, 20, 8), 5)
    assert not set(found.ravel().tolist()) & {1, 100}
    index.add(random_codes(rng, 1, 8), ids=[1])  # a removed id can be used again
    with pytest.raises(ValueError):
        index.ids[0] = 5  # the ids view is read-only


def test_growth_is_amortized(rng):
    index = Index(4)
    buffers = set()
    for _ in range(2000):
        index.add(random_codes(rng, 1, 4))
        buffers.add(index._mem.codes.__array_interface__["data"][0])
    assert len(index) == 2000
    assert len(buffers) <= 12  # capacity doubles: log2(2000) reallocations


@pytest.mark.parametrize("call, match", [
    (lambda ix: ix.add(np.zeros((2, 9), np.int8)), "vectors: expected vectors of 8 dimensions"),
    (lambda ix: ix.add(np.zeros((2, 8), np.int16)), "vectors: expected int8 or float"),
    (lambda ix: ix.add(np.full((2, 8), -128, np.int8)), "vectors: row 0 contains -128"),
    (lambda ix: ix.add(np.full((2, 8), np.nan, np.float32)), "vectors: row 0 contains NaN"),
    (lambda ix: ix.search(np.full((1, 8), np.inf), 3), "queries: row 0 contains NaN or Inf"),
    (lambda ix: ix.search(np.zeros(8, np.int8), 0), "k: expected a positive int"),
    (lambda ix: ix.search(np.zeros(8, np.int8), 3, mode="fast"), "mode: expected one of"),
    (lambda ix: ix.search(np.zeros(8, np.int8), 3, mode="two_stage", oversample=0.5), "oversample"),
    (lambda ix: ix.search(np.zeros(7, np.float32), 3), "queries: expected vectors of 8 dimensions"),
    (lambda ix: ix.remove(["a"]), "ids: expected a 1-D array of integers"),
])
def test_bad_arguments_name_the_argument(call, match):
    index = Index(8)
    index.add(np.ones((3, 8), np.int8))
    with pytest.raises((ValueError, TypeError), match=match):
        call(index)


def test_constructor_arguments():
    with pytest.raises(ValueError, match="dim"):
        Index(0)
    with pytest.raises(ValueError, match="metric"):
        Index(8, metric="l2")
    with pytest.raises(ValueError, match="scheme"):
        Index(8, scheme="minmax")
    assert Index(8, model="m").model == {"name": "m", "sha256": None, "path": None}


# --- persistence ---------------------------------------------------------------


def make_index(rng, n=500, dim=48):
    index = Index(dim, scheme="absmax", model={"name": "test-model", "sha256": "ab" * 32})
    index.add(rng.standard_normal((n, dim)).astype(np.float32), ids=rng.choice(10**9, n, replace=False))
    return index


def test_round_trip_gives_identical_results(rng, tmp_path):
    index = make_index(rng)
    index.remove(index.ids[:7])  # removed rows stay removed
    queries = rng.standard_normal((11, 48)).astype(np.float32)
    before = [index.search(queries, 10, mode=m) for m in ("exact", "two_stage")]
    index.save(tmp_path / "ix")
    for mmap in (True, False):
        loaded = Index.load(tmp_path / "ix", mmap=mmap)
        assert (len(loaded), loaded.dim, loaded.scheme, loaded.model) == (493, 48, "absmax", index.model)
        assert np.array_equal(loaded.ids, index.ids)
        for (s0, i0), m in zip(before, ("exact", "two_stage")):
            s1, i1 = loaded.search(queries, 10, mode=m)
            assert np.array_equal(s0, s1) and np.array_equal(i0, i1)
    # A loaded index is a read-only snapshot.
    with pytest.raises(ValueError, match="index: is read-only"):
        Index.load(tmp_path / "ix").add(rng.standard_normal((3, 48)).astype(np.float32))


def test_files_are_plain_arrays_described_by_the_manifest(rng, tmp_path):
    index = make_index(rng, n=100, dim=20)
    index.save(tmp_path / "ix")
    manifest = json.loads((tmp_path / "ix" / "manifest.json").read_text())
    assert (manifest["format"], manifest["version"], manifest["dim"]) == ("pplx-kernels-index", 2, 20)
    assert manifest["model"] == {"name": "test-model", "sha256": "ab" * 32, "path": None}
    (segment,) = manifest["segments"]
    assert segment["count"] == 100
    for entry in segment["files"].values():
        data = (tmp_path / "ix" / entry["file"]).read_bytes()
        assert len(data) == entry["bytes"] and hashlib.sha256(data).hexdigest() == entry["sha256"]
    ids = np.fromfile(segment_file(tmp_path / "ix", "ids"), dtype="<i8")
    codes = np.fromfile(segment_file(tmp_path / "ix", "codes"), dtype=np.int8).reshape(100, 20)
    norms = np.fromfile(segment_file(tmp_path / "ix", "norms"), dtype="<f4")
    assert np.array_equal(ids, index.ids)
    np.testing.assert_allclose(norms, np.linalg.norm(codes.astype(np.float64), axis=1), rtol=1e-6)


def test_empty_index_round_trip(tmp_path):
    Index(16).save(tmp_path / "ix")
    for mmap in (True, False):
        loaded = Index.load(tmp_path / "ix", mmap=mmap)
        assert len(loaded) == 0 and loaded.search(np.ones(16, np.int8), 3)[1].shape == (0,)


def _rewrite_manifest(path, **changes):
    manifest = json.loads((path / "manifest.json").read_text())
    manifest.update(changes)
    manifest["manifest_sha256"] = index_storage._digest(manifest)
    (path / "manifest.json").write_text(json.dumps(manifest))


def _flip_byte(path, offset):
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x20
    path.write_bytes(bytes(data))


DAMAGES = {
    "truncated file": (lambda p: os.truncate(segment_file(p, "codes"), 100), r"codes.i8 is truncated"),
    "longer file": (lambda p: open(segment_file(p, "ids"), "ab").write(b"x"), r"ids.i64 is too long"),
    "missing file": (lambda p: os.remove(segment_file(p, "norms")), "No such file"),
    "flipped byte in codes": (lambda p: _flip_byte(segment_file(p, "codes"), 1234), r"codes.i8 is damaged"),
    "flipped byte in documents": (lambda p: _flip_byte(segment_file(p, "docs"), 2), r"docs.jsonl is damaged"),
    "flipped byte in manifest": (lambda p: _flip_byte(p / "manifest.json", 300), "manifest.json is damaged"),
    "newer version": (lambda p: _rewrite_manifest(p, version=3), "version 3 is not supported.*newer"),
    "wrong count": (lambda p: _rewrite_manifest(p, segments=[dict(s, count=499) for s in json.loads(
        (p / "manifest.json").read_text())["segments"]]), "count 499 and dim 48 imply"),
    "manifest not json": (lambda p: (p / "manifest.json").write_text("{nope"), "not valid JSON"),
    "no manifest": (lambda p: os.remove(p / "manifest.json"), "not a pplx-kernels index"),
    "foreign manifest": (lambda p: (p / "manifest.json").write_text('{"format": "faiss"}'), "not a pplx-kernels index"),
    "file name leaving the directory": (lambda p: _rewrite_manifest(p, wal={"file": "../x.log", "bytes": 8}),
                                        "invalid file name"),
}


@pytest.mark.parametrize("damage", list(DAMAGES))
@pytest.mark.parametrize("mmap", [False, True])
def test_damaged_directory_is_refused(rng, tmp_path, damage, mmap):
    make_index(rng).save(tmp_path / "ix")
    spoil, message = DAMAGES[damage]
    spoil(tmp_path / "ix")
    # With mmap only a full verification reads the data to find a flipped byte.
    verify = True if "flipped byte in" in damage and "manifest" not in damage else None
    with pytest.raises((IndexFormatError, FileNotFoundError), match=message):
        Index.load(tmp_path / "ix", mmap=mmap, verify=verify)


def test_mmap_without_verify_does_not_read_the_data(rng, tmp_path):
    make_index(rng).save(tmp_path / "ix")
    _flip_byte(segment_file(tmp_path / "ix", "codes"), 10)
    Index.load(tmp_path / "ix", mmap=True)  # opens: only the manifest and sizes are checked
    with pytest.raises(IndexFormatError, match="codes.i8 is damaged"):
        Index.load(tmp_path / "ix", mmap=True, verify=True)


def test_foreign_or_missing_directory(tmp_path):
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "data.bin").write_bytes(b"123")
    with pytest.raises(IndexFormatError, match="not a pplx-kernels index"):
        Index.load(tmp_path / "foreign")
    with pytest.raises(FileNotFoundError, match="no such index directory"):
        Index.load(tmp_path / "nothing")
    (tmp_path / "file").write_text("x")
    with pytest.raises(IndexFormatError, match="it is a file"):
        Index.load(tmp_path / "file")


def test_save_replaces_an_index_but_nothing_else(rng, tmp_path):
    first, second = make_index(rng, n=10), make_index(rng, n=20)
    first.save(tmp_path / "ix")
    second.save(tmp_path / "ix")
    assert len(Index.load(tmp_path / "ix")) == 20
    first.save(tmp_path / "ix")
    assert np.array_equal(Index.load(tmp_path / "ix").ids, first.ids)
    # No temporary left behind (.ix.lock is the saves' lock, kept for good).
    assert sorted(os.listdir(tmp_path)) == [".ix.lock", "ix"]
    # Only the files of the last save remain.
    manifest = json.loads((tmp_path / "ix" / "manifest.json").read_text())
    assert set(os.listdir(tmp_path / "ix")) == index_storage.listed_files(manifest) | {"manifest.json", "LOCK"}
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("precious")
    with pytest.raises(FileExistsError, match="not a pplx-kernels index; refusing"):
        first.save(tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "precious"


# --- threads -----------------------------------------------------------------


def test_concurrent_readers_get_the_same_results(rng, tmp_path):
    make_index(rng, n=4000, dim=64).save(tmp_path / "ix")
    index = Index.load(tmp_path / "ix", mmap=True)
    queries = [rng.standard_normal((8, 64)).astype(np.float32) for _ in range(8)]
    expected = [index.search(q, 10, mode=m) for q in queries for m in ("exact", "two_stage")]
    failures = []

    def reader(t):
        for _ in range(5):
            for j, (q, m) in enumerate((q, m) for q in queries for m in ("exact", "two_stage")):
                s, i = index.search(q, 10, mode=m)
                if not (np.array_equal(s, expected[j][0]) and np.array_equal(i, expected[j][1])):
                    failures.append((t, j))

    threads = [threading.Thread(target=reader, args=(t,)) for t in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures


def test_readers_see_a_consistent_state_while_a_writer_adds(rng):
    dim = 32
    index = Index(dim)
    data = random_codes(rng, 6000, dim)
    index.add(data[:500])
    query = random_codes(rng, 1, dim)
    sim = cosine_reference(query, data)[0]
    stop, errors = threading.Event(), []

    def reader():
        while not stop.is_set():
            scores, found = index.search(query, 10)
            # Every result is a real row with its true score, best first.
            if not (np.allclose(scores, sim[found], atol=2e-6) and np.all(np.diff(scores) <= 0)):
                errors.append(found)

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    for start in range(500, 6000, 250):
        index.add(data[start:start + 250], ids=np.arange(start, start + 250))
        if start % 1000 == 0:
            index.remove(index.ids[-10:])
            index.add(data[start + 240:start + 250], ids=np.arange(start + 240, start + 250))
    stop.set()
    for t in threads:
        t.join()
    assert not errors and len(index) == 6000


# --- two-stage recall on real embeddings -----------------------------------------


@pytest.fixture(scope="module")
def stdlib_embeddings():
    """Float embeddings of ~1,600 stdlib docstrings (database) and of the
    first lines of ~250 others (queries: short, like real questions, and
    harder for the bits than whole documents), from the default model."""
    # The test extra installs the default model: a broken install fails here.
    from pplx_kernels.embedder import Embedder
    from pplx_kernels.corpus import stdlib_docstrings
    docs = stdlib_docstrings()
    # max_length 128 halves the embedding time; the vectors stay real.
    embedder = Embedder(max_length=128)
    database = embedder.encode([f"{d['title']}\n{d['text']}" for d in docs[0::4]], "float", show_progress=False)
    queries = embedder.encode([d["text"].split("\n")[0] for d in docs[1::25]], "float", show_progress=False)
    return database, queries, embedder.scheme


def test_two_stage_recall_on_real_embeddings(stdlib_embeddings, capsys):
    database, queries, scheme = stdlib_embeddings
    index = Index(database.shape[1], scheme=scheme)
    index.add(database)
    _, exact = index.search(queries, 10)
    recall = {}
    for oversample in sorted({1, 2, 4, 10, DEFAULT_OVERSAMPLE}):
        _, two = index.search(queries, 10, mode="two_stage", oversample=oversample)
        recall[oversample] = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(exact.tolist(), two.tolist())])
    with capsys.disabled():
        print(f"\ntwo-stage recall@10 vs exact, {len(database)} docs x {len(queries)} queries, "
              f"{database.shape[1]} bits: " + ", ".join(f"oversample {o}: {r:.3f}" for o, r in recall.items()))
    values = [recall[o] for o in sorted(recall)]
    assert all(b >= a - 0.01 for a, b in zip(values, values[1:]))  # more candidates do not hurt
    assert recall[DEFAULT_OVERSAMPLE] >= 0.95
