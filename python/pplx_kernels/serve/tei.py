"""POST /embed, as Hugging Face text-embeddings-inference answers it."""

from __future__ import annotations

from typing import Optional, Union

import msgspec

from .embedding import dimensions_arg, input_list, l2_normalized, model_output, pool_texts
from .errors import ApiError
from .routing import api_route, json_response, read_json, run_admitted


class EmbedRequest(msgspec.Struct, forbid_unknown_fields=True):
    inputs: Union[str, list[str]]
    normalize: bool = True
    truncate: Optional[bool] = None
    truncation_direction: str = "right"
    dimensions: Optional[int] = None
    prompt_name: Optional[str] = None


@api_route("embed")
async def embed(request, server):
    body = await read_json(request, server, EmbedRequest)
    if body.prompt_name is not None:
        raise ApiError(422, "`prompt_name` is not supported: this server's models take no prompts")
    direction = body.truncation_direction.lower()
    if direction not in ("right", "left"):
        raise ApiError(422, f"`truncation_direction` must be 'right' or 'left', got {body.truncation_direction!r}")
    texts = input_list(body.inputs, "inputs", server.config.max_client_batch_size)
    d = dimensions_arg(body.dimensions, server.embedder.dim)
    pooled, _ = await run_admitted(request, server, len(texts),
                                   pool_texts(server, texts, truncate=bool(body.truncate), direction=direction))
    vectors = model_output(server.embedder, pooled, d)
    return json_response(list(l2_normalized(vectors) if body.normalize else vectors))
