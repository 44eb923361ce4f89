"""The pplx-kernels command line, run as a subprocess (python -m pplx_kernels)."""

import json
import os
import re
import subprocess
import sys
import time

import numpy as np
import pytest

import pplx_kernels

PYTHON_DIR = os.path.dirname(os.path.dirname(pplx_kernels.__file__))

DOCS = [
    ("cats", "Cats", "Cats are small domesticated carnivorous mammals kept as pets; they purr and chase mice."),
    ("stocks", "Stock market", "Shares of public companies are bought and sold on stock exchanges by investors."),
    ("bread", "Baking bread", "Mix flour, water, yeast and salt, knead the dough, let it rise, then bake it in an oven."),
    ("rain", "Rain", "Rain is liquid water falling from clouds when condensed vapour droplets become heavy."),
    ("guitar", "Guitar", "The guitar is a stringed musical instrument played by strumming or plucking its strings."),
    ("volcano", "Volcanoes", "A volcano is a rupture in the crust where lava, ash and gases escape from below."),
]


def run_cli(*args, stdin=None, check_rc=None):
    env = dict(os.environ, PYTHONPATH=PYTHON_DIR, PPLX_KERNELS_NUM_THREADS="2")
    proc = subprocess.run([sys.executable, "-m", "pplx_kernels", *map(str, args)], input=stdin,
                          capture_output=True, text=True, env=env, timeout=300)
    if check_rc is not None:
        assert proc.returncode == check_rc, proc.stderr
    return proc


def _needs_default_model():
    # The test extra installs the default model: a broken install fails here.
    from pplx_kernels._default_model import default_model_files
    default_model_files()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "docs.jsonl"
    path.write_text("".join(json.dumps({"doc_id": i, "name": t, "body": b}) + "\n" for i, t, b in DOCS))
    return path


@pytest.fixture(scope="module")
def index_dir(corpus, tmp_path_factory):
    _needs_default_model()
    out = tmp_path_factory.mktemp("index") / "ix"
    proc = run_cli("index", corpus, "--out", out, "--text-field", "body", "--id-field", "doc_id",
                   "--title-field", "name", "--quiet", check_rc=0)
    assert f"indexed {len(DOCS)} documents" in proc.stdout and "docs/s" in proc.stdout
    return out


def test_index_then_search_finds_the_right_document(index_dir):
    proc = run_cli("search", index_dir, "a pet that purrs", "-k", "2", check_rc=0)
    lines = proc.stdout.splitlines()
    assert lines[0] == "query: a pet that purrs"
    assert "Cats" in lines[1] and lines[1].lstrip().startswith("1.")


def test_search_json(index_dir):
    proc = run_cli("search", index_dir, "playing music on strings", "--json", "-k", "3", check_rc=0)
    (line,) = proc.stdout.splitlines()
    result = json.loads(line)
    assert result["query"] == "playing music on strings"
    hits = result["results"]
    assert [h["rank"] for h in hits] == [1, 2, 3]
    assert hits[0]["id"] == "guitar" and hits[0]["title"] == "Guitar" and hits[0]["text"] == DOCS[4][2]
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True)


def test_search_queries_from_stdin_both_modes(index_dir):
    queries = "hot lava and ash\nhow to make dough rise\n\nbuying shares\n"
    outputs = {}
    for mode in ("exact", "two_stage"):
        proc = run_cli("search", index_dir, "--json", "-k", "1", "--mode", mode, stdin=queries, check_rc=0)
        outputs[mode] = [json.loads(line) for line in proc.stdout.splitlines()]
    exact = outputs["exact"]
    assert [r["query"] for r in exact] == ["hot lava and ash", "how to make dough rise", "buying shares"]
    assert [r["results"][0]["id"] for r in exact] == ["volcano", "bread", "stocks"]
    # Six documents: every row is a candidate, so two-stage equals exact.
    assert outputs["two_stage"] == exact


def test_text_corpus_and_stdlib_corpus(tmp_path):
    _needs_default_model()
    text = tmp_path / "lines.txt"
    text.write_text("\n".join(b for _, _, b in DOCS) + "\n")
    run_cli("index", text, "--out", tmp_path / "t", "--quiet", check_rc=0)
    hit = json.loads(run_cli("search", tmp_path / "t", "weather and clouds", "--json", "-k", "1",
                             check_rc=0).stdout)["results"][0]
    assert hit["id"] == 4 and hit["text"] == DOCS[3][2]  # id = line number
    run_cli("index", "stdlib", "--limit", "8", "--out", tmp_path / "s", "--quiet", check_rc=0)
    assert len(pplx_kernels.Index.load(tmp_path / "s")) == 8


