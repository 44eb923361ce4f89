"""POST /search against Index.search on the same index, coalescing under 32
concurrent clients (every answer equal to the serial one), and the search
page in headless Chromium."""

from __future__ import annotations

import base64
import random
import re
import shutil
import threading

import numpy as np
import pytest

from pplx_kernels import Index
from pplx_kernels.distributed import split
from pplx_kernels.embedder import Embedder
from pplx_kernels.serve.state import MODEL_CALL_TOKENS

import tiny_models as tm
from serve_process import ServerProcess

N_DOCS = 300
DIM = 64


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serve_search")
    model, _ = tm.make_model_dir(tmp / "model", hidden=DIM, layout="pplx", style="qwen", token_types=False)
    emb = Embedder(model, threads=1, batch_tokens=MODEL_CALL_TOKENS)  # as the server runs it
    texts = tm.random_texts(N_DOCS, seed=11, max_words=25)
    index = Index(DIM, scheme=emb.scheme)
    ids = 1000 + 7 * np.arange(N_DOCS)  # user ids, not row numbers
    docs = [{"title": f"doc {i}", "text": t} for i, t in zip(ids.tolist(), texts)]
    index.add(emb.encode(texts, "float"), ids=ids, documents=docs)
    index.save(tmp / "index")
    server = ServerProcess(tmp / "index", "--model", model, "--threads", 2).start()
    try:
        yield {"emb": emb, "index": Index.load(tmp / "index"), "server": server, "docs": dict(zip(ids.tolist(), docs)),
               "ids": ids, "texts": texts, "model": model, "tmp": tmp}
    finally:
        server.stop()


def queries(n, seed):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, DIM)).astype(np.float32)


def expected(index, q, k=10, mode="exact", oversample=None, filter_ids=None):
    allow = None if filter_ids is None else np.asarray(filter_ids, np.int64)
    scores, ids = index.search(q, k, mode=mode, oversample=oversample, allow_ids=allow)
    return [[{"id": int(i), "score": float(s)} for s, i in zip(sr, ir)] for sr, ir in zip(scores, ids)]


def hits(body, documents=False):
    return [[{k: v for k, v in h.items() if documents or k != "document"} for h in d["results"]] for d in body["data"]]


def test_search_equals_index_search(setup):
    index, docs = setup["index"], setup["docs"]
    q = queries(6, 1)
    allow = setup["ids"][::5].tolist() + [5, 10 ** 12]  # ids not in the index are ignored
    cases = [dict(k=5), dict(k=1), dict(k=N_DOCS + 50), dict(k=8, mode="two_stage"),
             dict(k=8, mode="two_stage", oversample=2), dict(k=7, filter_ids=allow),
             dict(k=7, mode="two_stage", filter_ids=allow), dict(k=4, filter_ids=[])]
    with setup["server"].client() as http:
        for case in cases:
            r = http.post("/search", json={"vector": q.tolist(), **case})
            assert r.status_code == 200, (case, r.text)
            assert hits(r.json()) == expected(index, q, **case), case
        # documents come back with the hits
        r = http.post("/search", json={"vector": q[0].tolist(), "k": 3}).json()
        for h in r["data"][0]["results"]:
            assert h["document"] == docs[h["id"]]
        assert r["data"][0]["query"] is None and r["object"] == "list"
        # int8 vectors in base64
        codes = np.clip(np.rint(q[:3] * 40), -127, 127).astype(np.int8)
        r = http.post("/search", json={"vector_b64_int8": [base64.b64encode(c.tobytes()).decode() for c in codes],
                                       "k": 6, "include_documents": False})
        assert hits(r.json()) == expected(index, codes, k=6)
        assert "document" not in r.json()["data"][0]["results"][0]
        # text queries: embedded by the server's model, then searched
        texts = [setup["texts"][3], "w1 w2 w3 w4"]
        r = http.post("/search", json={"query": texts, "k": 5}).json()
        assert hits(r) == expected(index, setup["emb"].encode(texts, "float"), k=5)
        assert [d["query"] for d in r["data"]] == texts and r["usage"]["prompt_tokens"] > 0
        assert r["data"][0]["results"][0]["id"] == setup["ids"][3]  # a document finds itself
        info = http.get("/info").json()
        assert info["index"]["size"] == N_DOCS and info["index"]["dim"] == DIM


