"""The server's embedding routes through real clients (the openai package,
httpx) against Embedder outputs, on a tiny pplx-layout model whose position
table is shorter than its tokenizer's limit."""

from __future__ import annotations

import base64

import numpy as np
import pytest

import openai  # the test extra has the clients: a broken install fails here

from pplx_kernels.embedder import Embedder
from pplx_kernels.serve.state import MODEL_CALL_TOKENS

import tiny_models as tm
from serve_process import ServerProcess

TEXTS = tm.random_texts(12, seed=5, max_words=40)
LONG_WORDS = [tm.WORDS[(7 * i) % len(tm.WORDS)] for i in range(400)]
LONG_TEXT = " ".join(LONG_WORDS)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return tm.make_short_position_model(tmp_path_factory.mktemp("serve_embed") / "model")[0]


@pytest.fixture(scope="module")
def emb(model):
    # As the server runs it: one request is one batch, cut into model calls
    # the same way, so the floats (and the int8 codes) are equal to the bit.
    return Embedder(model, threads=1, batch_tokens=MODEL_CALL_TOKENS)


@pytest.fixture(scope="module")
def server(model):
    with ServerProcess("--model", model, "--threads", 2) as s:
        yield s


@pytest.fixture(scope="module")
def http(server):
    with server.client() as c:
        yield c


