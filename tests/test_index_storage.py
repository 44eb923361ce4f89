"""Durable indexes: open/commit/reopen, the write-ahead log (replay, torn
tails, rollback), the writer lock, group commit, segments and compaction,
format-1 directories (what `pplx-kernels index` wrote before: header.json,
one file per array, docs.jsonl and cli.json), saving through a symlink and
the clean-up of what interrupted saves left."""

import fcntl
import hashlib
import json
import os
import threading
import time

import numpy as np
import pytest

from pplx_kernels import Index
from pplx_kernels.index import IndexFormatError, IndexLockedError, storage

DIM = 24


def codes(rng, n):
    return rng.integers(-127, 128, (n, DIM), dtype=np.int8)


def write_format1(path, vectors, ids, docs=None, model_dir=None):
    """A format-1 index directory written by hand, as pplx-kernels 0.1 did."""
    os.makedirs(path)
    n, dim = vectors.shape
    arrays = {
        "codes.i8": vectors.astype("<i1").tobytes(),
        "norms.f32": np.linalg.norm(vectors.astype(np.float64), axis=1).astype("<f4").tobytes(),
        "bits.u8": np.packbits(vectors >= 0, axis=1).tobytes(),
        "ids.i64": np.asarray(ids, "<i8").tobytes(),
    }
    if docs is not None:
        arrays["docs.jsonl"] = "".join(json.dumps(d) + "\n" for d in docs).encode()
    if model_dir is not None:
        arrays["cli.json"] = json.dumps({"model_dir": model_dir}).encode()
    for name, data in arrays.items():
        with open(os.path.join(path, name), "wb") as fh:
            fh.write(data)
    header = {"format": "pplx-kernels-index", "version": 1, "dim": dim, "count": n, "metric": "cosine",
              "scheme": "tanh", "model": {"name": "old-model", "sha256": None}, "bitorder": "big",
              "arrays": {k: {"file": f, "dtype": t} for k, f, t in [
                  ("codes", "codes.i8", "<i1"), ("norms", "norms.f32", "<f4"), ("bits", "bits.u8", "|u1"),
                  ("ids", "ids.i64", "<i8")]},
              "files": {name: {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
                        for name, data in arrays.items()}}
    header["header_sha256"] = hashlib.sha256(json.dumps(header, sort_keys=True, separators=(",", ":"))
                                             .encode()).hexdigest()
    with open(os.path.join(path, "header.json"), "w") as fh:
        json.dump(header, fh)


def test_commit_survives_reopen_and_uncommitted_rolls_back(rng, tmp_path):
    path = tmp_path / "ix"
    with Index.open(path, create=True, dim=DIM, model={"name": "m", "path": "/m"}) as index:
        a = index.add(codes(rng, 30), documents=[{"n": i} for i in range(30)])
        index.commit()
        index.remove(a[:5])
    with pytest.raises(RuntimeError, match="boom"):
        with Index.open(path) as index:
            assert len(index) == 25  # close() committed the remove
            index.add(codes(rng, 10))
            raise RuntimeError("boom")
    index = Index.open(path)
    assert sorted(index.ids.tolist()) == a[5:].tolist() and index.model["path"] == "/m"
    assert index.documents(a[5:7]) == [{"n": 5}, {"n": 6}]
    # Automatic ids go on after the largest id ever held, also after reopening.
    assert index.add(codes(rng, 1))[0] == 30
    index.close()
    with pytest.raises(ValueError, match="index: is closed"):
        index.search(codes(rng, 1), 1)


def test_open_arguments(rng, tmp_path):
    with pytest.raises(FileNotFoundError, match="pass create=True"):
        Index.open(tmp_path / "none")
    with pytest.raises(ValueError, match="dim: needed to create an index"):
        Index.open(tmp_path / "new", create=True)
    Index.open(tmp_path / "ix", create=True, dim=DIM).close()
    with pytest.raises(ValueError, match="dim: the index at .* has dim 24"):
        Index.open(tmp_path / "ix", dim=8)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("precious")
    with pytest.raises(FileExistsError, match="not a pplx-kernels index"):
        Index.open(tmp_path / "mine", create=True, dim=DIM)
    readonly = Index.open(tmp_path / "ix", readonly=True)
    with pytest.raises(ValueError, match="index: is read-only"):
        readonly.remove([1])


def test_one_writer_at_a_time(rng, tmp_path):
    first = Index.open(tmp_path / "ix", create=True, dim=DIM)
    with pytest.raises(IndexLockedError, match="open for writing elsewhere"):
        Index.open(tmp_path / "ix")
    with pytest.raises(IndexLockedError):
        Index(DIM).save(tmp_path / "ix")
    first.add(codes(rng, 3))
    first.commit()
    assert len(Index.load(tmp_path / "ix")) == 3  # readers need no lock
    first.close()
    Index.open(tmp_path / "ix").close()


def test_torn_log_tail_is_dropped(rng, tmp_path):
    path = tmp_path / "ix"
    index = Index.open(path, create=True, dim=DIM)
    kept = index.add(codes(rng, 10))
    index.commit()
    index.add(codes(rng, 5))
    log = path / json.loads((path / "manifest.json").read_text())["wal"]["file"]
    index._wal.fsync()
    full = log.read_bytes()
    index._release()  # like a crash: no commit
    for cut in (len(full) - 1, len(full) - 40):
        log.write_bytes(full[:cut])  # the last record is torn
        reopened = Index.open(path)
        assert sorted(reopened.ids.tolist()) == kept.tolist()
        reopened._release()
    log.write_bytes(full[:-1] + bytes([full[-1] ^ 1]))  # a flipped byte fails the checksum
    reopened = Index.open(path)
    assert sorted(reopened.ids.tolist()) == kept.tolist()
    assert log.stat().st_size < len(full)  # the bad tail was cut off before new appends
    reopened.add(codes(rng, 2))
    reopened.close()
    assert len(Index.open(path, readonly=True)) == 12


def test_damage_inside_committed_log_records_is_refused(rng, tmp_path):
    path = tmp_path / "ix"
    with Index.open(path, create=True, dim=DIM) as index:
        index.add(codes(rng, 10))
    log = path / json.loads((path / "manifest.json").read_text())["wal"]["file"]
    data = bytearray(log.read_bytes())
    data[20] ^= 1  # inside the committed add: a flipped bit, not a torn tail
    log.write_bytes(bytes(data))
    for opener in (Index.load, Index.open):
        with pytest.raises(IndexFormatError, match="is damaged: committed records end at byte"):
            opener(path)


def test_group_commit_from_threads(rng, tmp_path, monkeypatch):
    index = Index.open(tmp_path / "ix", create=True, dim=DIM)
    fsyncs = []
    real_fsync = index._wal.fsync

    def slow_fsync():  # a disk that takes 20 ms: commits arriving meanwhile must share the next one
        fsyncs.append(1)
        time.sleep(0.02)
        real_fsync()
    monkeypatch.setattr(index._wal, "fsync", slow_fsync)
    data = codes(rng, 8 * 20)
    barrier = threading.Barrier(8)

    def work(t):
        barrier.wait()
        for j in range(20):
            index.add(data[t * 20 + j], [t * 20 + j])
            index.commit()

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # One fsync per commit would be 160; shared ones measured 70-90 here.
    assert len(fsyncs) <= 120, f"{len(fsyncs)} fsyncs for 160 commits: no group commit"
    index._release()  # no close(): every row must already be durable
    reopened = Index.open(tmp_path / "ix", readonly=True)
    assert sorted(reopened.ids.tolist()) == list(range(160))
    assert np.array_equal(reopened.get(np.arange(160)), data)


def test_segments_flush_merge_and_compaction_keep_everything(rng, tmp_path):
    path = tmp_path / "ix"
    index = Index.open(path, create=True, dim=DIM, flush_rows=50)
    data, live = codes(rng, 2000), {}
    for lo in range(0, 2000, 40):
        ids = index.add(data[lo:lo + 40], documents=[{"row": r} for r in range(lo, lo + 40)])
        live.update({int(i): r for i, r in zip(ids, range(lo, lo + 40))})
        index.commit()
        if lo % 400 == 0:
            gone = list(live)[::9]
            index.remove(gone)
            for i in gone:
                del live[i]
    assert 2 <= len(index._segments) < 2000 // 50  # flushed, and merged by tier
    queries = codes(rng, 4)
    before = index.search(queries, 10)

    def same(other):
        want = sorted(live)
        assert sorted(other.ids.tolist()) == want
        assert np.array_equal(other.get(want), data[[live[i] for i in want]])
        assert other.documents(want) == [{"row": live[i]} for i in want]
        s, i = other.search(queries, 10)
        assert np.array_equal(s, before[0]) and np.array_equal(i, before[1])

    same(index)
    same(Index.load(path, mmap=False, verify=True))
    reader = Index.load(path)  # pinned before the compaction deletes its files
    index.compact()
    assert len(index._segments) == 1 and index._segments[0].dead is None
    # The id map was moved along with the rows, not rebuilt: it agrees with a fresh one.
    state, probe = index._state, np.array(sorted(live) + [0, 10**15], np.int64)
    assert state.idmap is not None
    assert np.array_equal(state.lookup(probe, state.idmap), state.lookup(probe, state.build_idmap()))
    same(index)
    same(reader)
    index.close()
    same(Index.load(path, verify=True))
    manifest = json.loads((path / "manifest.json").read_text())
    assert set(os.listdir(path)) == storage.listed_files(manifest) | {"manifest.json", "LOCK"}


def test_appending_to_a_mapped_index_copies_nothing(rng, tmp_path):
    path = tmp_path / "ix"
    index = Index.open(path, create=True, dim=DIM, flush_rows=1000)
    index.add(codes(rng, 3000))
    index.commit()
    index.close()
    index = Index.open(path, flush_rows=1000)
    (segment,) = index._segments
    assert isinstance(segment.codes.base, np.memmap) or isinstance(segment.codes, np.memmap)
    index.add(codes(rng, 1500))
    index.remove([5])
    index.commit()
    assert index._segments[0].codes is segment.codes  # the mapped rows were neither copied nor rewritten
    assert len(index._segments) == 2 and len(index) == 4499


def test_format1_directory_loads_and_migrates(rng, tmp_path):
    path = tmp_path / "old"
    vectors, ids = codes(rng, 50), rng.choice(10**9, 50, replace=False)
    docs = [{"id": f"doc-{r}", "text": f"text {r}"} for r in range(50)]
    write_format1(path, vectors, ids, docs, model_dir="/models/mini")
    old = Index.load(path)
    assert np.array_equal(old.ids, ids) and np.array_equal(old.get(ids[[3, 1]]), vectors[[3, 1]])
    # docs.jsonl was in row order: each row's document now comes by its user id.
    assert old.documents(ids[[7, 2]]) == [docs[7], docs[2]]
    assert old.model == {"name": "old-model", "sha256": None, "path": "/models/mini"}
    queries = codes(rng, 3)
    before = old.search(queries, 5)
    with Index.open(path) as index:  # migrates in place
        assert index.documents(ids[[7]]) == [docs[7]] and index.model["path"] == "/models/mini"
        index.add(codes(rng, 2), [1, 2])
    assert not {"header.json", "codes.i8", "docs.jsonl", "cli.json"} & set(os.listdir(path))
    again = Index.load(path, verify=True)
    assert len(again) == 52 and again.documents(ids[[9]]) == [docs[9]]
    assert np.array_equal(again.search(queries, 5, allow_ids=ids)[1], before[1])
    # A loaded format-1 index saved elsewhere keeps its documents.
    write_format1(tmp_path / "old2", vectors, ids, docs)
    Index.load(tmp_path / "old2").save(tmp_path / "copy")
    assert Index.load(tmp_path / "copy").documents(ids[[0]]) == [docs[0]]
    # ... and saved over itself becomes format 2 without losing them.
    Index.load(tmp_path / "old2").save(tmp_path / "old2")
    assert Index.load(tmp_path / "old2").documents(ids[[49]]) == [docs[49]]
    assert "header.json" not in os.listdir(tmp_path / "old2")


def test_save_through_a_symlink_writes_into_its_target(rng, tmp_path):
    (tmp_path / "real").mkdir()
    index = Index(DIM)
    index.add(codes(rng, 5))
    index.save(tmp_path / "real" / "ix")
    os.symlink(tmp_path / "real" / "ix", tmp_path / "link")
    index.add(codes(rng, 5))
    index.save(tmp_path / "link")
    assert os.path.islink(tmp_path / "link")
    assert len(Index.load(tmp_path / "real" / "ix")) == 10 and len(Index.load(tmp_path / "link")) == 10
    with Index.open(tmp_path / "link") as opened:
        assert opened.path == str(tmp_path / "real" / "ix")


def test_leftovers_of_interrupted_saves_are_removed_without_pids(rng, tmp_path):
    index = Index(DIM)
    index.add(codes(rng, 5))
    index.save(tmp_path / "ix")
    # A format-1 fallback save left the previous index aside; a killed save
    # left its temporary directory (the saver's PID is meaningless here).
    (tmp_path / ".ix.previous-123").mkdir()
    (tmp_path / ".ix.saving-999-abcd").mkdir()
    (tmp_path / ".ix.saving-999-abcd" / "seg-000001.codes.i8").write_bytes(b"x")
    # A save that is still running holds .ix.lock shared: nothing is removed.
    fd = os.open(tmp_path / ".ix.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_SH)
    Index.open(tmp_path / "ix").close()
    assert {".ix.previous-123", ".ix.saving-999-abcd"} <= set(os.listdir(tmp_path))
    os.close(fd)
    Index.open(tmp_path / "ix").close()
    assert sorted(e for e in os.listdir(tmp_path) if not e.endswith(".lock")) == ["ix"]


def test_compaction_while_other_threads_add_remove_and_search(rng, tmp_path):
    """compact() and tier merges run while one thread adds and removes and
    another searches: nothing is lost or resurrected, every search sees a
    consistent state."""
    index = Index.open(tmp_path / "ix", create=True, dim=DIM, flush_rows=40)
    data = codes(rng, 3000)
    index.add(data[:1000], np.arange(1000))
    index.commit()
    live, errors, stop = set(range(1000)), [], threading.Event()
    query = codes(rng, 1)

    def writer():
        r = np.random.default_rng(1)
        for lo in range(1000, 3000, 50):
            index.add(data[lo:lo + 50], np.arange(lo, lo + 50))
            live.update(range(lo, lo + 50))
            gone = r.choice(sorted(live), 20, replace=False)
            index.remove(gone)
            live.difference_update(gone.tolist())
            if lo % 200 == 0:
                index.commit()

    def searcher():
        while not stop.is_set():
            s, i = index.search(query, 5, deny_ids=[0, 1])
            rows = data[i[0]].astype(np.float64)
            q = query[0].astype(np.float64)
            true = rows @ q / (np.linalg.norm(rows, axis=1) * np.linalg.norm(q))
            # Real rows with their true scores, best first, never a denied one.
            if not (np.allclose(s[0], true, atol=2e-6) and np.all(np.diff(s[0]) <= 0)) or {0, 1} & set(i[0].tolist()):
                errors.append(i)

    threads = [threading.Thread(target=writer), threading.Thread(target=searcher)]
    for t in threads:
        t.start()
    while threads[0].is_alive():
        index.compact()
    threads[0].join()
    stop.set()
    threads[1].join()
    assert not errors
    index.close()
    reopened = Index.load(tmp_path / "ix", verify=True)
    assert set(reopened.ids.tolist()) == live
    want = sorted(live)
    assert np.array_equal(reopened.get(want), data[want])
