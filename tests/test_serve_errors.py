"""Bad requests: a catalogue, each answered with its documented 4xx in the
route's error shape, the server still serving afterwards; the payload limit
without reading past it; admission (429); API keys (401)."""

from __future__ import annotations

import base64
import json
import socket
import threading
import time

import numpy as np
import pytest

import openai  # the test extra has the clients: a broken install fails here

from pplx_kernels import Index
from pplx_kernels.embedder import Embedder

import tiny_models as tm
from serve_process import ServerProcess

LIMIT = 2_000_000          # the default --payload-limit
MAX_IN_FLIGHT = 16
DIM = 24


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return tm.make_model_dir(tmp_path_factory.mktemp("serve_errors") / "model", hidden=DIM)[0]


@pytest.fixture(scope="module")
def server(model, tmp_path_factory):
    emb = Embedder(model)
    index = Index(DIM, scheme=emb.scheme)
    index.add(emb.encode(tm.random_texts(50, seed=3), "float"))
    path = tmp_path_factory.mktemp("serve_errors") / "index"
    index.save(path)
    with ServerProcess(path, "--model", model, "--max-concurrent-requests", MAX_IN_FLIGHT,
                       "--max-client-batch-size", MAX_IN_FLIGHT) as s:
        yield s


def vec(values):
    return {"vector": values}


def b64(a):
    return base64.b64encode(np.asarray(a, np.int8).tobytes()).decode()


