"""pplx_kernels.distributed on a local Ray cluster of 2 CPUs (started and
shut down here): the sharded build equals a single-process build, sharded
search equals one Index over all rows in both modes, and killed actors
lose nothing and never return silently short results.

The embedder is a tiny ONNX model (tests/tiny_models.py), so the time goes
to Ray itself, not to a transformer."""

import json
import os
import signal
import threading
import time

import numpy as np
import psutil
import pytest

import ray  # in the test extra: a missing install fails here, never skips

from pplx_kernels import Index
from pplx_kernels.cli import main as cli_main
from pplx_kernels.distributed import ShardedIndex, index_id, manifest, shard_of
from pplx_kernels.embedder import Embedder
from tiny_models import make_model_dir, random_texts

N_DOCS = 600
SHARDS = 3
DELAY_ENV = "PPLX_KERNELS_TEST_EMBED_DELAY"


@pytest.fixture(scope="module")
def cluster():
    os.environ.pop(DELAY_ENV, None)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PPLX_KERNELS_NUM_THREADS": "1"}})
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    root, _ = make_model_dir(tmp_path_factory.mktemp("tiny") / "model", hidden=32)
    return str(root)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """JSON Lines in shuffled id order; ids spread over int64 (negative
    too), and repeated texts so that scores tie exactly."""
    rng = np.random.default_rng(7)
    texts = random_texts(N_DOCS, seed=3)
    for i in range(0, N_DOCS, 10):  # every 10th text repeats an earlier one
        texts[i] = texts[(i * 7) % max(i, 1)]
    ids = rng.choice(np.arange(-10**6, 10**12, 997), N_DOCS, replace=False).tolist()
    docs = [{"id": i, "title": f"t{n}" if n % 3 else None, "text": t} for n, (i, t) in enumerate(zip(ids, texts))]
    order = rng.permutation(N_DOCS)
    path = tmp_path_factory.mktemp("corpus") / "docs.jsonl"
    path.write_text("".join(json.dumps(docs[j]) + "\n" for j in order))
    return path, docs