def normalized(x):
    x = np.asarray(x, dtype=np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def b64_rows(data, dtype):
    return np.stack([np.frombuffer(base64.b64decode(d["embedding"]), dtype) for d in data])


def test_openai_client_default_base64_and_float(server, emb):
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
    # A pplx model's output is its int8 vector; float and base64 L2-normalize it.
    want = normalized(emb.encode(TEXTS, "int8"))
    default = client.embeddings.create(input=TEXTS, model="tiny-pplx")  # the client asks for base64
    as_float = client.embeddings.create(input=TEXTS, model="tiny-pplx", encoding_format="float")
    for r in (default, as_float):
        assert r.model == "tiny-pplx" and [d.index for d in r.data] == list(range(len(TEXTS)))
        np.testing.assert_allclose(np.array([d.embedding for d in r.data]), want, rtol=1e-6, atol=1e-7)
        assert r.usage.prompt_tokens == r.usage.total_tokens == sum(len(tm.reference_ids(t, "qwen")) for t in TEXTS)
    one = client.embeddings.create(input=TEXTS[0], model="m", dimensions=10)
    np.testing.assert_allclose(one.data[0].embedding, normalized(emb.encode(TEXTS[:1], "int8")[:, :10])[0],
                               rtol=1e-6, atol=1e-7)


def test_perplexity_int8_and_lsb_first_binary(http, emb):
    for dims in (None, 20):
        body = {"input": TEXTS, "model": "pplx-embed-v1-0.6b", "encoding_format": "base64_int8"}
        if dims:
            body["dimensions"] = dims
        r = http.post("/v1/embeddings", json=body)
        assert r.status_code == 200, r.text
        np.testing.assert_array_equal(b64_rows(r.json()["data"], np.int8), emb.encode(TEXTS, "int8", dimensions=dims))
        r = http.post("/v1/embeddings", json={**body, "encoding_format": "base64_binary"})
        bits = b64_rows(r.json()["data"], np.uint8)
        floats = emb.encode(TEXTS, "float")[:, :dims or emb.dim]
        # Bit j of a vector is bit (j % 8), counted from the least significant, of byte j // 8.
        lsb = np.stack([(bits[:, j // 8] >> (j % 8)) & 1 for j in range(floats.shape[1])], axis=1)
        np.testing.assert_array_equal(lsb, (floats >= 0).astype(np.uint8))
        np.testing.assert_array_equal(bits, np.packbits(floats >= 0, axis=1, bitorder="little"))
        np.testing.assert_array_equal(bits, emb.encode(TEXTS, "ubinary", dimensions=dims, bitorder="little"))


def test_tei_embed_normalize_and_int8_as_floats(http, emb):
    codes = emb.encode(TEXTS, "int8")
    r = http.post("/embed", json={"inputs": TEXTS, "normalize": False})
    assert r.status_code == 200
    np.testing.assert_array_equal(np.array(r.json()), codes.astype(np.float64))  # TEI: int8 values as floats
    r = http.post("/embed", json={"inputs": TEXTS[0]})  # normalize defaults to true; one string, one row
    np.testing.assert_allclose(r.json(), normalized(codes[:1]), rtol=1e-6, atol=1e-7)
    r = http.post("/embed", json={"inputs": TEXTS[:3], "normalize": False, "dimensions": 7})
    np.testing.assert_array_equal(np.array(r.json()), codes[:3, :7])


def test_over_the_limit_truncates_or_gets_422(http, emb):
    n = tm.SHORT_POSITIONS
    assert emb.max_length == n
    right = emb.encode([" ".join(LONG_WORDS[:n])], "int8")
    left = emb.encode([" ".join(LONG_WORDS[-n:])], "int8")
    for direction, want in (("right", right), ("LEFT", left), ("Left", left)):
        r = http.post("/embed", json={"inputs": [LONG_TEXT], "truncate": True, "normalize": False,
                                      "truncation_direction": direction})
        assert r.status_code == 200, r.text
        np.testing.assert_array_equal(np.array(r.json()), want)
    for body in ({"inputs": LONG_TEXT}, {"inputs": [LONG_TEXT], "truncate": False}):
        r = http.post("/embed", json=body)
        assert r.status_code == 422 and r.json()["error_type"] == "Validation"
        assert str(n) in r.json()["error"]
    r = http.post("/v1/embeddings", json={"input": ["w1", LONG_TEXT]})
    assert r.status_code == 422 and r.json()["error"]["type"] == "invalid_request_error"
    assert http.get("/health").status_code == 200


def test_contextualized_embeddings(http, emb):
    docs = [[TEXTS[0], TEXTS[1], TEXTS[2]], [TEXTS[3]], [TEXTS[4], TEXTS[5]]]
    want = emb.encode_contextual(docs, "int8")
    r = http.post("/v1/contextualizedembeddings",
                  json={"input": docs, "model": "pplx-embed-context-v1-0.6b", "encoding_format": "base64_int8"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "list" and body["model"] == "pplx-embed-context-v1-0.6b"
    assert [d["index"] for d in body["data"]] == [0, 1, 2]
    for doc, w in zip(body["data"], want):
        assert doc["object"] == "list" and [c["index"] for c in doc["data"]] == list(range(len(w)))
        np.testing.assert_array_equal(b64_rows(doc["data"], np.int8), w)
    r = http.post("/v1/contextualizedembeddings", json={"input": docs, "dimensions": 8})
    for doc, w in zip(r.json()["data"], want):
        np.testing.assert_allclose([c["embedding"] for c in doc["data"]], normalized(w[:, :8]), rtol=1e-6, atol=1e-7)
    r = http.post("/v1/contextualizedembeddings", json={"input": [[LONG_TEXT]]})
    assert r.status_code == 422 and "longer" in r.json()["error"]["message"]


def test_health_info_metrics(http, emb):
    assert http.get("/health").status_code == 200 and http.get("/health").content == b""
    info = http.get("/info").json()
    assert info["max_input_length"] == tm.SHORT_POSITIONS and info["dim"] == emb.dim
    assert info["max_batch_tokens"] == 16384 and info["max_client_batch_size"] == 32
    assert info["index"] is None and info["kernels"]["variants"]["cosine"]
    text = http.get("/metrics").text
    for name in ("te_request_count{", "te_request_success{", "te_request_duration_bucket", "te_queue_duration_count",
                 "te_inference_duration_count", "te_batch_next_size_bucket", "te_queue_size ",
                 "pplx_search_batch_size_bucket", "pplx_inputs_in_flight "):
        assert name in text, name
    assert 'te_request_failure{err="validation"}' in text  # from the 422s above
    assert http.post("/embed_all", json={"inputs": "x"}).status_code == 404
    r = http.post("/search", json={"query": "w1"})
    assert r.status_code == 404 and r.json()["error_type"] == "Validation"  # no index: embeddings only