NESTED = b"[" * 5000 + b"]" * 5000
OK_VECTOR = [0.5] * DIM
# (name, path, body: dict -> JSON, bytes -> raw, status)
CATALOGUE = [
    ("malformed JSON", "/embed", b'{"inputs": ', 400),
    ("invalid UTF-8", "/embed", b'{"inputs": "\xff\xfe"}', 400),
    ("deeply nested JSON", "/embed", b'{"inputs": ' + NESTED + b"}", 400),
    ("NaN literal", "/v1/embeddings", b'{"input": "w1", "dimensions": NaN}', 400),
    ("empty body", "/embed", b"", 400),
    ("JSON array, not object", "/embed", b'["w1"]', 422),
    ("missing inputs", "/embed", {}, 422),
    ("inputs a number", "/embed", {"inputs": 5}, 422),
    ("inputs with a number", "/embed", {"inputs": ["w1", 2]}, 422),
    ("empty list", "/embed", {"inputs": []}, 400),
    ("empty string", "/embed", {"inputs": ""}, 400),
    ("unknown field", "/embed", {"inputs": "w1", "pooling": "cls"}, 422),
    ("dimensions 0", "/embed", {"inputs": "w1", "dimensions": 0}, 422),
    ("dimensions too large", "/embed", {"inputs": "w1", "dimensions": 10 ** 6}, 422),
    ("dimensions a string", "/embed", {"inputs": "w1", "dimensions": "8"}, 422),
    ("bad truncation_direction", "/embed", {"inputs": "w1", "truncation_direction": "up"}, 422),
    ("normalize a string", "/embed", {"inputs": "w1", "normalize": "yes"}, 422),
    ("17 inputs (> max client batch)", "/embed", {"inputs": ["w1"] * 17}, 422),
    ("100,000-element list", "/embed", {"inputs": ["w1"] * 100_000}, 422),
    ("10 MB string", "/embed", {"inputs": "w1 " * 3_500_000}, 413),
    ("10 MB string (OpenAI)", "/v1/embeddings", {"input": "w1 " * 3_500_000}, 413),
    ("bad encoding_format", "/v1/embeddings", {"input": "w1", "encoding_format": "base65"}, 422),
    ("token ids", "/v1/embeddings", {"input": [1, 2, 3]}, 422),
    ("lists of token ids", "/v1/embeddings", {"input": [[1, 2], [3]]}, 422),
    ("model a number", "/v1/embeddings", {"input": "w1", "model": 5}, 422),
    ("negative dimensions", "/v1/embeddings", {"input": "w1", "dimensions": -1}, 422),
    ("empty input string", "/v1/embeddings", {"input": ""}, 400),
    ("huge integer dimensions", "/v1/embeddings", {"input": "w1", "dimensions": 10 ** 30}, 422),
    ("contextual: chunks not lists", "/v1/contextualizedembeddings", {"input": ["w1", "w2"]}, 422),
    ("contextual: no documents", "/v1/contextualizedembeddings", {"input": []}, 400),
    ("contextual: a document without chunks", "/v1/contextualizedembeddings", {"input": [[]]}, 400),
    ("contextual: 20 chunks", "/v1/contextualizedembeddings", {"input": [["w1"] * 20]}, 422),
    ("search: value beyond float32", "/search", vec([1e39] + OK_VECTOR[1:]), 422),
    ("search: infinite value", "/search", b'{"vector": [1e400]}', 400),
    ("search: wrong width", "/search", vec([0.5] * (DIM + 1)), 422),
    ("search: ragged rows", "/search", vec([OK_VECTOR, OK_VECTOR[:3]]), 422),
    ("search: strings in vector", "/search", vec(["a"] * DIM), 422),
    ("search: booleans in vector", "/search", vec([True] * DIM), 422),
    ("search: 3-D vector", "/search", vec([[OK_VECTOR]]), 422),
    ("search: k 0", "/search", {**vec(OK_VECTOR), "k": 0}, 422),
    ("search: k huge", "/search", {**vec(OK_VECTOR), "k": 10 ** 9}, 422),
    ("search: k a float", "/search", {**vec(OK_VECTOR), "k": 2.5}, 422),
    ("search: unknown mode", "/search", {**vec(OK_VECTOR), "mode": "fuzzy"}, 422),
    ("search: oversample < 1", "/search", {**vec(OK_VECTOR), "mode": "two_stage", "oversample": 0.5}, 422),
    ("search: query and vector", "/search", {**vec(OK_VECTOR), "query": "w1"}, 422),
    ("search: nothing to search", "/search", {"k": 3}, 422),
    ("search: bad base64", "/search", {"vector_b64_int8": "!!!!"}, 422),
    ("search: base64 of the wrong length", "/search", {"vector_b64_int8": b64([1] * (DIM - 1))}, 422),
    ("search: int8 -128", "/search", {"vector_b64_int8": b64([-128] + [1] * (DIM - 1))}, 422),
    ("search: filter id a float", "/search", {**vec(OK_VECTOR), "filter_ids": [1.5]}, 422),
    ("search: filter id beyond int64", "/search", {**vec(OK_VECTOR), "filter_ids": [2 ** 63]}, 422),
    ("search: filter id beyond uint64", "/search", {**vec(OK_VECTOR), "filter_ids": [2 ** 70]}, 422),
    ("search: include_documents a string", "/search", {**vec(OK_VECTOR), "include_documents": "no"}, 422),
    ("search: empty query list", "/search", {"query": []}, 400),
]


def check_shape(path: str, body: dict) -> None:
    if path.startswith("/v1/"):
        assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
        assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    else:
        assert set(body) == {"error", "error_type"} and isinstance(body["error"], str) and body["error"]
        assert body["error_type"] in ("Validation", "Overloaded", "Unauthorized", "Unhealthy")