def test_a_sharded_directory_serves_the_same_answers(setup):
    """`serve DIR` on a sharded directory (distributed.split of the same
    index): the same hits as Index.search, in both modes, filters too."""
    index, tmp = setup["index"], setup["tmp"]
    split(index, tmp / "sharded", shards=3)
    server = ServerProcess(tmp / "sharded", "--model", setup["model"], "--threads", 2).start()
    try:
        q = queries(5, 3)
        with server.client() as http:
            allow = setup["ids"][::4].tolist()
            for case in (dict(k=6), dict(k=8, mode="two_stage", oversample=2), dict(k=7, filter_ids=allow),
                         dict(k=7, mode="two_stage", filter_ids=allow)):
                r = http.post("/search", json={"vector": q.tolist(), **case})
                assert r.status_code == 200, r.text
                assert hits(r.json()) == expected(index, q, **case), case
            assert http.get("/info").json()["index"]["size"] == N_DOCS
    finally:
        server.stop()


def test_32_concurrent_clients_get_the_serial_answers(setup):
    index = setup["index"]
    q = queries(64, 2)
    allow = setup["ids"][::3].tolist()
    requests = []
    for i in range(160):
        kind = i % 5
        if kind == 0:
            requests.append(("/embed", {"inputs": setup["texts"][i % N_DOCS], "normalize": False}))
        elif kind == 1:
            requests.append(("/v1/embeddings", {"input": setup["texts"][i:i + 3], "encoding_format": "float"}))
        elif kind == 2:
            requests.append(("/search", {"vector": q[i % 64].tolist(), "k": 1 + i % 12}))
        elif kind == 3:
            requests.append(("/search", {"vector": q[i % 64].tolist(), "k": 5, "mode": "two_stage",
                                         "include_documents": False}))
        else:
            requests.append(("/search", {"vector": q[i % 64].tolist(), "k": 6, "filter_ids": allow}))
    with setup["server"].client() as http:
        serial = [http.post(path, json=body).json() for path, body in requests]
        before = http.get("/metrics").text
    got = [None] * len(requests)
    order = list(range(len(requests)))
    random.Random(3).shuffle(order)
    errors = []

    def client(worker):
        with setup["server"].client() as http:
            for j in order[worker::32]:
                r = http.post(requests[j][0], json=requests[j][1])
                if r.status_code != 200:
                    errors.append(r.text)
                got[j] = r.json()

    threads = [threading.Thread(target=client, args=(w,)) for w in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for (path, body), want, answer in zip(requests, serial, got):
        if path == "/search":
            # Top-k calls are exact whatever queries share them: equal to the bit.
            assert answer == want, body
            assert hits(answer) == expected(index, np.asarray([body["vector"]], np.float32), k=body["k"],
                                            mode=body.get("mode", "exact"), filter_ids=body.get("filter_ids"))
        elif path == "/embed":
            # Model batches differ with the company a text keeps: float rounding, not more.
            np.testing.assert_allclose(answer, want, atol=1.01)
            np.testing.assert_array_equal(np.rint(answer), answer)
            assert np.mean(np.asarray(answer) != np.asarray(want)) < 0.01
        else:
            np.testing.assert_allclose([d["embedding"] for d in answer["data"]],
                                       [d["embedding"] for d in want["data"]], rtol=1e-5, atol=1e-6)
    # Concurrent queries were coalesced: fewer top-k calls than queries.
    with setup["server"].client() as http:
        after = http.get("/metrics").text
    calls = _sample(after, "pplx_search_batch_size_count") - _sample(before, "pplx_search_batch_size_count")
    n_search = sum(path == "/search" for path, _ in requests)
    assert 0 < calls < n_search, (calls, n_search)


def _sample(text: str, name: str) -> float:
    return float(re.search(rf"^{name} (\S+)$", text, re.M).group(1))


def _chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(_chromium() is None, reason="needs Debian's chromium (apt-get install chromium)")
def test_search_page_in_headless_chromium(setup):
    from playwright import sync_api
    server = setup["server"]
    query = setup["texts"][10]
    with server.client() as http:
        html = http.get("/").text
        want = [h["id"] for h in http.post("/search", json={"query": query, "k": 10}).json()["data"][0]["results"]]
    # Self-contained: nothing loaded from elsewhere.
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=_chromium(), args=["--no-sandbox"])
        try:
            page = browser.new_page()
            requests_elsewhere = []
            page.on("request", lambda r: None if r.url.startswith(server.url) else requests_elsewhere.append(r.url))
            page.goto(server.url + "/")
            page.wait_for_function("document.getElementById('status').textContent.includes('rows')")
            assert f"{N_DOCS} rows" in page.text_content("#status")
            page.fill("#q", query)
            page.click("#go")
            page.wait_for_function("document.querySelectorAll('#results li.hit').length > 0")
            got = [int(x) for x in page.eval_on_selector_all("#results li.hit", "els => els.map(e => e.dataset.id)")]
            titles = page.eval_on_selector_all("#results li.hit .title", "els => els.map(e => e.textContent)")
            assert not requests_elsewhere
        finally:
            browser.close()
    assert got == want
    assert titles[0] == setup["docs"][want[0]]["title"]
