"""POST /search: text queries (embedded through the batcher) or vectors,
answered by coalesced top-k calls (see batching.py), with the stored
documents of the hits."""

from __future__ import annotations

import asyncio
import base64
import binascii
import math
from typing import Any, Literal, Optional, Union

import msgspec
import numpy as np

from .batching import SearchParams, run_search
from .embedding import input_list, pool_texts
from .errors import ApiError
from .routing import api_route, json_response, read_json, run_admitted

MAX_K = 1000
MAX_OVERSAMPLE = 1000
_INT64 = (-(2 ** 63), 2 ** 63 - 1)
_FLOAT32_MAX = float(np.finfo(np.float32).max)


class SearchRequest(msgspec.Struct, forbid_unknown_fields=True):
    query: Union[str, list[str], None] = None
    vector: Optional[list[Any]] = None
    vector_b64_int8: Union[str, list[str], None] = None
    k: int = 10
    mode: Literal["exact", "two_stage"] = "exact"
    oversample: Optional[float] = None
    filter_ids: Optional[list[int]] = None
    include_documents: bool = True


def _params(body: SearchRequest) -> SearchParams:
    if not 1 <= body.k <= MAX_K:
        raise ApiError(422, f"`k` must be between 1 and {MAX_K}, got {body.k}", param="k")
    oversample = body.oversample
    if oversample is not None and not (math.isfinite(oversample) and 1 <= oversample <= MAX_OVERSAMPLE):
        raise ApiError(422, f"`oversample` must be a number between 1 and {MAX_OVERSAMPLE}, got {oversample}",
                       param="oversample")
    allow = None
    if body.filter_ids is not None:
        if any(not _INT64[0] <= i <= _INT64[1] for i in body.filter_ids):
            raise ApiError(422, "`filter_ids` must be 64-bit signed integers", param="filter_ids")
        allow = tuple(sorted(set(body.filter_ids)))
    return SearchParams(body.k, body.mode, oversample, allow)


def _vectors(body: SearchRequest, dim: int, limit: int):
    """Query rows [m, dim] from `vector` (float32) or `vector_b64_int8` (int8)."""
    if body.vector is not None:
        try:
            x = np.asarray(body.vector)
        except ValueError:
            x = None
        if x is None or x.dtype.kind not in "if" or x.ndim not in (1, 2) or x.size == 0:
            raise ApiError(422, "`vector` must be a list of numbers or a list of such lists, all of one length",
                           param="vector")
        x = x.astype(np.float64).reshape(-1, x.shape[-1])
        if not np.all(np.abs(x) <= _FLOAT32_MAX):
            raise ApiError(422, "`vector` values must be finite float32 numbers", param="vector")
        x, name = x.astype(np.float32), "vector"
    else:
        items = [body.vector_b64_int8] if isinstance(body.vector_b64_int8, str) else body.vector_b64_int8
        if not items:
            raise ApiError(400, "`vector_b64_int8` cannot be empty", param="vector_b64_int8")
        try:
            rows = [np.frombuffer(base64.b64decode(s, validate=True), np.int8) for s in items]
        except (binascii.Error, ValueError):
            raise ApiError(422, "`vector_b64_int8` must be standard padded base64", param="vector_b64_int8") from None
        if any(len(r) != dim for r in rows):
            raise ApiError(422, f"`vector_b64_int8` must decode to {dim} bytes (the index's dim)",
                           param="vector_b64_int8")
        x, name = np.stack(rows), "vector_b64_int8"
        if np.any(x == -128):
            raise ApiError(422, "`vector_b64_int8` holds -128; int8 vectors must lie in [-127, 127]", param=name)
    if x.shape[1] != dim:
        raise ApiError(422, f"`{name}` must have {dim} dimensions (the index's dim), got {x.shape[1]}", param=name)
    if len(x) > limit:
        raise ApiError(422, f"batch size {len(x)} > maximum allowed batch size {limit} (--max-client-batch-size)",
                       param=name)
    return x


@api_route("search")
async def search(request, server):
    body = await read_json(request, server, SearchRequest)
    if server.index is None:
        raise ApiError(404, "this server has no index: start it with `pplx-kernels serve INDEX_DIR`")
    given = [f for f in ("query", "vector", "vector_b64_int8") if getattr(body, f) is not None]
    if len(given) != 1:
        raise ApiError(422, "give exactly one of `query`, `vector` and `vector_b64_int8`"
                            + (f" (got {', '.join(given)})" if given else ""))
    params = _params(body)
    limit = server.config.max_client_batch_size
    queries = input_list(body.query, "query", limit) if body.query is not None else None
    if queries is not None and server.embedder.dim != server.index.dim:
        raise ApiError(422, f"the index holds {server.index.dim}-dim vectors and the model makes "
                            f"{server.embedder.dim}: search it with `vector` or `vector_b64_int8`", param="query")
    vectors = None if queries is not None else _vectors(body, server.index.dim, limit)
    n = len(queries) if queries is not None else len(vectors)
    results, tokens = await run_admitted(request, server, n, _answer(server, queries, vectors, params))
    docs = await _documents(results) if body.include_documents else None
    data = []
    for q, (index, scores, ids) in enumerate(results):
        hits = []
        for s, i in zip(scores.tolist(), ids.tolist()):
            hit = {"id": i, "score": s}
            if docs is not None:
                hit["document"] = docs[id(index)][i]
            hits.append(hit)
        data.append({"index": q, "query": queries[q] if queries is not None else None, "results": hits})
    server.metrics.count("pplx_search_queries", n)
    return json_response({"object": "list", "data": data, "model": server.model_name,
                          "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})


async def _documents(results) -> dict:
    """{id(index): {hit id: document}}, each from the index its hits came
    from (a reload between two batches of one request swaps it)."""
    wanted: dict[int, tuple] = {}
    for index, _, ids in results:
        wanted.setdefault(id(index), (index, set()))[1].update(ids.tolist())
    docs = {}
    for key, (index, ids) in wanted.items():
        ids = sorted(ids)
        docs[key] = dict(zip(ids, await asyncio.to_thread(index.documents, ids)))
    return docs


async def _answer(server, queries, vectors, params: SearchParams):
    """[(index searched, scores, ids)] per query, and the query tokens."""
    tokens = 0
    if queries is not None:
        vectors, tokens = await pool_texts(server, queries, truncate=True)
    if server.search_batcher is not None:
        return await server.search_batcher.search(vectors, params), tokens
    # Batching off (--max-search-batch 1): one top-k call per request.
    index = server.index
    scores, ids = await asyncio.to_thread(run_search, index, vectors, params, params.k)
    return [(index, s, i) for s, i in zip(scores, ids)], tokens
