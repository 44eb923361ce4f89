"""Search over a sharded index directory, with results identical to one Index.

Every query goes to every shard; each shard answers with its own best rows,
and the merge here picks the global best by (score descending, id
ascending): the order one Index over all rows uses when its rows are in id
order (shards store their rows sorted by id).

exact       each shard returns its top-k by int8 cosine; the global top-k
            is among them.
two_stage   one Index takes the C = ceil(k * oversample) rows nearest by
            Hamming distance over *all* rows (ties to the lower id) and
            rescores only those by cosine. Per-shard two-stage search would
            rescore each shard's own C nearest: another candidate set, so
            other results. Instead each shard returns its C nearest by
            Hamming with their distances and cosine scores; the global C
            nearest are among them, and the merge takes those, then the
            top-k of them by cosine. One round trip, C rows per shard.

"One Index" means an Index of one part (as Index(dim).add(...) or save()
make): Index v2 takes two-stage candidates per segment, so an index of
several segments can answer two-stage queries differently from itself
compacted. Filters (allow_ids, deny_ids) go to every shard, which applies
them inside its own scan (ids it does not hold are ignored), so both merges
stay exact; min_score is applied to the merged result, as Index does.

engine="local" opens the shards in this process; engine="ray" starts one
Ray actor per shard (SPREAD placement, restarted after a crash up to
max_restarts times; a restarted actor reloads its shard). A query that
meets a dead or restarting shard either waits for it (on_failure="wait",
up to `timeout` seconds, then ShardUnavailableError) or returns what the
live shards found, marked: every search returns a SearchResult, a
(scores, ids) pair with .partial and .missing_shards.
"""

from __future__ import annotations

import math
import os
import time

import numpy as np

from . import manifest as mf
from .._validate import threads_arg
from ..quantize import Quantized

ENGINES = ("local", "ray")
ON_FAILURE = ("wait", "partial")


class ShardUnavailableError(RuntimeError):
    """A shard did not answer within the timeout (on_failure="wait")."""


class SearchResult(tuple):
    """(scores, ids), unpacking like Index.search's result, plus whether
    some shards were missing from it."""

    missing_shards: tuple

    def __new__(cls, scores, ids, missing_shards=()) -> "SearchResult":
        result = super().__new__(cls, (scores, ids))
        result.missing_shards = tuple(missing_shards)
        return result

    @property
    def scores(self):
        return self[0]

    @property
    def ids(self):
        return self[1]

    @property
    def partial(self) -> bool:
        return bool(self.missing_shards)


class Shard:
    """One shard: an Index opened from its directory, answering the
    per-shard half of a sharded search. Also the body of the Ray actor."""

    def __init__(self, path, mmap=True, threads=None):
        from ..index import Index
        self.path = os.fspath(path)
        self.index = Index.load(self.path, mmap=mmap)
        self.threads = threads

    def ping(self) -> int:
        return len(self.index)

    def exact(self, codes: np.ndarray, k: int, allow_ids=None, deny_ids=None):
        """Top-k (scores, ids) by int8 cosine over the allowed rows."""
        return self.index.search(codes, k, allow_ids=allow_ids, deny_ids=deny_ids, threads=self.threads)

    def candidates(self, codes: np.ndarray, bits: np.ndarray, c: int, allow_ids=None, deny_ids=None):
        """The c rows nearest by Hamming distance, ties to the lower id (a
        shard the build writes is one segment in id order): (distances
        int32 [M, c'], ids int64 [M, c'], their cosine float32 [M, c']),
        c' = min(c, rows)."""
        queries = Quantized(codes, bits, self.index.scheme)
        return self.index.hamming_candidates(queries, c, allow_ids=allow_ids, deny_ids=deny_ids,
                                             threads=self.threads)

    def documents(self, ids) -> list:
        return self.index.documents(ids)

    def contains(self, id_) -> bool:
        return id_ in self.index

    def close(self) -> None:
        self.index.close()


