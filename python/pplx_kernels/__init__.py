"""pplx-kernels: SIMD kernels for quantized embedding retrieval on CPUs."""

from ._core import __compiled_isas__  # noqa: F401  (fails loudly on a bad PPLX_KERNELS_ISA)
from .runtime import (
    available_isas,
    cpu_info,
    get_isa,
    get_num_threads,
    set_isa,
    set_num_threads,
)
from .pooling import mean_pool, mean_pool_spans
from .quantize import Quantized, pack_bits, quantize, quantize_fused, unpack_bits
from .search import cosine, hamming, norms, topk
from .index import Index

__version__ = "0.1.0"


def __getattr__(name):
    # Lazy: importing pplx_kernels must not need onnxruntime or tokenizers.
    if name == "Embedder":
        from .embedder import Embedder

        return Embedder
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# Embedder stays out of __all__ so that `import *` needs no onnxruntime.
__all__ = [
    "Index",
    "Quantized",
    "available_isas",
    "cosine",
    "cpu_info",
    "get_isa",
    "get_num_threads",
    "hamming",
    "mean_pool",
    "mean_pool_spans",
    "norms",
    "pack_bits",
    "quantize",
    "quantize_fused",
    "set_isa",
    "set_num_threads",
    "topk",
    "unpack_bits",
]