def test_catalogue_of_bad_requests(server):
    assert len(CATALOGUE) >= 30
    with server.client() as http:
        for name, path, body, status in CATALOGUE:
            content = body if isinstance(body, bytes) else json.dumps(body).encode()
            r = http.post(path, content=content, headers={"content-type": "application/json"})
            assert r.status_code == status, (name, r.status_code, r.text[:300])
            check_shape(path, r.json())
        for method, path, status in (("GET", "/embed", 405), ("POST", "/nope", 404), ("POST", "/embed_all", 404),
                                     ("DELETE", "/v1/embeddings", 405)):
            r = http.request(method, path)
            assert r.status_code == status, (method, path)
            check_shape(path, r.json())
        # The OpenAI shape names the field at fault.
        r = http.post("/v1/embeddings", json={"input": "w1", "encoding_format": "base65"})
        assert r.json()["error"]["param"] == "encoding_format"
        # ... and the server still serves.
        assert http.get("/health").status_code == 200
        r = http.post("/embed", json={"inputs": ["w1 w2", "w3"]})
        assert r.status_code == 200 and len(r.json()) == 2
        r = http.post("/search", json={"vector": OK_VECTOR, "k": 3, "include_documents": False})
        assert r.status_code == 200 and len(r.json()["data"][0]["results"]) == 3
        assert 'te_request_failure{err="validation"}' in http.get("/metrics").text


def _raw_request(url: str, head: bytes, body_parts, pause: float = 0.0) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=20) as sock:
        sock.sendall(head)
        for part in body_parts:
            try:
                sock.sendall(part)
            except OSError:  # the server answered and closed: stop sending
                break
            time.sleep(pause)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        return data


def test_payload_limit_without_reading_past_it(server):
    # Content-Length over the limit: 413 at once, though no body byte is sent.
    head = (b"POST /embed HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % (50 * LIMIT))
    t0 = time.monotonic()
    answer = _raw_request(server.url, head, [])
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert time.monotonic() - t0 < 10
    # Chunked, no length: refused once the limit is passed, before the client is done sending.
    head = b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    piece = b"a" * 100_000
    chunk = b"%x\r\n%s\r\n" % (len(piece), piece)
    answer = _raw_request(server.url, head, [chunk] * 200)  # 20 MB offered
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    with server.client() as http:
        assert http.post("/embed", json={"inputs": "w1"}).status_code == 200


def test_overload_gets_429_with_retry_headers(server):
    # 8 clients sending 12 inputs each against a limit of 16 inputs in
    # flight: requests that overlap get 429 at once, the rest are answered.
    statuses, stop = [], threading.Event()

    def client(path, body):
        with server.client() as http:
            while not stop.is_set():
                r = http.post(path, json=body)
                statuses.append(r.status_code)
                if r.status_code == 429:
                    assert int(r.headers["retry-after"]) >= 1 and int(r.headers["retry-after-ms"]) > 0
                    check_shape(path, r.json())
                    stop.set()

    threads = [threading.Thread(target=client, args=(path, body)) for path, body in
               [("/embed", {"inputs": ["w1 w2 w3"] * 12})] * 4 + [("/v1/embeddings", {"input": ["w4 w5"] * 12})] * 4]
    for t in threads:
        t.start()
    stopped = stop.wait(60)
    stop.set()
    for t in threads:
        t.join()
    assert stopped and 429 in statuses and set(statuses) <= {200, 429}
    with server.client() as http:
        assert http.post("/embed", json={"inputs": "w1"}).status_code == 200


def test_api_key(model):
    key = "s3cret-key"
    with ServerProcess("--model", model, "--api-key", key) as server, server.client() as http:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": key},
                        {"Authorization": f"Basic {key}"}, {"Authorization": f"Bearer {key}x"}):
            r = http.post("/embed", json={"inputs": "w1"}, headers=headers)
            assert r.status_code == 401 and r.json()["error_type"] == "Unauthorized"
            r = http.post("/v1/embeddings", json={"input": "w1"}, headers=headers)
            assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
            assert http.get("/info", headers=headers).status_code == 401
            assert http.post("/admin/reload", headers=headers).status_code == 401
        assert http.get("/health").status_code == 200 and "te_request_count" in http.get("/metrics").text
        assert http.get("/").status_code == 200
        good = {"Authorization": f"Bearer {key}"}
        assert http.post("/embed", json={"inputs": "w1"}, headers=good).status_code == 200
        client = openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0)
        assert len(client.embeddings.create(input=["w1", "w2"], model="m").data) == 2
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=server.url + "/v1", api_key="nope", max_retries=0).embeddings.create(
                input="w1", model="m")
