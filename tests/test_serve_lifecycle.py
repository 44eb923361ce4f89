"""The server end to end with the default model over a saved index: search
equals the library's, reload (SIGHUP and POST /admin/reload) under load,
and SIGTERM during load answers every accepted request, then exits 0. With
tiny models: /health answers 503 while the model loads, and a request whose
deadline passes in the queue gets 504 and costs no model time."""

from __future__ import annotations

import re
import signal
import threading
import time

import httpx
import numpy as np
import pytest

from pplx_kernels import Index
from pplx_kernels import _default_model
from pplx_kernels.corpus import read_corpus
from pplx_kernels.index.build import build_index
from pplx_kernels.embedder import Embedder
from pplx_kernels.serve.state import LOAD_DELAY_ENV, MODEL_CALL_TOKENS

import tiny_models as tm
from serve_process import ServerProcess, wait_until

QUERY = "read rows from a CSV file"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    path = tmp_path_factory.mktemp("serve_life") / "index"
    docs = list(read_corpus("stdlib", limit=120))
    build_index(docs, path, progress=False)
    # No --model: the one the index was built with. Two model workers.
    server = ServerProcess(path, "--threads", 2).start()
    try:
        yield {"path": path, "docs": docs, "server": server}
    finally:
        server.stop()


def test_default_model_search_end_to_end(setup):
    index = Index.load(setup["path"])
    emb = Embedder(threads=1, batch_tokens=MODEL_CALL_TOKENS)  # as the server runs it
    scores, ids = index.search(emb.encode([QUERY], "float"), 5)
    with setup["server"].client() as http:
        info = http.get("/info").json()
        assert info["model_sha"] == _default_model.MODEL_SHA256 and info["index"]["size"] == len(setup["docs"])
        r = http.post("/search", json={"query": QUERY, "k": 5})
    assert r.status_code == 200
    results = r.json()["data"][0]["results"]
    assert [h["id"] for h in results] == ids[0].tolist()
    np.testing.assert_array_equal([h["score"] for h in results], scores[0])
    assert results[0]["document"] == index.documents(ids[0, :1])[0]


def _hammer(server, stop: threading.Event, statuses: list):
    with server.client() as http:
        while not stop.is_set():
            statuses.append(http.post("/search", json={"query": QUERY, "k": 3}).status_code)