def test_embed_writes_npy(tmp_path, corpus):
    _needs_default_model()
    out = tmp_path / "v.npy"
    run_cli("embed", corpus, "--text-field", "body", "--out", out, "--quantization", "ubinary", "--quiet",
            check_rc=0)
    v = np.load(out)
    assert v.dtype == np.uint8 and v.shape == (len(DOCS), 384 // 8)


@pytest.mark.parametrize("args", [
    [],
    ["frobnicate"],
    ["search"],
    ["search", "DIR", "q", "-k", "0"],
    ["search", "DIR", "q", "--mode", "fast"],
    ["search", "DIR", "q", "--oversample", "0.5"],
    ["index", "corpus.jsonl"],
    ["embed", "x.txt", "--out", "x.npy", "--quantization", "int4"],
])
def test_usage_errors_exit_2_with_one_line(args):
    proc = run_cli(*args)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "error:" in proc.stderr


def test_missing_index_exits_1_with_one_line(tmp_path):
    proc = run_cli("search", tmp_path / "nope", "query")
    assert proc.returncode == 1
    (line,) = proc.stderr.strip().splitlines()
    assert "no such index directory" in line and str(tmp_path / "nope") in line
    debug = run_cli("--debug", "search", tmp_path / "nope", "query")
    assert debug.returncode == 1 and "Traceback" in debug.stderr


def test_damaged_index_and_bad_corpus_exit_1(index_dir, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{"body": "no text field"}\n')
    proc = run_cli("index", bad, "--out", tmp_path / "o")
    assert proc.returncode == 1 and "line 2 has no string field 'text'" in proc.stderr
    (tmp_path / "foreign").mkdir()
    proc = run_cli("search", tmp_path / "foreign", "q")
    assert proc.returncode == 1 and "not a pplx-kernels index" in proc.stderr


@pytest.mark.parametrize("verb", ["index", "search", "embed", "info", "bench", "demo"])
def test_help_on_every_verb(verb):
    proc = run_cli(verb, "--help", check_rc=0)
    assert proc.stdout.startswith("usage: pplx-kernels " + verb)


def test_info_json():
    info = json.loads(run_cli("info", "--json", check_rc=0).stdout)
    assert info["version"] == pplx_kernels.__version__
    assert info["isa"] in info["available"] and set(info["kernels"]) >= {"cosine", "hamming"}


def test_bench_says_what_is_missing(tmp_path):
    proc = run_cli("bench", "--benchmarks-dir", tmp_path / "none")
    assert proc.returncode == 1 and "no benchmarks directory" in proc.stderr


def test_demo_answers_queries(tmp_path):
    _needs_default_model()
    proc = run_cli("demo", "--limit", "12", "--quiet", "--out", tmp_path / "d", "--queries", "unicode text",
                   check_rc=0)
    assert "indexed 12 documents" in proc.stdout
    assert "query: unicode text" in proc.stdout and "  1. " in proc.stdout
    assert len(pplx_kernels.Index.load(tmp_path / "d")) == 12


# --- streaming build: commits, kill -9, --resume --------------------------------


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    import tiny_models as tm
    root, _ = tm.make_model_dir(tmp_path_factory.mktemp("tiny"), layout="plain", style="bert")
    return root


def _stream_corpus(path, n, seed=3):
    import tiny_models as tm
    texts = tm.random_texts(n, seed=seed)
    # String ids: the index numbers the rows, the documents keep these.
    lines = [json.dumps({"id": f"doc-{i}", "text": t}) + "\n" for i, t in enumerate(texts)]
    path.write_text("".join(lines))
    return lines


def _index_rows(directory) -> dict:
    """index id -> (int8 vector bytes, document) of every committed row."""
    with pplx_kernels.Index.load(directory) as index:
        ids = np.sort(index.ids)
        vectors = index.get(ids)
        docs = index.documents(ids)
    return {int(i): (v.tobytes(), d) for i, v, d in zip(ids, vectors, docs)}


def _committed_rows(directory) -> int:
    try:
        with pplx_kernels.Index.load(directory) as index:
            return len(index)
    except (FileNotFoundError, ValueError):
        return 0  # not created yet


def test_killed_build_resumes_to_the_uninterrupted_result(tmp_path, tiny_model):
    n = 2600
    corpus = tmp_path / "c.jsonl"
    lines = _stream_corpus(corpus, n)
    common = ["--model", tiny_model, "--commit-every", "500", "--quiet"]
    run_cli("index", corpus, "--out", tmp_path / "whole", *common, check_rc=0)
    whole = _index_rows(tmp_path / "whole")
    assert len(whole) == n and sorted(whole) == list(range(n))
    assert [whole[i][1] for i in range(n)] == [{**json.loads(ln), "title": None} for ln in lines]

    # Feed the corpus on stdin, hold it back after 1500 lines: the build
    # commits the chunks it has (500 rows each) and waits; kill it there.
    env = dict(os.environ, PYTHONPATH=PYTHON_DIR, PPLX_KERNELS_NUM_THREADS="2")
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "pplx_kernels", "index", "-", "--format", "jsonl",
                             "--out", out, *map(str, common)], stdin=subprocess.PIPE, env=env,
                            stderr=subprocess.PIPE, text=True)
    try:
        proc.stdin.write("".join(lines[:1500]))
        proc.stdin.flush()
        deadline = time.monotonic() + 120
        committed = 0
        while committed == 0:
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "no commit within 120 s"
            time.sleep(0.2)
            committed = _committed_rows(out)
    finally:
        proc.kill()
        proc.wait()
    assert 0 < committed < n
    partial = _index_rows(out)
    assert all(whole[i] == row for i, row in partial.items())

    done = run_cli("index", corpus, "--out", out, "--resume", *common, check_rc=0)
    # The resume also keeps rows the killed build had logged but not yet
    # committed (the index replays its log on open): at least the committed.
    added, kept = map(int, re.search(r"indexed (\d+) documents after (\d+) already there", done.stdout).groups())
    assert added + kept == n and kept >= len(partial)
    assert _index_rows(out) == whole
    # Without --resume, a directory holding an index is not touched.
    again = run_cli("index", corpus, "--out", out, *common)
    assert again.returncode == 1 and "already holds an index or other files; pass --resume" in again.stderr
    # A resume against another corpus is refused, not mixed in.
    other = tmp_path / "other.jsonl"
    other.write_text("".join(lines[:10]))
    refused = run_cli("index", other, "--out", out, "--resume", *common)
    assert refused.returncode == 1 and "holds 2600 rows but the corpus only 10 documents" in refused.stderr