class ShardedIndex:
    """A sharded index directory opened for search; see the module docstring."""

    def __init__(self, path, meta, shards, engine, timeout, on_failure):
        self.path = path
        self._meta = meta
        self._shards = shards  # Shard objects (local) or Ray actor handles
        self._engine = engine
        self.timeout = timeout
        self.on_failure = on_failure
        self._encoder = None

    @classmethod
    def open(cls, path, *, engine="local", address=None, verify=False, mmap=True, threads=None,
             cpus_per_shard=None, max_restarts=3, timeout=60.0, on_failure="wait",
             start_timeout=300.0) -> "ShardedIndex":
        """Opens DIR written by distributed.build. engine "local" or "ray"
        (address: the cluster to join; default the running one, else a
        local one). verify: recompute every shard's checksum first.
        cpus_per_shard (ray): CPUs each shard actor reserves (default:
        the cluster's CPUs / shards, at most 1). timeout / on_failure: what
        a search does when a shard is down (see the module docstring).
        start_timeout: seconds to wait for the shard actors to come up."""
        if engine not in ENGINES:
            raise ValueError(f"engine: expected one of {ENGINES}, got {engine!r}")
        if on_failure not in ON_FAILURE:
            raise ValueError(f"on_failure: expected one of {ON_FAILURE}, got {on_failure!r}")
        if not (isinstance(timeout, (int, float)) and timeout > 0):
            raise ValueError(f"timeout: expected a positive number of seconds, got {timeout!r}")
        path = os.path.abspath(os.fspath(path))
        meta = mf.read(path, verify=verify)
        dirs = [os.path.join(path, s["path"]) for s in meta["shards"]]
        if engine == "local":
            shards = [Shard(d, mmap=mmap, threads=threads) for d in dirs]
        else:
            shards = _start_actors(dirs, address, mmap, threads, cpus_per_shard, max_restarts)
        if engine == "ray":
            _ask_actors(shards, "ping", (), start_timeout, "wait")
        return cls(path, meta, shards, engine, timeout, on_failure)

    # --- properties --------------------------------------------------------

    @property
    def dim(self) -> int:
        return self._meta["dim"]

    @property
    def scheme(self) -> str:
        return self._meta["scheme"]

    @property
    def metric(self) -> str:
        return self._meta["metric"]

    @property
    def model(self) -> dict:
        return dict(self._meta["model"])

    @property
    def shards(self) -> int:
        return len(self._meta["shards"])

    def __len__(self) -> int:
        return self._meta["rows"]

    def __repr__(self) -> str:
        return (f"ShardedIndex({self.path!r}, shards={self.shards}, engine={self._engine!r}, "
                f"count={len(self)}, dim={self.dim}, scheme={self.scheme!r})")

    # --- search ------------------------------------------------------------

    def search(self, queries, k=10, *, mode="exact", oversample=None, allow_ids=None, deny_ids=None,
               min_score=None, threads=None) -> SearchResult:
        """Same arguments and results as Index.search, as a SearchResult:
        each shard applies the filters to its own rows, inside its scan."""
        from ..index import apply_min_score, filter_ids_arg, min_score_arg, search_args
        k, oversample = search_args(k, mode, oversample)
        threads_arg(threads)
        min_score_arg(min_score)
        allow, deny = filter_ids_arg(allow_ids, "allow_ids"), filter_ids_arg(deny_ids, "deny_ids")
        codes, bits, single = self._encode(queries)
        n, m = len(self), len(codes)
        kk = min(k, n)
        c = min(n, math.ceil(k * oversample))
        if m == 0 or kk == 0:
            result = SearchResult(np.empty((m, kk), np.float32), np.empty((m, kk), np.int64))
        elif mode == "two_stage" and c < n:
            answers, missing = self._ask("candidates", codes, bits, c, allow, deny)
            scores, ids = _merge_two_stage(answers, m, k, c)
            scores, ids = apply_min_score(scores, ids, min_score)
            result = SearchResult(scores, ids, missing)
        else:
            answers, missing = self._ask("exact", codes, k, allow, deny)
            scores, ids = _merge_exact(answers, m, k)
            scores, ids = apply_min_score(scores, ids, min_score)
            result = SearchResult(scores, ids, missing)
        if single:
            return SearchResult(result[0][0], result[1][0], result.missing_shards)
        return result

    def _encode(self, queries):
        """int8 codes and sign bits exactly as Index.search makes them (by
        an empty Index of the same dim and scheme, so the rules are one)."""
        if self._encoder is None:
            from ..index import Index
            self._encoder = Index(self.dim, scheme=self.scheme)
        return self._encoder._encode(queries, "queries")

    def _ask(self, method: str, *args):
        """Calls `method` on every shard: ([answers of the shards that
        answered], [missing shard numbers])."""
        if self._engine == "local":
            return [getattr(s, method)(*args) for s in self._shards], []
        return _ask_actors(self._shards, method, args, self.timeout, self.on_failure)

    # --- documents ---------------------------------------------------------

    def documents(self, ids) -> list:
        """Stored documents of these ids, in order (KeyError for an id not
        in the index, as Index.documents)."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        owner = mf.shard_of(ids, self.shards)
        out = [None] * len(ids)
        for s in np.unique(owner).tolist():
            where = np.nonzero(owner == s)[0]
            answers, missing = self._ask_one(s, "documents", ids[where].tolist())
            for j, doc in zip(where.tolist(), answers):
                out[j] = doc
        return out

    def _ask_one(self, shard: int, method: str, *args):
        if self._engine == "local":
            return getattr(self._shards[shard], method)(*args), []
        answers, missing = _ask_actors([self._shards[shard]], method, args, self.timeout, "wait")
        return answers[0], missing

    # --- lifetime ----------------------------------------------------------

    def __contains__(self, id_) -> bool:
        if isinstance(id_, bool) or not isinstance(id_, (int, np.integer)):
            return False
        shard = int(mf.shard_of([id_], self.shards)[0])
        return bool(self._ask_one(shard, "contains", int(id_))[0])

    def close(self) -> None:
        if self._engine == "ray":
            import ray
            for actor in self._shards:
                ray.kill(actor, no_restart=True)
        else:
            for shard in self._shards:
                shard.close()
        self._shards = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# --- merging -------------------------------------------------------------------


def _merge_exact(answers, m, k):
    scores = np.concatenate([a[0].reshape(m, -1) for a in answers], axis=1)
    ids = np.concatenate([a[1].reshape(m, -1) for a in answers], axis=1)
    kk = min(k, scores.shape[1])
    order = np.lexsort((ids, -scores.astype(np.float64)), axis=1)[:, :kk]
    return np.take_along_axis(scores, order, 1), np.take_along_axis(ids, order, 1)


def _merge_two_stage(answers, m, k, c):
    dist = np.concatenate([a[0] for a in answers], axis=1)
    ids = np.concatenate([a[1] for a in answers], axis=1)
    cos = np.concatenate([a[2] for a in answers], axis=1)
    # The global c nearest by Hamming (ties to the lower id) ...
    near = np.lexsort((ids, dist), axis=1)[:, :c]
    ids, cos = np.take_along_axis(ids, near, 1), np.take_along_axis(cos, near, 1)
    # ... then their best k by cosine (ties to the lower id).
    kk = min(k, ids.shape[1])
    best = np.lexsort((ids, -cos.astype(np.float64)), axis=1)[:, :kk]
    return np.take_along_axis(cos, best, 1), np.take_along_axis(ids, best, 1)


# --- Ray -----------------------------------------------------------------------


def _start_actors(dirs, address, mmap, threads, cpus_per_shard, max_restarts):
    import ray
    if not ray.is_initialized():
        ray.init(address=address, log_to_driver=False)
    if cpus_per_shard is None:  # in hundredths, so that the shares add up to no more than the CPUs
        cpus_per_shard = min(1.0, math.floor(100 * ray.cluster_resources().get("CPU", 1) / len(dirs)) / 100)
    actor = ray.remote(Shard).options(
        num_cpus=cpus_per_shard, scheduling_strategy="SPREAD",
        max_restarts=max_restarts, max_task_retries=0)  # retries are ours: wait or partial
    threads = threads or max(1, int(cpus_per_shard))
    return [actor.remote(d, mmap=mmap, threads=threads) for d in dirs]


def _ask_actors(actors, method, args, timeout, on_failure):
    """Calls method(*args) on every actor. A call that fails because its
    actor died is sent again until `timeout` (on_failure="wait") or counted
    missing (on_failure="partial"). Returns (answers in actor order, missing)."""
    import ray
    from ray.exceptions import ActorUnavailableError, RayActorError

    deadline = time.monotonic() + timeout
    # A large array goes to the object store once for all shards; small
    # ones travel inline with each call (a put costs a round trip).
    args_ref = [ray.put(a) if isinstance(a, np.ndarray) and a.nbytes > (64 << 10) else a for a in args]
    pending = {getattr(a, method).remote(*args_ref): i for i, a in enumerate(actors)}
    answers, missing = {}, []
    while pending:
        left = deadline - time.monotonic()
        ready, _ = ray.wait(list(pending), num_returns=1, timeout=max(0.0, left))
        if not ready:
            if on_failure == "partial":
                missing.extend(pending.values())
                break
            raise ShardUnavailableError(
                f"shards {sorted(pending.values())} did not answer within {timeout} s")
        ref = ready[0]
        i = pending.pop(ref)
        try:
            answers[i] = ray.get(ref)
        except (RayActorError, ActorUnavailableError) as exc:
            if getattr(exc, "actor_init_failed", False):  # it cannot load its shard: waiting will not help
                raise ShardUnavailableError(f"shard {i} failed to start: {exc}") from exc
            if on_failure == "partial":
                missing.append(i)
            elif time.monotonic() >= deadline:
                raise ShardUnavailableError(f"shard {i} did not come back within {timeout} s: {exc}") from exc
            else:  # the actor is restarting: ask it again
                time.sleep(0.05)
                pending[getattr(actors[i], method).remote(*args_ref)] = i
    return [answers[i] for i in sorted(answers)], sorted(missing)


def open_any(path, **options):
    """An Index for an index directory, a ShardedIndex for a sharded one
    (options: those of ShardedIndex.open); both answer search() and
    documents() alike."""
    if mf.is_sharded(path):
        return ShardedIndex.open(path, **options)
    from ..index import Index
    return Index.load(path, mmap=True)
