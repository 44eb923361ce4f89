"""The HTTP server: embeddings (TEI, OpenAI and Perplexity wire formats) and
search over an index, with cross-request batching. Needs the `serve` extra:
pip install "pplx-kernels[serve]"."""

from .app import create_app, serve
from .state import ServeConfig, Server

__all__ = ["ServeConfig", "Server", "create_app", "serve"]
