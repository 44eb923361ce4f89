"""Cross-request batching and admission.

Embedding: every text of every request is one queue item; a batch is the
queued items, oldest first, up to a token budget (--max-batch-tokens),
handed to Embedder.pool_encodings, which sorts them by length and pads only
within model calls (each call takes rows down to 90% of its longest:
embedder.MAX_ROW_PADDING). Batches run on `threads` model workers at once,
each single-threaded: measured on 2 shared cores, two one-thread ONNX Runtime
calls cost half the CPU of one two-thread call (whose threads spin and wait
on each other). With several workers free, the queue is shared out among
them, cut only between requests.

Search: every query row is one item; queued rows that can share a top-k
call (same dtype, mode, filter, and for two_stage the same k and
oversample) are stacked into one call of up to 64 rows, and each request
gets its own rows back. A top-k prefix does not depend on k or on the other
rows of the call (ties go to the lower row, whatever the block), so answers
equal one-query calls.

A batch starts as soon as a worker is free (while all are busy, the next
batch queues up: under load batches grow by themselves, and a lone request
waits for nothing); when the queue was empty, the batcher first lets the
event loop run once, so requests parsed in the same turn join. Items whose
request went away (client disconnect, deadline: the waiting future is
cancelled) are dropped before they cost model or kernel time.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import ApiError

# Retry hint in 429 answers: about one batch.
RETRY_AFTER_MS = 100


class Admission:
    """At most `limit` inputs (texts, chunks, queries) in flight."""

    def __init__(self, limit: int, metrics):
        self.limit = limit
        self.in_flight = 0
        self._metrics = metrics

    def admit(self, n: int) -> "_Held":
        if self.in_flight + n > self.limit:
            self._metrics.count("pplx_dropped", reason="overloaded")
            raise ApiError(429, f"Model is overloaded: {self.in_flight} inputs in flight, the limit is "
                                f"{self.limit} (--max-concurrent-requests); retry shortly",
                           kind="Overloaded", code="rate_limit_exceeded",
                           headers={"Retry-After": "1", "retry-after-ms": str(RETRY_AFTER_MS)})
        self.in_flight += n
        self._metrics.in_flight.set(self.in_flight)
        return _Held(self, n)


class _Held:
    def __init__(self, admission: Admission, n: int):
        self._admission, self._n = admission, n

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._admission.in_flight -= self._n
        self._admission._metrics.in_flight.set(self._admission.in_flight)


@dataclass
class _Item:
    payload: object
    size: int                # tokens (embedding) or 1 (search)
    future: asyncio.Future
    request: int             # items of one request share it
    queued_at: float = field(default_factory=time.perf_counter)


class _Batcher:
    """A queue of items and one task that hands batches of them to an
    executor, at most `workers` batches at a time."""

    def __init__(self, executor, metrics, queue_gauge, workers: int = 1):
        self._executor = executor
        self._metrics = metrics
        self._gauge = queue_gauge
        self._workers = workers
        self._busy = 0
        self._queue: deque = deque()
        self._wake = asyncio.Event()
        self._task = None

    def start(self):
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self):
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def _submit(self, payloads, sizes) -> list:
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in payloads]
        request = id(futures)
        self._queue.extend(_Item(p, s, f, request) for p, s, f in zip(payloads, sizes, futures))
        self._gauge.set(len(self._queue))
        self._wake.set()
        # Cancelling the gather (disconnect, deadline) cancels every future,
        # which takes the items out of the next batch.
        return await asyncio.gather(*futures)

    def _live(self) -> None:
        while self._queue and self._queue[0].future.done():
            self._queue.popleft()
            self._metrics.count("pplx_dropped", reason="cancelled")

    async def _loop(self):
        loop = asyncio.get_running_loop()
        while True:
            self._live()
            if not self._queue or self._busy == self._workers:
                # Woken by a new item or by a worker coming free.
                self._wake.clear()
                await self._wake.wait()
                # Let requests that arrived together join the batch.
                await asyncio.sleep(0)
                continue
            batch = self._take()
            self._gauge.set(len(self._queue))
            if not batch:
                continue
            now = time.perf_counter()
            for item in batch:
                self._metrics.queue_duration.observe(now - item.queued_at)
            self._busy += 1
            loop.create_task(self._run_batch(loop, batch))

    def _run(self, batch: list) -> Any:
        """Runs one batch in a worker thread; its results, one per item."""
        raise NotImplementedError

    async def _run_batch(self, loop, batch: list) -> None:
        try:
            results = await loop.run_in_executor(self._executor, self._run, batch)
        except Exception as exc:  # a failed batch fails its requests, not the server
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(exc)
            return
        finally:
            self._busy -= 1
            self._wake.set()
        for item, result in zip(batch, results):
            if not item.future.done():
                item.future.set_result(result)


class EmbedBatcher(_Batcher):
    """Texts (tokenizer encodings) -> float32 mean-pooled rows."""

    def __init__(self, embedder, executor, metrics, max_batch_tokens: int, workers: int):
        super().__init__(executor, metrics, metrics.queue_size, workers)
        self._embedder = embedder
        self._budget = max_batch_tokens

    async def pool(self, encodings: list) -> np.ndarray:
        rows = await self._submit(encodings, [max(len(e.ids), 1) for e in encodings])
        return np.stack(rows)

    def _take(self) -> list:
        # With several workers free, share the queued work out among them,
        # cutting only between requests (a lone request then runs as one
        # batch, exactly as Embedder.encode would run it), never past the
        # --max-batch-tokens budget.
        queued = sum(item.size for item in self._queue)
        share = -(-queued // (self._workers - self._busy))
        batch: list = []
        tokens = 0
        while self._queue:
            item = self._queue[0]
            if item.future.done():
                self._queue.popleft()
                self._metrics.count("pplx_dropped", reason="cancelled")
                continue
            more = tokens + item.size
            if batch and (more > self._budget or (more > share and item.request != batch[-1].request)):
                break
            batch.append(self._queue.popleft())
            tokens += item.size
        self._metrics.batch_next_size.observe(len(batch))
        self._metrics.batch_next_tokens.observe(tokens)
        return batch

    def _run(self, batch: list) -> np.ndarray:
        t0 = time.perf_counter()
        pooled = self._embedder.pool_encodings([item.payload for item in batch])
        self._metrics.inference_duration.observe(time.perf_counter() - t0)
        self._metrics.count("te_embed_count", len(batch))
        return pooled


@dataclass(frozen=True)
class SearchParams:
    """What a top-k call needs besides the query rows."""
    k: int
    mode: str
    oversample: float | None
    allow_ids: tuple | None  # sorted, distinct

    def group(self, dtype) -> tuple:
        # exact: any k shares a call (each row keeps its own prefix);
        # two_stage: k * oversample fixes the candidate count.
        k = None if self.mode == "exact" else self.k
        return (np.dtype(dtype).str, self.mode, k, self.oversample, self.allow_ids)


def run_search(index, queries: np.ndarray, params: SearchParams, k: int):
    allow = None if params.allow_ids is None else np.asarray(params.allow_ids, dtype=np.int64)
    kwargs = {"allow_ids": allow} if allow is not None else {}
    return index.search(queries, k, mode=params.mode, oversample=params.oversample, **kwargs)


class SearchBatcher(_Batcher):
    """Query rows -> (index searched, scores row, ids row), coalesced into
    top-k calls of up to max_batch rows."""

    def __init__(self, get_index, executor, metrics, max_batch: int = 64):
        super().__init__(executor, metrics, metrics.search_queue_size)
        self._get_index = get_index
        self._max_batch = max_batch

    async def search(self, queries: np.ndarray, params: SearchParams) -> list:
        return await self._submit([(row, params) for row in queries], [1] * len(queries))

    def _take(self) -> list:
        self._live()
        if not self._queue:
            return []
        first = self._queue[0]
        key = first.payload[1].group(first.payload[0].dtype)
        batch: list = []
        rest: deque = deque()
        while self._queue and len(batch) < self._max_batch:
            item = self._queue.popleft()
            if item.future.done():
                self._metrics.count("pplx_dropped", reason="cancelled")
            elif item.payload[1].group(item.payload[0].dtype) == key:
                batch.append(item)
            else:
                rest.append(item)
        self._queue.extendleft(reversed(rest))
        return batch

    def _run(self, batch: list) -> list:
        index = self._get_index()  # a reload swaps it; this batch keeps the one it started with
        t0 = time.perf_counter()
        params = batch[0].payload[1]
        k = max(item.payload[1].k for item in batch)
        scores, ids = run_search(index, np.stack([item.payload[0] for item in batch]), params, k)
        self._metrics.search_duration.observe(time.perf_counter() - t0)
        self._metrics.search_batch_size.observe(len(batch))
        return [(index, scores[i, :item.payload[1].k], ids[i, :item.payload[1].k]) for i, item in enumerate(batch)]
