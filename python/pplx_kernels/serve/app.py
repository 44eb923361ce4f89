"""The ASGI app (Starlette routes) and `serve()`, which runs it on uvicorn.

Startup: the socket is bound first, then the model and index load in a
worker thread while /health answers 503; one line on stderr gives the
address at once, one on stdout says when the server is ready. SIGTERM /
SIGINT: stop accepting, finish the requests in flight, exit 0. SIGHUP (or
POST /admin/reload): reload INDEX_DIR."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import signal
import socket
import sys
import threading
from importlib import resources

import uvicorn

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from . import openai, search_route, tei
from .errors import ApiError, error_response, style_of
from .routing import api_route, json_response
from .state import ServeConfig, Server

log = logging.getLogger("pplx_kernels.serve")
PUBLIC_PATHS = ("/health", "/metrics", "/")


async def health(request):
    server = request.app.state.server
    if not server.ready:
        return error_response(ApiError(503, "the model is still loading", kind="Unhealthy"), "tei")
    return Response(status_code=200)


async def info(request):
    return json_response(request.app.state.server.info())


async def metrics(request):
    return Response(request.app.state.server.metrics.render(),
                    media_type="text/plain; version=0.0.4; charset=utf-8")


async def page(request):
    return HTMLResponse(resources.files(__package__).joinpath("page.html").read_text(encoding="utf-8"))


@api_route("reload")
async def reload(request, server):
    size = await server.reload()
    return json_response({"reloaded": True, "size": size})


async def _http_error(request, exc: Exception):
    assert isinstance(exc, HTTPException)
    message = {404: f"no route {request.url.path}", 405: f"{request.method} is not allowed on {request.url.path}"}
    error = ApiError(exc.status_code, message.get(exc.status_code, exc.detail), headers=exc.headers)
    return error_response(error, style_of(request.url.path))


class ApiKeyMiddleware:
    """401 unless `Authorization: Bearer KEY` (keys compared in constant
    time); /health, /metrics and the page stay public."""

    def __init__(self, app, api_key: str | None):
        self.app = app
        self.key = None if api_key is None else api_key.encode()

    async def __call__(self, scope, receive, send):
        if self.key is None or scope["type"] != "http" or scope["path"] in PUBLIC_PATHS:
            return await self.app(scope, receive, send)
        given = b""
        for name, value in scope["headers"]:
            if name == b"authorization":
                given = value
        scheme, _, token = given.partition(b" ")
        if scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), self.key):
            return await self.app(scope, receive, send)
        error = ApiError(401, "missing or wrong API key: send `Authorization: Bearer KEY`", kind="Unauthorized",
                         code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})
        await error_response(error, style_of(scope["path"]))(scope, receive, send)


def create_app(server: Server, on_ready=None) -> Starlette:
    """The app; lifespan startup loads the model in the background and calls
    on_ready() once it can answer."""

    @contextlib.asynccontextmanager
    async def lifespan(app):
        loop = asyncio.get_running_loop()
        app.state.load_task = loop.create_task(_start(server, on_ready))
        if server.config.index_dir is not None and threading.current_thread() is threading.main_thread():
            loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(_reload_on_signal(server)))
        try:
            yield
        finally:
            app.state.load_task.cancel()
            await server.stop()

    routes = [
        Route("/", page, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/info", info, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/embed", tei.embed, methods=["POST"]),
        Route("/v1/embeddings", openai.embeddings, methods=["POST"]),
        Route("/v1/contextualizedembeddings", openai.contextualized_embeddings, methods=["POST"]),
        Route("/search", search_route.search, methods=["POST"]),
        Route("/admin/reload", reload, methods=["POST"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={HTTPException: _http_error})
    app.state.server = server
    app.add_middleware(ApiKeyMiddleware, api_key=server.config.api_key)
    return app


async def _start(server: Server, on_ready) -> None:
    try:
        await server.start()
    except Exception as exc:
        log.error("cannot start: %s", exc)
        if on_ready is not None:
            on_ready(exc)
        return
    if on_ready is not None:
        on_ready(None)


async def _reload_on_signal(server: Server) -> None:
    try:
        await server.reload()
    except ApiError as exc:
        log.error("%s", exc.message)


class _Uvicorn(uvicorn.Server):
    """Exits 0 after a graceful stop on SIGTERM/SIGINT (uvicorn re-raises
    the signal after shutting down, which would end the process by it)."""

    @contextlib.contextmanager
    def capture_signals(self):
        with super().capture_signals():
            yield
            self._captured_signals.clear()


def serve(config: ServeConfig) -> int:
    """Runs the server until SIGTERM/SIGINT; returns the exit code."""
    sock = socket.socket(socket.AF_INET6 if ":" in config.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((config.host, config.port))
    sock.listen(2048)
    host, port = sock.getsockname()[:2]
    print(f"pplx-kernels serve: listening on http://{host}:{port}, loading the model", file=sys.stderr, flush=True)
    server = Server(config)
    outcome = {}

    def on_ready(error):
        if error is not None:
            outcome["error"] = error
            uv.should_exit = True
            return
        index = f", index {config.index_dir} ({len(server.index)} rows)" if server.index is not None else ""
        print(f"pplx-kernels serve: ready on http://{host}:{port} (model {server.model_name}{index})", flush=True)

    app = create_app(server, on_ready)
    uv = _Uvicorn(uvicorn.Config(app, loop="uvloop", http="httptools", lifespan="on", log_level="warning",
                                 access_log=False, timeout_graceful_shutdown=None))
    uv.run(sockets=[sock])
    if "error" in outcome:
        print(f"pplx-kernels serve: error: {outcome['error']}", file=sys.stderr)
        return 1
    return 0