def test_reload_swaps_the_index_under_load(setup):
    server, path = setup["server"], setup["path"]
    stop, statuses = threading.Event(), []
    threads = [threading.Thread(target=_hammer, args=(server, stop, statuses)) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        smaller = Index.load(path)
        keep = smaller.ids[:50]
        new = Index(smaller.dim, scheme=smaller.scheme, model=smaller.model)
        new.add(smaller.get(keep), ids=keep, documents=smaller.documents(keep))
        new.save(path)  # replaces the index in place, atomically
        server.signal(signal.SIGHUP)
        with server.client() as http:
            assert wait_until(lambda: http.get("/info").json()["index"]["size"] == 50, timeout=30)
            r = http.post("/search", json={"query": QUERY, "k": 100, "include_documents": False})
            assert {h["id"] for h in r.json()["data"][0]["results"]} <= set(keep.tolist())
            Index.load(path).save(path)  # unchanged rows, saved again
            r = http.post("/admin/reload")
            assert r.status_code == 200 and r.json() == {"reloaded": True, "size": 50}
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert statuses and set(statuses) == {200}


def _metric(http, name: str) -> float:
    m = re.search(rf"^{re.escape(name)} (\S+)$", http.get("/metrics").text, re.M)
    return float(m.group(1)) if m else 0.0


def test_a_disconnected_client_costs_no_model_time(setup):
    server = setup["server"]
    long_text = " ".join(d["text"] for d in setup["docs"][:20])
    big = {"inputs": [long_text] * 32, "truncate": True}  # 8,192 tokens: a second or more on 2 cores
    with server.client() as http:
        embedded0 = _metric(http, "te_embed_count")
        dropped0 = _metric(http, 'pplx_dropped{reason="cancelled"}')
        batches0 = _metric(http, "te_batch_next_size_count")
        threads = [threading.Thread(target=lambda: httpx.post(server.url + "/embed", json=big, timeout=120))
                   for _ in range(2)]
        for t in threads:
            t.start()
        # Both model workers busy with a big request each for a while.
        assert wait_until(lambda: _metric(http, "te_batch_next_size_count") == batches0 + 2, timeout=30)
        with pytest.raises(httpx.TimeoutException):  # queued behind them, then the client leaves
            httpx.post(server.url + "/embed", json={"inputs": ["w1", "w2", "w3"]}, timeout=0.2)
        for t in threads:
            t.join()
        assert wait_until(lambda: _metric(http, 'pplx_dropped{reason="cancelled"}') == dropped0 + 3, timeout=30)
        assert _metric(http, "te_embed_count") == embedded0 + 64
        assert http.post("/embed", json={"inputs": "w1"}).status_code == 200


def test_sigterm_during_load_answers_every_accepted_request(setup):
    server = setup["server"]
    long_text = " ".join(d["text"] for d in setup["docs"][:20])  # cut at the model's 256 tokens
    body = {"inputs": [long_text] * 4, "truncate": True, "normalize": False}
    n_requests = 6
    answers = [None] * n_requests

    def send(i):
        try:
            with server.client() as http:
                answers[i] = http.post("/embed", json=body)
        except httpx.HTTPError as exc:
            answers[i] = exc

    threads = [threading.Thread(target=send, args=(i,)) for i in range(n_requests)]
    for t in threads:
        t.start()
    with server.client() as http:
        def all_admitted():
            m = re.search(r"^pplx_inputs_in_flight (\S+)$", http.get("/metrics").text, re.M)
            return float(m.group(1)) == n_requests * 4
        assert wait_until(all_admitted, timeout=30)
    server.signal(signal.SIGTERM)
    for t in threads:
        t.join()
    assert all(isinstance(a, httpx.Response) and a.status_code == 200 for a in answers), answers
    first = np.asarray(answers[0].json()[0])
    for a in answers:  # the same text each time (batches may differ: float rounding at most)
        np.testing.assert_allclose(a.json(), [first] * 4, rtol=1e-4, atol=1e-5)
    assert server.wait(60) == 0
    with pytest.raises(httpx.ConnectError):
        httpx.get(server.url + "/health")


def test_health_answers_503_until_the_model_is_loaded(tmp_path):
    model, _ = tm.make_model_dir(tmp_path / "model")
    server = ServerProcess("--model", model, env={LOAD_DELAY_ENV: "3"}).start(wait_ready=False)
    try:
        with server.client() as http:
            r = http.get("/health")
            assert not server.loaded  # answered before the ready line
            assert r.status_code == 503 and set(r.json()) == {"error", "error_type"}
            assert r.json()["error_type"] == "Unhealthy" and r.json()["error"]
            r = http.post("/embed", json={"inputs": "w1"})
            assert r.status_code == 503 and r.json()["error_type"] == "Unhealthy"
            r = http.post("/v1/embeddings", json={"input": "w1"})
            assert r.status_code == 503 and r.json()["error"]["type"] == "server_error"
            assert server.ready.wait(60) and server.loaded
            assert http.get("/health").status_code == 200 and http.get("/health").content == b""
            assert http.post("/embed", json={"inputs": "w1"}).status_code == 200
    finally:
        server.stop()


def test_a_request_past_its_deadline_gets_504_and_costs_no_model_time(tmp_path):
    # A tiny model with a fixed amount of compute per call (same outputs):
    # the one model worker is busy with a call for 4x the deadline.
    model, _ = tm.make_model_dir(tmp_path / "slow", busy_matmuls=10)
    emb = Embedder(model, threads=1)
    t0 = time.perf_counter()
    emb.encode(["w1"])
    deadline = round((time.perf_counter() - t0) / 4, 3)
    with ServerProcess("--model", model, "--threads", 1, "--request-timeout", deadline) as server, \
            server.client() as http:
        embedded0 = _metric(http, "te_embed_count")
        batches0 = _metric(http, "te_batch_next_size_count")
        first = []
        sender = threading.Thread(target=lambda: first.append(
            httpx.post(server.url + "/embed", json={"inputs": "w1"}, timeout=60)))
        sender.start()
        assert wait_until(lambda: _metric(http, "te_batch_next_size_count") == batches0 + 1, timeout=30)
        r = http.post("/v1/embeddings", json={"input": ["w2", "w3", "w4"]})  # queued behind that call
        assert _metric(http, "te_embed_count") == embedded0  # the call was still running
        assert r.status_code == 504 and r.json()["error"]["type"] == "rate_limit_error"
        assert "--request-timeout" in r.json()["error"]["message"]
        sender.join()
        # The first request's call ran to its end, past the deadline too.
        assert first[0].status_code == 504 and first[0].json()["error_type"] == "Overloaded"
        # The queued texts were dropped, never run.
        assert wait_until(lambda: _metric(http, 'pplx_dropped{reason="cancelled"}') == 3, timeout=30)
        assert _metric(http, "te_embed_count") == embedded0 + 1
        assert _metric(http, 'pplx_dropped{reason="deadline"}') == 2
        assert http.get("/health").status_code == 200
