"""Reading the format-1 index directory (pplx-kernels 0.1 `Index.save`
and `pplx-kernels index`): one header.json, one file per array, and the
CLI's attachments docs.jsonl (documents in row order) and cli.json (the
model directory). Index.load reads it as one segment; Index.open migrates
it in place (segments.py names, hard links, no copy).

    DIR/header.json  format, version 1, dim, count, metric, scheme, model,
                     and every file's size and sha256
    DIR/codes.i8 norms.f32 bits.u8 ids.i64 [docs.jsonl cli.json]
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass

import numpy as np

from .storage import IndexFormatError

FORMAT_NAME = "pplx-kernels-index"
FORMAT_VERSION = 1
HEADER_FILE = "header.json"
FILES = (HEADER_FILE, "codes.i8", "norms.f32", "bits.u8", "ids.i64", "docs.jsonl", "cli.json")

# name -> (file, little-endian dtype, shape as a function of (count, dim))
ARRAYS = {
    "codes": ("codes.i8", "<i1", lambda n, d: (n, d)),
    "norms": ("norms.f32", "<f4", lambda n, d: (n,)),
    "bits": ("bits.u8", "|u1", lambda n, d: (n, (d + 7) // 8)),
    "ids": ("ids.i64", "<i8", lambda n, d: (n,)),
}

_CHUNK = 16 << 20  # bytes hashed and read per step: bounded extra memory


@dataclass
class Loaded:
    header: dict
    arrays: dict  # name -> numpy array (memmap when loaded with mmap=True)


def _byte_view(arr: np.ndarray) -> memoryview:
    return memoryview(arr.reshape(-1).view(np.uint8))


def _header_digest(header: dict) -> str:
    rest = {k: v for k, v in header.items() if k != "header_sha256"}
    return hashlib.sha256(json.dumps(rest, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def load(path, *, mmap: bool = True, verify: bool | None = None) -> Loaded:
    """Reads and validates an index directory; raises IndexFormatError
    saying what is wrong. verify=None means: hash every file unless mmap."""
    path = os.fspath(path)
    if verify is None:
        verify = not mmap
    header = read_header(path)
    count, dim = header["count"], header["dim"]
    arrays = {}
    for key, (fname, dtype, shape_of) in ARRAYS.items():
        if header.get("arrays", {}).get(key, {}).get("file") != fname or header["arrays"][key].get("dtype") != dtype:
            raise IndexFormatError(f"{path}: header.json describes array {key!r} differently than format version {FORMAT_VERSION} does")
        fpath = os.path.join(path, fname)
        shape = shape_of(count, dim)
        expected = _check_file(path, header, fname, int(np.prod(shape)) * np.dtype(dtype).itemsize)
        if mmap and expected:
            arr = np.memmap(fpath, dtype=np.dtype(dtype), mode="r", shape=shape)
            if verify:
                _check_digest(path, header, fname, _digest_buffer(_byte_view(arr)))
        else:
            arr = np.empty(shape, dtype=np.dtype(dtype))
            digest = _read_into(fpath, _byte_view(arr))
            if verify:
                _check_digest(path, header, fname, digest)
        arrays[key] = arr
    for fname in header["files"]:
        if fname not in {f for f, _, _ in ARRAYS.values()}:
            _check_file(path, header, fname, None)
            if verify:
                _check_digest(path, header, fname, _digest_path(os.path.join(path, fname)))
    return Loaded(header=header, arrays=arrays)


def read_header(path) -> dict:
    path = os.fspath(path)
    if not os.path.isdir(path):
        if os.path.exists(path):
            raise IndexFormatError(f"{path}: not an index directory (it is a file)")
        parent, name = os.path.split(os.path.abspath(path))
        left = [e for e in (os.listdir(parent) if os.path.isdir(parent) else []) if e.startswith(f".{name}.previous-")]
        hint = f"; an interrupted save left the previous index at {os.path.join(parent, left[0])}" if left else ""
        raise FileNotFoundError(f"{path}: no such index directory{hint}")
    hpath = os.path.join(path, HEADER_FILE)
    if not os.path.isfile(hpath):
        raise IndexFormatError(f"{path}: not a pplx-kernels index (no {HEADER_FILE})")
    try:
        with open(hpath, "rb") as fh:
            header = json.loads(fh.read(16 << 20))
    except (ValueError, UnicodeDecodeError) as exc:
        raise IndexFormatError(f"{path}: {HEADER_FILE} is damaged (not valid JSON: {exc})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
        raise IndexFormatError(f"{path}: not a pplx-kernels index ({HEADER_FILE} has no format {FORMAT_NAME!r})")
    version = header.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise IndexFormatError(f"{path}: {HEADER_FILE} has no valid format version (got {version!r})")
    if version != FORMAT_VERSION:
        newer = " (written by a newer pplx-kernels; upgrade to read it)" if version > FORMAT_VERSION else ""
        raise IndexFormatError(f"{path}: index format version {version} is not supported; this pplx-kernels reads version {FORMAT_VERSION}{newer}")
    if header.get("header_sha256") != _header_digest(header):
        raise IndexFormatError(f"{path}: {HEADER_FILE} is damaged (its checksum does not match its contents)")
    for field in ("dim", "count"):
        value = header.get(field)
        if not isinstance(value, int) or isinstance(value, bool) or value < (1 if field == "dim" else 0):
            raise IndexFormatError(f"{path}: {HEADER_FILE} field {field!r} is invalid: {value!r}")
    files = header.get("files")
    if not isinstance(files, dict) or not all(
        isinstance(v, dict) and isinstance(v.get("bytes"), int) and isinstance(v.get("sha256"), str) for v in files.values()
    ):
        raise IndexFormatError(f"{path}: {HEADER_FILE} field 'files' is invalid")
    for fname in files:  # names come from the file: never let them leave the directory
        if not fname or fname.startswith(".") or "/" in fname or "\\" in fname or fname == HEADER_FILE:
            raise IndexFormatError(f"{path}: {HEADER_FILE} lists an invalid file name {fname!r}")
    return header


def _check_file(path: str, header: dict, fname: str, expected_bytes: int | None) -> int:
    entry = header["files"].get(fname)
    if entry is None:
        raise IndexFormatError(f"{path}: {HEADER_FILE} does not list {fname}")
    if expected_bytes is not None and entry["bytes"] != expected_bytes:
        raise IndexFormatError(
            f"{path}: {HEADER_FILE} says {fname} has {entry['bytes']} bytes, but count and dim imply {expected_bytes}")
    fpath = os.path.join(path, fname)
    try:
        size = os.stat(fpath).st_size
    except FileNotFoundError:
        raise IndexFormatError(f"{path}: {fname} is missing") from None
    if size != entry["bytes"]:
        what = "truncated" if size < entry["bytes"] else "too long"
        raise IndexFormatError(f"{path}: {fname} is {what}: {size} bytes, expected {entry['bytes']}")
    return size


def _check_digest(path: str, header: dict, fname: str, digest: str) -> None:
    if digest != header["files"][fname]["sha256"]:
        raise IndexFormatError(f"{path}: {fname} is damaged (sha256 mismatch)")


def _read_into(fpath: str, out: memoryview) -> str:
    digest = hashlib.sha256()
    with open(fpath, "rb", buffering=0) as fh:
        pos = 0
        while pos < len(out):
            got = fh.readinto(out[pos:pos + _CHUNK])
            if not got:
                raise IndexFormatError(f"{fpath}: file shrank while being read")
            digest.update(out[pos:pos + got])
            pos += got
    return digest.hexdigest()


def _digest_buffer(data: memoryview) -> str:
    digest = hashlib.sha256()
    for start in range(0, len(data), _CHUNK):
        digest.update(data[start:start + _CHUNK])
    return digest.hexdigest()


def _digest_path(fpath: str) -> str:
    digest = hashlib.sha256()
    with open(fpath, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