def test_build_killed_at_random_points_resumes_to_the_same_index(tmp_path, tiny_model):
    # Integer ids from the corpus this time; kills land anywhere: in the
    # model, in add, in commit.
    import tiny_models as tm
    n = 12000
    corpus = tmp_path / "c.jsonl"
    corpus.write_text("".join(json.dumps({"id": 10 * i + 7, "text": t, "title": f"t{i % 5}"}) + "\n"
                              for i, t in enumerate(tm.random_texts(n, seed=5))))
    common = ["--model", tiny_model, "--commit-every", "1000", "--quiet"]
    run_cli("index", corpus, "--out", tmp_path / "whole", *common, check_rc=0)
    whole = _index_rows(tmp_path / "whole")
    assert sorted(whole) == [10 * i + 7 for i in range(n)]

    env = dict(os.environ, PYTHONPATH=PYTHON_DIR, PPLX_KERNELS_NUM_THREADS="2")
    out = tmp_path / "killed"
    rng = np.random.default_rng(11)
    for threshold in (1000, 3000, 5000):  # each leaves thousands of rows to go
        # Kill a few milliseconds after the index holds `threshold` rows.
        proc = subprocess.Popen([sys.executable, "-m", "pplx_kernels", "index", str(corpus), "--out", str(out),
                                 "--resume", *map(str, common)], env=env, stderr=subprocess.DEVNULL)
        try:
            rows = 0
            while rows < threshold and proc.poll() is None:
                time.sleep(0.05)
                rows = _committed_rows(out)
            time.sleep(rng.uniform(0, 0.05))
            assert proc.poll() is None, f"the build ended (rc {proc.returncode}) at {rows} rows, before the kill"
        finally:
            proc.kill()
            proc.wait()
        partial = _index_rows(out)
        assert threshold <= len(partial) < n, (threshold, len(partial))
        assert all(whole[i] == row for i, row in partial.items())
    run_cli("index", corpus, "--out", out, "--resume", *common, check_rc=0)
    assert _index_rows(out) == whole
