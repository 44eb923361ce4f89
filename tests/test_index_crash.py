"""Crash and concurrency proofs for durable indexes.

Crash: a forked child adds, removes, upserts, commits and compacts in a
loop, noting each operation in a journal *before* doing it and each commit
*after* it returns; it is killed with SIGKILL at a random moment. Then the
index must reopen (Index.load with every checksum verified, and
Index.open, which replays the log) to the state after some prefix of the
journal that includes every acknowledged commit: committed rows are all
there with their vectors and documents, nothing half done. The loop runs
in a fresh interpreter (tests/ on its path) so that forking is safe.

Concurrency: reader processes load and search while this process writes,
commits, flushes and compacts; every reader's snapshot has the ids of one
committed generation and its search results equal brute force over it.

Interrupted saves: saves over an index, to a new path and format-1
migrations are killed at random moments; the target always loads as the
old or the new index, and the next open removes every leftover.
"""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np

import pplx_kernels
from pplx_kernels import Index
from pplx_kernels.index import storage

PYTHON_DIR = os.path.dirname(os.path.dirname(pplx_kernels.__file__))
TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
DIM = 12
KILLS = int(os.environ.get("PPLX_KERNELS_CRASH_KILLS", "220"))


def vector(id_: int, version: int) -> np.ndarray:
    """The row that (id, version) always gets: the verifier recomputes it."""
    return np.random.default_rng([id_ & 0xFFFFFFFF, id_ >> 32, version]).integers(-127, 128, DIM, dtype=np.int8)


def rows(ids, version):
    return np.array([vector(i, version) for i in ids], np.int8).reshape(len(ids), DIM)


# --- the crash loop (runs in a child interpreter) --------------------------------------


def writer(path: str, journal: str, seed: int) -> None:
    """Mutates the index until killed; journal lines: {"op": ...} before an
    operation, {"ack": n} once the first n operations are committed."""
    rng = np.random.default_rng(seed)
    with open(journal, "ab", buffering=0) as jr:
        def note(entry):
            jr.write((json.dumps(entry) + "\n").encode())

        index = Index.open(path, create=True, dim=DIM, flush_rows=24)
        live = index.ids.tolist()
        n_ops = 0
        while True:
            what = rng.choice(["add", "add", "remove", "upsert", "commit", "commit", "compact"],
                              p=[0.25, 0.2, 0.15, 0.1, 0.12, 0.12, 0.06])
            if what in ("add", "upsert") or (what == "remove" and not live):
                fresh = rng.integers(0, 2**40, int(rng.integers(1, 6))).tolist()
                fresh = [i for i in dict.fromkeys(fresh) if i not in set(live)]
                old = rng.choice(live, min(len(live), 2), replace=False).tolist() if what == "upsert" and live else []
                ids, version = old + fresh, int(rng.integers(1, 1000))
                kind = "upsert" if what == "upsert" else "add"
                note({"op": kind, "ids": ids, "v": version})
                docs = [{"id": i, "v": version} if i % 2 else None for i in ids]
                (index.upsert if kind == "upsert" else index.add)(rows(ids, version), ids, documents=docs)
                live = [i for i in live if i not in set(old)] + ids
                n_ops += 1
            elif what == "remove":
                gone = rng.choice(live, min(len(live), int(rng.integers(1, 4))), replace=False).tolist()
                note({"op": "remove", "ids": gone})
                index.remove(gone)
                live = [i for i in live if i not in set(gone)]
                n_ops += 1
            else:
                note({"begin": what})
                index.commit() if what == "commit" else index.compact()
                note({"ack": n_ops, "end": what})


def apply(state: dict, op: dict) -> dict:
    state = dict(state)
    if op["op"] == "remove":
        for i in op["ids"]:
            state.pop(i, None)
    else:
        for i in op["ids"]:
            state.pop(i, None)
            state[i] = op["v"]
    return state


def snapshot(index) -> dict:
    """{id: version} of an index, checking each row's vector and document
    against the version its document (or vector) says."""
    ids = index.ids.tolist()
    vectors = index.get(ids) if ids else np.empty((0, DIM), np.int8)
    docs = index.documents(ids) if ids else []
    state = {}
    for i, vec, doc in zip(ids, vectors, docs):
        if i % 2:
            assert doc is not None and doc["id"] == i, f"id {i}: document {doc}"
            version = doc["v"]
        else:
            assert doc is None, f"id {i}: unexpected document {doc}"
            version = None
        state[i] = (version, vec.tobytes())
    return state


def matches(found: dict, expected: dict) -> bool:
    if set(found) != set(expected):
        return False
    for i, version in expected.items():
        got_version, vec = found[i]
        if (got_version is not None and got_version != version) or vec != vector(i, version).tobytes():
            return False
    return True


def _child(work, *args) -> None:
    """Runs work(*args) in a forked child, which must never return."""
    try:
        work(*args)
    except BaseException:
        import traceback
        traceback.print_exc()
    finally:
        os._exit(1)


