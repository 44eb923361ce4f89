"""What every route shares: the error/metrics wrapper, reading a JSON body
under the payload limit, admission with a deadline, and dropping work whose
client went away."""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import time

import msgspec
import orjson
from starlette.responses import Response

from .errors import ApiError, error_response, style_of

log = logging.getLogger("pplx_kernels.serve")


class ClientGone(Exception):
    """The client disconnected before its answer was ready."""


def json_response(body, status: int = 200) -> Response:
    return Response(orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY), status_code=status,
                    media_type="application/json")


def api_route(method: str):
    """Wraps an endpoint fn(request, server) -> Response: error answers in
    the route's style, te_* request metrics, and never a traceback to the
    client. method labels te_request_count (TEI's "single"/"batch" become
    the route kind here)."""

    def wrap(fn):
        @functools.wraps(fn)
        async def endpoint(request):
            server = request.app.state.server
            metrics = server.metrics
            t0 = time.perf_counter()
            metrics.count("te_request_count", method=method)
            try:
                if not server.ready:
                    raise ApiError(503, "the model is still loading", kind="Unhealthy")
                response = await fn(request, server)
            except ApiError as exc:
                metrics.count("te_request_failure", err=exc.kind.lower())
                return error_response(exc, style_of(request.url.path))
            except ClientGone:
                metrics.count("te_request_failure", err="disconnected")
                return Response(status_code=499)
            except Exception:
                log.exception("unexpected error in %s", request.url.path)
                metrics.count("te_request_failure", err="backend")
                return error_response(ApiError(500, "internal error (see the server log)", kind="Backend"),
                                      style_of(request.url.path))
            metrics.count("te_request_success", method=method)
            metrics.request_duration.observe(time.perf_counter() - t0)
            return response

        return endpoint

    return wrap


async def read_body(request, limit: int) -> bytes:
    """The request body, refusing (413) one over `limit` bytes without
    reading past the limit: by Content-Length when sent, else while reading."""
    too_large = ApiError(413, f"the request body is larger than the payload limit of {limit} bytes "
                              f"(--payload-limit)", headers={"Connection": "close"})
    length = request.headers.get("content-length")
    if length is not None:
        if not length.isdigit():
            raise ApiError(400, f"bad Content-Length header {length!r}")
        if int(length) > limit:
            raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


_PATH = re.compile(r"at `\$\.?([^`]*)`")


async def read_json(request, server, struct_type):
    """The body parsed (orjson) and validated (msgspec): 400 for what is not
    JSON (malformed, invalid UTF-8, nested too deep), 422 for JSON of the
    wrong shape (types, unknown fields, missing fields). The Content-Type
    is not checked (curl -d sends a form type)."""
    body = await read_body(request, server.config.payload_limit)
    if not body:
        raise ApiError(400, "the request body is empty; expected a JSON object")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, f"the request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ApiError(422, f"expected a JSON object, got a JSON {type(data).__name__}")
    try:
        return msgspec.convert(data, struct_type)
    except msgspec.ValidationError as exc:
        match = _PATH.search(str(exc))
        raise ApiError(422, f"Input validation error: {exc}", param=match.group(1) if match else None) from None


async def _disconnected(request) -> None:
    # With the body read, the next message is http.disconnect: sent when the
    # client leaves, or once the response is complete.
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def run_admitted(request, server, n_inputs: int, work):
    """Runs the coroutine `work` holding n_inputs of admission (429 when
    over the limit), cancelling it (and so dropping its queued items) when
    the client disconnects or --request-timeout passes."""
    try:
        held = server.admission.admit(n_inputs)
    except ApiError:
        work.close()
        raise
    with held:
        task = asyncio.ensure_future(work)
        watch = asyncio.ensure_future(_disconnected(request))
        try:
            done, _ = await asyncio.wait({task, watch}, timeout=server.config.request_timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            watch.cancel()
        if task in done:
            return task.result()
        task.cancel()
        await asyncio.wait({task})
        if watch in done:
            raise ClientGone()
        server.metrics.count("pplx_dropped", reason="deadline")
        raise ApiError(504, f"the request did not finish within {server.config.request_timeout} s "
                            f"(--request-timeout)", kind="Overloaded")
