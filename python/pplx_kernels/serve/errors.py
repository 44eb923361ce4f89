"""Error responses in the two shapes clients parse.

TEI routes (/embed, /search, /admin, /info ...):
    {"error": "...", "error_type": "Validation" | "Overloaded" | "Backend" | "Tokenizer" | "Unhealthy"}
OpenAI / Perplexity routes (/v1/...):
    {"error": {"message": ..., "type": ..., "param": ..., "code": ...}}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from starlette.responses import Response

# error_type (TEI) -> type (OpenAI)
_OPENAI_TYPES = {
    "Validation": "invalid_request_error",
    "Tokenizer": "invalid_request_error",
    "Overloaded": "rate_limit_error",
    "Unauthorized": "invalid_request_error",
    "Unhealthy": "server_error",
    "Backend": "server_error",
}


class ApiError(Exception):
    """An HTTP error answer: status, message, TEI error_type, the request
    field it concerns (OpenAI's param), an OpenAI code, extra headers."""

    def __init__(self, status: int, message: str, *, kind: str = "Validation", param: str | None = None,
                 code: str | None = None, headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind
        self.param = param
        self.code = code
        self.headers = dict(headers or {})


def error_response(error: ApiError, style: str) -> Response:
    body: dict[str, Any]
    if style == "openai":
        body = {"error": {"message": error.message, "type": _OPENAI_TYPES.get(error.kind, "invalid_request_error"),
                          "param": error.param, "code": error.code}}
    else:
        body = {"error": error.message, "error_type": error.kind}
    return Response(orjson.dumps(body), status_code=error.status, headers=error.headers,
                    media_type="application/json")


def style_of(path: str) -> str:
    return "openai" if path.startswith("/v1/") else "tei"
