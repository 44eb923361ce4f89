"""Texts -> pooled vectors through the batcher, and pooled vectors -> the
vectors each wire format carries.

"The model's output" is what TEI serves: for a pplx-embed model its int8
values (round(127 tanh x)) as floats, for other models the mean-pooled
floats. `float` and `base64` (OpenAI) and TEI's normalize=true L2-normalize
it; base64_int8 is the int8 quantization with the model's scheme and
base64_binary the sign bits of the pooled floats, LSB first (Perplexity)."""

from __future__ import annotations

import asyncio
import base64

import numpy as np

from ..quantize import quantize
from .errors import ApiError

ENCODING_FORMATS = ("float", "base64", "base64_int8", "base64_binary")


def input_list(value, name: str, limit: int) -> list:
    """A str or a list of str as a non-empty list within the client batch limit."""
    texts = [value] if isinstance(value, str) else value
    if not texts:
        raise ApiError(400, f"`{name}` cannot be empty", param=name)
    if len(texts) > limit:
        raise ApiError(422, f"batch size {len(texts)} > maximum allowed batch size {limit} "
                            f"(--max-client-batch-size)", param=name)
    for i, t in enumerate(texts):
        if not t:
            raise ApiError(400, f"`{name}` item {i} is an empty string", param=name)
    return texts


def dimensions_arg(dimensions, dim: int):
    if dimensions is None:
        return dim
    if not 1 <= dimensions <= dim:
        raise ApiError(422, f"`dimensions` must be between 1 and {dim} (the model's width), got {dimensions}",
                       param="dimensions")
    return dimensions


async def pool_texts(server, texts: list, *, truncate: bool, direction: str = "right"):
    """(float32 pooled [n, dim], tokens) through the embedding batcher. A
    text over the model's max_length is cut (truncate) or refused (422)."""
    embedder = server.embedder
    try:
        encodings = await asyncio.to_thread(embedder.tokenize, texts, direction=direction)
    except ValueError as exc:
        raise ApiError(422, str(exc), kind="Tokenizer", param="input") from None
    if not truncate:
        for i, enc in enumerate(encodings):
            if enc.overflowing:
                raise ApiError(422, f"Input validation error: input {i} is longer than the model's limit of "
                                    f"{embedder.max_length} tokens; send truncate=true or a shorter text",
                               kind="Validation", param="input")
    pooled = await server.embed_batcher.pool(encodings)
    return pooled, sum(len(e.ids) for e in encodings)


def model_output(embedder, pooled: np.ndarray, d: int) -> np.ndarray:
    if embedder.is_pplx and embedder.scheme == "tanh":
        return quantize(pooled, "int8", scheme="tanh", dimensions=d).astype(np.float32)
    return np.ascontiguousarray(pooled[:, :d])


def l2_normalized(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x.astype(np.float64), axis=1, keepdims=True)
    return (x / np.where(norms > 0, norms, 1)).astype(np.float32)


def encode_rows(embedder, pooled: np.ndarray, d: int, encoding_format: str) -> list:
    """One JSON value per row: a float32 array (orjson writes it as a list)
    or a base64 string."""
    if encoding_format == "base64_int8":
        rows = quantize(pooled, "int8", scheme=embedder.scheme, dimensions=d)
    elif encoding_format == "base64_binary":
        rows = quantize(pooled, "ubinary", bitorder="little", dimensions=d)
    else:
        rows = l2_normalized(model_output(embedder, pooled, d))
        if encoding_format == "float":
            return list(rows)
        rows = rows.astype("<f4")
    return [base64.b64encode(r.tobytes()).decode("ascii") for r in rows]
