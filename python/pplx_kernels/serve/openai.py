"""POST /v1/embeddings (OpenAI, and Perplexity's encoding formats) and
POST /v1/contextualizedembeddings (Perplexity, late chunking)."""

from __future__ import annotations

import asyncio
from typing import Literal, Optional, Union

import msgspec

from .embedding import dimensions_arg, encode_rows, input_list, pool_texts
from .errors import ApiError
from .routing import api_route, json_response, read_json, run_admitted

Format = Literal["float", "base64", "base64_int8", "base64_binary"]


class EmbeddingsRequest(msgspec.Struct, forbid_unknown_fields=True):
    input: Union[str, list[str]]
    model: Optional[str] = None
    encoding_format: Format = "float"
    dimensions: Optional[int] = None
    user: Optional[str] = None


class ContextualRequest(msgspec.Struct, forbid_unknown_fields=True):
    input: list[list[str]]
    model: Optional[str] = None
    encoding_format: Format = "float"
    dimensions: Optional[int] = None
    user: Optional[str] = None


def _response(data: list, model: str, tokens: int) -> dict:
    return {"object": "list", "data": data, "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


@api_route("openai")
async def embeddings(request, server):
    body = await read_json(request, server, EmbeddingsRequest)
    texts = input_list(body.input, "input", server.config.max_client_batch_size)
    d = dimensions_arg(body.dimensions, server.embedder.dim)
    pooled, tokens = await run_admitted(request, server, len(texts), pool_texts(server, texts, truncate=False))
    rows = encode_rows(server.embedder, pooled, d, body.encoding_format)
    data = [{"object": "embedding", "index": i, "embedding": row} for i, row in enumerate(rows)]
    return json_response(_response(data, body.model or server.model_name, tokens))


@api_route("contextual")
async def contextualized_embeddings(request, server):
    body = await read_json(request, server, ContextualRequest)
    docs = body.input
    if not docs:
        raise ApiError(400, "`input` cannot be empty", param="input")
    n_chunks = 0
    for i, chunks in enumerate(docs):
        if not chunks:
            raise ApiError(400, f"`input` document {i} has no chunks", param="input")
        if not all(chunks):
            raise ApiError(400, f"`input` document {i} has an empty chunk", param="input")
        n_chunks += len(chunks)
    if n_chunks > server.config.max_client_batch_size:
        raise ApiError(422, f"batch size {n_chunks} chunks > maximum allowed batch size "
                            f"{server.config.max_client_batch_size} (--max-client-batch-size)", param="input")
    d = dimensions_arg(body.dimensions, server.embedder.dim)
    pooled, tokens = await run_admitted(request, server, n_chunks, _contextual(server, docs))
    data = []
    for i, doc_pooled in enumerate(pooled):
        rows = encode_rows(server.embedder, doc_pooled, d, body.encoding_format)
        data.append({"object": "list", "index": i,
                     "data": [{"object": "embedding", "index": j, "embedding": r} for j, r in enumerate(rows)]})
    return json_response(_response(data, body.model or server.model_name, tokens))


async def _contextual(server, docs: list):
    """(float32 pooled chunks per document, tokens); runs on a model
    worker, alongside the embedding batches."""
    loop = asyncio.get_running_loop()

    def run():
        try:
            pooled = server.embedder.encode_contextual(docs, "float", show_progress=False)
        except ValueError as exc:  # a document too long, a chunk without tokens
            raise ApiError(422, f"Input validation error: {exc}", param="input") from None
        # (not last_timings: other model workers write it concurrently)
        joined = [server.embedder.sep_token.join(chunks) for chunks in docs]
        return pooled, sum(len(e.ids) for e in server.embedder.tokenize(joined))

    return await loop.run_in_executor(server.model_executor, run)