def crash_loop(path: str, kills: int, seed: int) -> dict:
    """Forks a writer `kills` times, kills it, verifies; returns counts."""
    rng = np.random.default_rng(seed)
    journal = path + ".journal"
    state = {}  # id -> version, as verified after the last kill
    stats = {"kills": 0, "in_commit": 0, "in_compact": 0, "journaled_ops": 0, "recovered_ops": 0, "acked_ops": 0}
    for k in range(kills):
        if os.path.exists(journal):
            os.unlink(journal)
        pid = os.fork()
        if pid == 0:  # the child never returns
            _child(writer, path, journal, seed * 100003 + k)
        time.sleep(float(rng.uniform(0.005, 0.15)))
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        assert os.WIFSIGNALED(status), f"writer {k} exited by itself (status {status}): it failed"
        stats["kills"] += 1
        entries = [json.loads(line) for line in open(journal, "rb").read().splitlines()] \
            if os.path.exists(journal) else []
        ops = [e for e in entries if "op" in e]
        acked = max([e["ack"] for e in entries if "ack" in e], default=0)
        if entries and "begin" in entries[-1]:
            stats["in_" + entries[-1]["begin"]] += 1
        prefixes = [state]
        for op in ops:
            prefixes.append(apply(prefixes[-1], op))
        # The committed snapshot a reader sees, with every checksum verified ...
        if os.path.exists(os.path.join(path, storage.MANIFEST)):
            seen = snapshot(Index.load(path, verify=True))
            assert any(matches(seen, prefixes[j]) for j in range(acked, len(prefixes))), \
                f"kill {k}: load gave no prefix of the journal that holds every commit"
        # ... and the writer's recovery, which also replays what was logged.
        with Index.open(path, create=True, dim=DIM) as index:
            found = snapshot(index)
        j = next((j for j in range(len(prefixes) - 1, acked - 1, -1) if matches(found, prefixes[j])), None)
        assert j is not None, f"kill {k}: recovered state is no prefix of the journal ({len(ops)} ops) " \
                              f"that holds the {acked} committed ones"
        stats["journaled_ops"] += len(ops)
        stats["recovered_ops"] += j
        stats["acked_ops"] += acked
        state = prefixes[j]
    return stats


def _run_in_child(call: str, timeout: int = 300) -> dict:
    code = f"import sys; sys.path[:0] = [{TESTS_DIR!r}, {PYTHON_DIR!r}]; import json, test_index_crash as t; " \
           f"print(json.dumps({call}))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_sigkill_at_random_points_loses_no_commit(tmp_path, capsys):
    stats = _run_in_child(f"t.crash_loop({str(tmp_path / 'ix')!r}, {KILLS}, 11)")
    with capsys.disabled():
        print(f"\ncrash test: {stats}")
    assert stats["kills"] == KILLS
    # The kills really landed inside commits and compactions too.
    assert stats["in_commit"] >= KILLS // 20 and stats["in_compact"] >= 1
    assert stats["acked_ops"] > 0


# --- readers while a writer commits and compacts ------------------------------------


def committed_states(seed: int, rounds: int) -> list:
    """The writer's plan: a list of per-commit (adds, removes)."""
    rng = np.random.default_rng(seed)
    live, plan, next_id = [], [], 0
    for r in range(rounds):
        adds = list(range(next_id, next_id + int(rng.integers(20, 60))))
        next_id += len(adds)
        removes = rng.choice(live, min(len(live), int(rng.integers(0, 15))), replace=False).tolist() if live else []
        live = [i for i in live if i not in set(removes)] + adds
        plan.append((adds, removes))
    return plan


def reader(path: str, seed: int, rounds: int, stop_file: str) -> dict:
    """Loads and searches until the writer is done (stop_file exists), and
    once more after; checks every snapshot against the committed states of
    the writer's plan."""
    states, live = {frozenset()}, set()
    for adds, removes in committed_states(seed, rounds):
        live = (live - set(removes)) | set(adds)
        states.add(frozenset(live))
    rng = np.random.default_rng(os.getpid())
    checks, last, deadline, generations = 0, False, time.monotonic() + 300, set()
    while not last and time.monotonic() < deadline:
        last = os.path.exists(stop_file)
        try:
            index = Index.load(path)
        except FileNotFoundError:
            continue  # not created yet
        ids = index.ids.tolist()
        assert frozenset(ids) in states, f"snapshot of {len(ids)} ids is no committed generation"
        generations.add(frozenset(ids))
        if not ids:
            continue
        queries = rng.integers(-127, 128, (3, DIM), dtype=np.int8)
        mode = "exact" if checks % 2 else "two_stage"
        scores, found = index.search(queries, 5, mode=mode, oversample=1000)
        database = rows(ids, 0).astype(np.float64)
        q = queries.astype(np.float64)
        sim = (q @ database.T) / np.maximum(np.linalg.norm(q, axis=1)[:, None] * np.linalg.norm(database, axis=1), 1e-30)
        best = -np.sort(-sim, axis=1)[:, :min(5, len(ids))]
        assert np.allclose(scores, best, atol=2e-6), "search differs from brute force over the snapshot"
        where = {i: r for r, i in enumerate(ids)}
        assert np.allclose([[sim[m, where[i]] for i in row] for m, row in enumerate(found.tolist())], scores,
                           atol=2e-6)
        checks += 1
    return {"checks": checks, "generations": len(generations)}


