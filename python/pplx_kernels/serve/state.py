"""The server's state: configuration, the model, the index (swapped whole
on reload), the batchers and their worker threads."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .batching import Admission, EmbedBatcher, SearchBatcher
from .errors import ApiError
from .metrics import Metrics

log = logging.getLogger("pplx_kernels.serve")
# Padded tokens per ONNX Runtime call inside a batch. Measured with the
# default model on 2 shared EPYC cores, one thread per call, 128 stdlib
# docstrings: CPU per token at 2048 was 1.8x that at 256 and 1.7x at 512
# (wide calls pad more; the small model gains nothing from width), while 512
# rows of tokens per call already read a large model's weights only once per
# 512 tokens.
MODEL_CALL_TOKENS = 512
# Test hook: seconds the server waits before loading the model and index, so
# that a test sees /health answer 503 while it loads (README.md).
LOAD_DELAY_ENV = "PPLX_KERNELS_TEST_LOAD_DELAY"
CLI_FILE = "cli.json"  # written beside an index by `pplx-kernels index`: the model directory


@dataclass
class ServeConfig:
    index_dir: str | None = None
    model: str | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    api_key: str | None = None
    max_batch_tokens: int = 16384
    max_client_batch_size: int = 32
    max_concurrent_requests: int = 512
    payload_limit: int = 2_000_000
    threads: int | None = None
    max_search_batch: int = 64      # 1 turns search batching off
    request_timeout: float = 60.0

    def __post_init__(self):
        if self.max_client_batch_size > self.max_concurrent_requests:
            # Such a request could never be admitted: 429 forever.
            raise ValueError(f"max_client_batch_size ({self.max_client_batch_size}) must not exceed "
                             f"max_concurrent_requests ({self.max_concurrent_requests})")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port: expected 0..65535, got {self.port}")
        if not self.request_timeout > 0:
            raise ValueError(f"request_timeout: expected a positive number of seconds, got {self.request_timeout}")


def _model_dir_of_index(index, index_dir: str):
    """The model an index was built with: Index.model["path"], else the
    cli.json that `pplx-kernels index` writes beside it; None = default."""
    path = index.model.get("path")
    if path is None:
        try:
            with open(os.path.join(index_dir, CLI_FILE), encoding="utf-8") as fh:
                path = json.load(fh).get("model_dir")
        except (FileNotFoundError, ValueError):
            path = None
    return path


def _model_sha256(embedder) -> str:
    from .. import _default_model
    if embedder.model_dir is None:
        return _default_model.MODEL_SHA256
    return _default_model.sha256_file(embedder.onnx_path)


def load_index(index_dir: str):
    """The index in index_dir: an Index, or a ShardedIndex searched
    in-process for a directory `pplx-kernels index --engine ray` wrote."""
    from ..distributed.manifest import is_sharded
    if is_sharded(index_dir):
        from ..distributed import ShardedIndex
        return ShardedIndex.open(index_dir)
    from ..index import Index
    return Index.load(index_dir, mmap=True)


class Server:
    def __init__(self, config: ServeConfig):
        self.config = config
        self.metrics = Metrics()
        self.admission = Admission(config.max_concurrent_requests, self.metrics)
        self.ready = False
        self.embedder: Any = None
        self.index: Any = None
        self.model_name: str | None = None
        self.model_sha256: str | None = None
        self.embed_batcher: EmbedBatcher | None = None
        self.search_batcher: SearchBatcher | None = None
        # Model batches run on `threads` workers, each ONNX Runtime call on
        # one thread (see batching.py); top-k calls one at a time, each on
        # all cores (the kernel pool).
        from ..runtime import get_num_threads
        self.model_workers = config.threads or get_num_threads()
        self.model_executor = ThreadPoolExecutor(self.model_workers, thread_name_prefix="pplx-model")
        self.search_executor = ThreadPoolExecutor(1, thread_name_prefix="pplx-search")
        self._reload_lock: asyncio.Lock | None = None

    def load(self) -> None:
        """Loads the index and the model (blocking: run it in a thread)."""
        from ..embedder import Embedder
        delay = os.environ.get(LOAD_DELAY_ENV) or "0"
        try:
            time.sleep(float(delay))
        except ValueError:
            raise ValueError(f"{LOAD_DELAY_ENV}: expected a number of seconds, got {delay!r}") from None
        c = self.config
        model = c.model
        if c.index_dir is not None:
            self.index = load_index(c.index_dir)
            if model is None:
                model = _model_dir_of_index(self.index, c.index_dir)
                if model is not None and not Path(model).is_dir():
                    raise FileNotFoundError(f"model: the index was built with {model}, which is gone; pass --model")
        self.embedder = Embedder(model, threads=1, batch_tokens=MODEL_CALL_TOKENS)
        self.model_sha256 = _model_sha256(self.embedder)
        self.model_name = self.embedder.name
        if self.index is not None:
            built_with = self.index.model.get("sha256")
            if built_with and built_with != self.model_sha256:
                raise ValueError(f"model: the index was built with {self.index.model.get('name')!r}, a different "
                                 f"model than {self.embedder.name!r}; pass the same --model")
            if self.index.dim != self.embedder.dim:
                log.warning("the index holds %d-dim vectors, the model makes %d: search by vector only",
                            self.index.dim, self.embedder.dim)

    async def start(self) -> None:
        await asyncio.to_thread(self.load)
        self._reload_lock = asyncio.Lock()
        self.embed_batcher = EmbedBatcher(self.embedder, self.model_executor, self.metrics,
                                          self.config.max_batch_tokens, self.model_workers)
        self.embed_batcher.start()
        if self.index is not None and self.config.max_search_batch > 1:
            self.search_batcher = SearchBatcher(lambda: self.index, self.search_executor, self.metrics,
                                                self.config.max_search_batch)
            self.search_batcher.start()
        self.ready = True

    async def reload(self) -> int:
        """Loads INDEX_DIR again and swaps it in; searches already running
        finish on the index they started with. Returns the new row count."""
        if self.config.index_dir is None:
            raise ApiError(404, "this server has no index to reload (no INDEX_DIR)")
        assert self._reload_lock is not None, "reload before start()"
        async with self._reload_lock:
            try:
                index = await asyncio.to_thread(load_index, self.config.index_dir)
            except Exception as exc:
                log.error("reload failed, keeping the current index: %s", exc)
                raise ApiError(500, f"reload failed, the current index stays: {exc}", kind="Backend") from None
            if self.index is not None and index.dim != self.index.dim:
                raise ApiError(500, f"reload refused: the new index holds {index.dim}-dim vectors, the "
                                    f"current one {self.index.dim}", kind="Backend")
            self.index = index
            log.info("reloaded %s: %d rows", self.config.index_dir, len(index))
            return len(index)

    async def stop(self) -> None:
        for batcher in (self.embed_batcher, self.search_batcher):
            if batcher is not None:
                await batcher.stop()
        self.model_executor.shutdown(wait=False)
        self.search_executor.shutdown(wait=False)

    def info(self) -> dict:
        from .. import __version__, cpu_info
        c = self.config
        info = {
            "model_id": self.model_name, "model_sha": self.model_sha256, "model_dtype": "float32",
            "model_type": {"embedding": {"pooling": "mean"}},
            "max_concurrent_requests": c.max_concurrent_requests,
            "max_input_length": self.embedder.max_length if self.embedder else None,
            "max_batch_tokens": c.max_batch_tokens, "max_client_batch_size": c.max_client_batch_size,
            "max_search_batch": c.max_search_batch, "payload_limit": c.payload_limit,
            "model_workers": self.model_workers,
            "version": __version__, "ready": self.ready,
            "dim": self.embedder.dim if self.embedder else None,
            "scheme": self.embedder.scheme if self.embedder else None,
            "index": None,
        }
        if self.index is not None:
            info["index"] = {"path": c.index_dir, "size": len(self.index), "dim": self.index.dim,
                             "scheme": self.index.scheme, "metric": self.index.metric}
        cpu = cpu_info()
        info["kernels"] = {"isa": cpu["isa"], "variants": cpu["kernels"], "threads": cpu["threads"]}
        return info