@pytest.fixture(scope="module")
def sharded_dir(cluster, corpus, model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("sharded") / "ix"
    rc = cli_main(["index", str(corpus[0]), "--out", str(out), "--engine", "ray", "--shards", str(SHARDS),
                   "--model", model_dir, "--quiet"])
    assert rc == 0
    return out


@pytest.fixture(scope="module")
def reference(corpus, model_dir):
    """One Index over all rows in id order, built without Ray, plus the
    float vectors and the documents by index id."""
    _, docs = corpus
    emb = Embedder(model_dir, threads=1)
    texts = [f"{d['title']}\n{d['text']}" if d["title"] else d["text"] for d in docs]
    vectors = emb.encode(texts, "float")
    ids = np.array([index_id(d["id"]) for d in docs], np.int64)
    order = np.argsort(ids)
    index = Index(vectors.shape[1], scheme=emb.scheme)
    index.add(vectors[order], ids[order])
    return index, {int(i): d for i, d in zip(ids, docs)}, emb


def _triples(ix: Index) -> set:
    """(id, int8 vector bytes, document as sorted JSON) of every row."""
    ids = ix.ids
    return {(int(i), code.tobytes(), json.dumps(doc, sort_keys=True))
            for i, code, doc in zip(ids.tolist(), ix.get(ids), ix.documents(ids))}


def test_sharded_build_equals_single_process_build(sharded_dir, corpus, model_dir, tmp_path, reference):
    _, docs = corpus
    meta = manifest.read(sharded_dir, verify=True)
    assert meta["rows"] == N_DOCS and len(meta["shards"]) == SHARDS
    assert meta["model"]["sha256"] and meta["scheme"] == reference[0].scheme
    # Without Ray: the ordinary command line build of the same file.
    single = tmp_path / "single"
    assert cli_main(["index", str(corpus[0]), "--out", str(single), "--model", model_dir, "--quiet"]) == 0
    expected = _triples(Index.load(single))
    got = set()
    for s, entry in enumerate(meta["shards"]):
        shard = Index.load(sharded_dir / entry["path"])
        assert len(shard) == entry["rows"]
        ids = shard.ids
        assert (np.diff(ids) > 0).all(), "a shard's rows are in id order"
        assert (shard_of(ids, SHARDS) == s).all(), "each row is in the shard its id hashes to"
        got |= _triples(shard)
    assert len(got) == N_DOCS
    assert got == expected
    # The reference built here from the same floats holds the same vectors.
    ref = reference[0]
    assert {(i, c) for i, c, _ in got} == {(int(i), c.tobytes()) for i, c in zip(ref.ids, ref.get(ref.ids))}
    # Documents by id through the sharded index, as through one index.
    with ShardedIndex.open(sharded_dir) as sharded:
        some = ref.ids[::7]
        assert sharded.documents(some) == Index.load(single).documents(some)
        assert int(some[0]) in sharded and (int(ref.ids.max()) + 1) not in sharded


def _queries(reference, n=200):
    index, docs, emb = reference
    texts = random_texts(n - 40, seed=11)
    # Queries equal to documents: their repeated texts make exact score ties.
    texts += [d["text"] for d in list(docs.values())[:40]]
    return emb.encode(texts, "float")


def _naive_two_stage(reference, shard_dirs, q, k, oversample):
    """Per-shard two-stage search merged by score: what the exact merge
    must not do (it rescores other candidates)."""
    parts = [Index.load(d).search(q, k, mode="two_stage", oversample=oversample) for d in shard_dirs]
    scores = np.concatenate([p[0] for p in parts], 1)
    ids = np.concatenate([p[1] for p in parts], 1)
    order = np.lexsort((ids, -scores.astype(np.float64)), axis=1)[:, :k]
    return np.take_along_axis(ids, order, 1)


@pytest.mark.parametrize("engine", ["local", "ray"])
def test_sharded_search_equals_one_index(engine, sharded_dir, reference):
    index = reference[0]
    q = _queries(reference)
    shard_dirs = [sharded_dir / s["path"] for s in manifest.read(sharded_dir)["shards"]]
    with ShardedIndex.open(sharded_dir, engine=engine) as sharded:
        assert len(sharded) == len(index) and sharded.dim == index.dim
        for k in (1, 10, 25):
            want = index.search(q, k)
            got = sharded.search(q, k)
            assert not got.partial
            np.testing.assert_array_equal(got.ids, want[1])
            np.testing.assert_array_equal(got.scores, want[0])
            for oversample in (1, 2.5, 10):
                want = index.search(q, k, mode="two_stage", oversample=oversample)
                got = sharded.search(q, k, mode="two_stage", oversample=oversample)
                np.testing.assert_array_equal(got.ids, want[1])
                np.testing.assert_array_equal(got.scores, want[0])
        # Ties: a query equal to a repeated document scores both rows alike,
        # and the lower id comes first.
        scores, ids = sharded.search(q[-40:], 2)
        tied = scores[:, 0] == scores[:, 1]
        assert tied.any() and (ids[tied, 0] < ids[tied, 1]).all()
        # Filters: each shard applies them inside its scan; the merge stays exact.
        rng = np.random.default_rng(5)
        all_ids = index.ids
        allow = np.concatenate([rng.choice(all_ids, len(all_ids) // 3, replace=False), [12345678901]])
        deny = rng.choice(all_ids, len(all_ids) // 10, replace=False)
        for filters in (dict(allow_ids=allow), dict(deny_ids=deny), dict(allow_ids=allow, deny_ids=deny),
                        dict(allow_ids=all_ids[:3]), dict(min_score=0.2), dict(allow_ids=[])):
            for mode, oversample in (("exact", None), ("two_stage", 1), ("two_stage", 3)):
                want = index.search(q, 10, mode=mode, oversample=oversample, **filters)
                got = sharded.search(q, 10, mode=mode, oversample=oversample, **filters)
                np.testing.assert_array_equal(got.ids, want[1])
                np.testing.assert_array_equal(got.scores, want[0])
        # One 1-D query gives 1-D results, like Index.search.
        s1, i1 = sharded.search(q[0], 5)
        assert s1.shape == (5,) and (i1 == index.search(q[0], 5)[1]).all()
    if engine == "local":
        # The test can fail: per-shard two-stage search, merged, differs.
        want = index.search(q, 10, mode="two_stage", oversample=1)[1]
        assert (_naive_two_stage(reference, shard_dirs, q, 10, 1) != want).any()


def test_search_rejects_bad_arguments(sharded_dir):
    with ShardedIndex.open(sharded_dir) as sharded:
        with pytest.raises(ValueError, match="^k:"):
            sharded.search(np.zeros(sharded.dim, np.float32), 0)
        with pytest.raises(ValueError, match="^mode:"):
            sharded.search(np.zeros(sharded.dim, np.float32), mode="fast")
        with pytest.raises(ValueError, match="^queries:"):
            sharded.search(np.zeros(sharded.dim + 1, np.float32))
    with pytest.raises(ValueError, match="^engine:"):
        ShardedIndex.open(sharded_dir, engine="spark")
    with pytest.raises(manifest.ShardedFormatError):
        ShardedIndex.open(sharded_dir / "shard-00000")


def test_cli_search_accepts_a_sharded_directory(sharded_dir, corpus, capsys):
    _, docs = corpus
    text = docs[17]["text"]
    assert cli_main(["search", str(sharded_dir), text, "-k", "3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["results"][0]["text"] == text


def _actor_pids(name_fragment):
    """pid -> command line of this test's Ray worker processes running an
    actor whose name holds name_fragment (the local cluster is a child of
    this process, so its workers are our descendants)."""
    found = {}
    for proc in psutil.Process().children(recursive=True):
        try:
            cmd = " ".join(proc.cmdline())
        except psutil.Error:
            continue
        if cmd.startswith("ray::") and name_fragment in cmd:
            found[proc.pid] = cmd
    return found


def test_killed_embedder_actor_loses_and_duplicates_nothing(cluster, corpus, model_dir, sharded_dir, tmp_path):
    from pplx_kernels.distributed import build
    out = tmp_path / "killed"
    os.environ[DELAY_ENV] = "0.05"  # seconds per batch: the build is still running when we kill
    result, error = {}, []

    def run():
        try:
            result.update(build(str(corpus[0]), out, shards=SHARDS, model=model_dir, batch_size=8))
        except BaseException as exc:  # noqa: BLE001 - reported below
            error.append(exc)

    try:
        worker = threading.Thread(target=run)
        worker.start()
        deadline = time.monotonic() + 60
        while not (pids := _actor_pids("_Embed")) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert pids, "no embedder actor appeared"
        time.sleep(1.0)  # let it take some batches first
        assert worker.is_alive(), "the build finished before the kill; slow it down"
        victim = next(iter(pids))
        os.kill(victim, signal.SIGKILL)
        worker.join(180)
    finally:
        os.environ.pop(DELAY_ENV, None)
    assert not error, error
    assert result["count"] == N_DOCS
    shards = [Index.load(out / s["path"]) for s in manifest.read(out, verify=True)["shards"]]
    ids = np.concatenate([s.ids for s in shards])
    assert len(ids) == N_DOCS and len(set(ids.tolist())) == N_DOCS
    # The same rows as the build nobody killed: reproducible, nothing lost.
    assert set().union(*map(_triples, shards)) == set().union(
        *(_triples(Index.load(sharded_dir / s["path"])) for s in manifest.read(sharded_dir)["shards"]))


def test_killed_shard_actor_restarts_and_queries_wait(sharded_dir, reference):
    index = reference[0]
    q = _queries(reference, 20)
    want = index.search(q, 10)
    with ShardedIndex.open(sharded_dir, engine="ray", max_restarts=5, timeout=120) as sharded:
        before = _actor_pids("Shard")
        victim = sharded._shards[1]
        ray.kill(victim, no_restart=False)  # a crash: Ray restarts it
        got = sharded.search(q, 10)  # issued while it is down: waits
        assert not got.partial
        np.testing.assert_array_equal(got.ids, want[1])
        np.testing.assert_array_equal(got.scores, want[0])
        after = _actor_pids("Shard")
        assert len(before) == len(after) == 3 and before != after, "one actor replaced by a new process"


def test_dead_shard_is_reported_partial_never_silently_short(sharded_dir, reference):
    index = reference[0]
    q = _queries(reference, 20)
    with ShardedIndex.open(sharded_dir, engine="ray", max_restarts=0, on_failure="partial",
                           timeout=30) as sharded:
        ray.kill(sharded._shards[2], no_restart=True)
        got = sharded.search(q, 10)
        assert got.partial and got.missing_shards == (2,)
        # What came back is exact over the live shards' rows.
        live = index.ids[shard_of(index.ids, SHARDS) != 2]
        ref = Index(index.dim, scheme=index.scheme)
        ref.add(index.get(live), live)
        want = ref.search(q, 10)
        np.testing.assert_array_equal(got.ids, want[1])
        np.testing.assert_array_equal(got.scores, want[0])
    with ShardedIndex.open(sharded_dir, engine="ray", max_restarts=0, timeout=5) as sharded:
        ray.kill(sharded._shards[0], no_restart=True)
        from pplx_kernels.distributed import ShardUnavailableError
        with pytest.raises(ShardUnavailableError):
            sharded.search(q, 10)


def test_parquet_and_text_corpora(cluster, corpus, model_dir, sharded_dir, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pplx_kernels.distributed import build
    _, docs = corpus
    # Parquet: the same documents give the same rows as the JSON Lines build.
    table = pa.table({"id": [d["id"] for d in docs], "title": [d["title"] for d in docs],
                      "text": [d["text"] for d in docs]})
    pq.write_table(table, tmp_path / "docs.parquet", row_group_size=100)
    build(str(tmp_path / "docs.parquet"), tmp_path / "from-parquet", shards=SHARDS, model=model_dir)
    shards = manifest.read(tmp_path / "from-parquet")["shards"]
    got = set().union(*(_triples(Index.load(tmp_path / "from-parquet" / s["path"])) for s in shards))
    want = set().union(*(_triples(Index.load(sharded_dir / s["path"])) for s in shards))
    assert got == want
    # Text: one document per non-blank line, its id the line number from 1.
    lines = [d["text"] or "w1" for d in docs[:40]]
    lines[3] = "   "
    (tmp_path / "docs.txt").write_text("\n".join(lines) + "\n")
    build(str(tmp_path / "docs.txt"), tmp_path / "from-text", shards=2, model=model_dir)
    with ShardedIndex.open(tmp_path / "from-text") as sharded:
        assert len(sharded) == 39
        numbers = [n for n in range(1, 41) if n != 4]
        assert sharded.documents(numbers) == [{"id": n, "title": None, "text": lines[n - 1]} for n in numbers]


def test_split_an_index_without_ray(reference, tmp_path):
    from pplx_kernels.distributed import split
    index = reference[0]
    split(index, tmp_path / "split", shards=4)
    q = _queries(reference, 50)
    with ShardedIndex.open(tmp_path / "split") as sharded:
        assert sharded.shards == 4 and len(sharded) == len(index)
        for mode in ("exact", "two_stage"):
            want = index.search(q, 10, mode=mode, oversample=2)
            got = sharded.search(q, 10, mode=mode, oversample=2)
            np.testing.assert_array_equal(got.ids, want[1])
            np.testing.assert_array_equal(got.scores, want[0])


def test_index_ids_of_document_ids():
    assert index_id(42) == 42 and index_id(-7) == -7
    a, b = index_id("doc-1"), index_id("doc-2")
    assert a != b and a >= 0 and b >= 0 and index_id("doc-1") == a
    with pytest.raises(ValueError, match="^corpus:"):
        index_id(1 << 63)