def test_readers_see_one_committed_generation(tmp_path):
    path, seed, rounds, stop = str(tmp_path / "ix"), 5, 60, str(tmp_path / "done")
    plan = committed_states(seed, rounds)
    code = f"import sys; sys.path[:0] = [{TESTS_DIR!r}, {PYTHON_DIR!r}]; import json, test_index_crash as t; " \
           f"print(json.dumps(t.reader({path!r}, {seed}, {rounds}, {stop!r})))"
    readers = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True) for _ in range(2)]
    index = Index.open(path, create=True, dim=DIM, flush_rows=100)
    index.commit()
    time.sleep(0.5)  # let the readers start
    for r, (adds, removes) in enumerate(plan):
        index.add(rows(adds, 0), adds)
        index.remove(removes)
        index.commit()
        if r % 7 == 6:
            index.compact()
    index.close()
    open(stop, "w").close()
    seen = []
    for proc in readers:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-4000:]
        seen.append(json.loads(out.strip().splitlines()[-1]))
    assert all(r["checks"] > 0 for r in seen)
    assert max(r["generations"] for r in seen) > 2, f"the readers did not overlap the writer: {seen}"


# --- interrupted saves ------------------------------------------------------------------


def saver(root: str, seed: int) -> None:
    """Saves alternately two known indexes over root/ix and to new paths,
    and migrates format-1 directories, until killed."""
    a, b = Index(DIM), Index(DIM)
    a.add(rows(range(300), 0), np.arange(300), documents=[{"i": i} for i in range(300)])
    b.add(rows(range(1000, 1500), 0), np.arange(1000, 1500))
    k = 0
    while True:
        (a if k % 2 else b).save(os.path.join(root, "ix"))
        a.save(os.path.join(root, f"new-{k % 3}"))
        if k % 3 == 0:
            Index.open(os.path.join(root, "v1"), create=False).close()
        k += 1


def _leftovers(root: str, name: str) -> list:
    path = os.path.join(root, name)
    left = [e for e in os.listdir(root) if e.startswith(f".{name}.saving-")]
    if os.path.exists(os.path.join(path, storage.MANIFEST)):
        listed = storage.listed_files(storage.read_manifest(path)) | {storage.MANIFEST, storage.LOCK_FILE}
        left += [e for e in os.listdir(path) if e not in listed]
    return left


def save_crash_loop(root: str, kills: int, seed: int) -> dict:
    from test_index_storage import write_format1
    rng = np.random.default_rng(seed)
    a_ids, b_ids = set(range(300)), set(range(1000, 1500))
    v1_rows = rows(range(40), 0)
    stats = {"kills": 0, "left_before_open": 0}
    for k in range(kills):
        if k % 3 == 0:
            import shutil
            shutil.rmtree(os.path.join(root, "v1"), ignore_errors=True)
            write_format1(os.path.join(root, "v1"), v1_rows, np.arange(40) * 7,
                          docs=[{"t": i} for i in range(40)], model_dir="/models/x")
        pid = os.fork()
        if pid == 0:
            _child(saver, root, k)
        time.sleep(float(rng.uniform(0.005, 0.12)))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        stats["kills"] += 1
        if os.path.exists(os.path.join(root, "ix")):
            ids = set(Index.load(os.path.join(root, "ix"), verify=True).ids.tolist())
            assert ids in (a_ids, b_ids), f"kill {k}: ix holds neither index"
        for n in range(3):
            new = os.path.join(root, f"new-{n}")
            if os.path.exists(new):
                loaded = Index.load(new, verify=True)
                assert set(loaded.ids.tolist()) == a_ids and loaded.documents([7]) == [{"i": 7}]
        v1 = Index.load(os.path.join(root, "v1"), verify=True)
        assert np.array_equal(v1.get(np.arange(40) * 7), v1_rows), f"kill {k}: format-1 migration lost rows"
        assert v1.documents([21]) == [{"t": 3}] and v1.model["path"] == "/models/x"
        stats["left_before_open"] += sum(len(_leftovers(root, n)) for n in ("ix", "new-0", "new-1", "new-2"))
        # The next open (or save) removes whatever the killed save left.
        for name in ("ix", "new-0", "new-1", "new-2", "v1"):
            if os.path.exists(os.path.join(root, name)):
                Index.open(os.path.join(root, name)).close()
                assert _leftovers(root, name) == [], f"kill {k}: {name} keeps {_leftovers(root, name)}"
    return stats


def test_saves_killed_midway_leave_a_loadable_index(tmp_path, capsys):
    stats = _run_in_child(f"t.save_crash_loop({str(tmp_path)!r}, {max(KILLS // 4, 20)}, 3)")
    with capsys.disabled():
        print(f"\nsave crash test: {stats}")
    assert stats["left_before_open"] > 0  # some kills did land mid-save
