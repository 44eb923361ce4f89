"""corpus.read_corpus: documents streamed one at a time, errors naming the line."""

import itertools
import json

import pytest

from pplx_kernels.corpus import read_corpus, stdlib_docstrings


def test_reads_lazily_and_names_the_bad_line(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text("\n".join([json.dumps({"id": "a", "text": "one", "title": "T"}), "",
                               json.dumps({"text": "two", "title": 5}), "{not json"]) + "\n")
    docs = read_corpus(str(path))
    # The first documents come out before the bad line is read.
    assert list(itertools.islice(docs, 2)) == [{"id": "a", "title": "T", "text": "one"},
                                                {"id": 3, "title": None, "text": "two"}]
    with pytest.raises(ValueError, match=r"corpus: .*c.jsonl line 4 is not valid JSON"):
        next(docs)


def test_text_lines_and_format_detection(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("\n\n{looks like json}\nplain\n")
    with pytest.raises(ValueError, match="line 3 is not valid JSON"):
        list(read_corpus(str(path)))  # auto: the first non-blank line starts with "{"
    assert list(read_corpus(str(path), fmt="text")) == [{"id": 3, "title": None, "text": "{looks like json}"},
                                                       {"id": 4, "title": None, "text": "plain"}]
    assert [d["id"] for d in read_corpus(str(path), fmt="text", limit=1)] == [3]


def test_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="corpus: no such file"):
        read_corpus(str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="fmt: expected one of"):
        read_corpus(str(tmp_path), fmt="csv")
    with pytest.raises(ValueError, match="limit: expected None or a positive int"):
        read_corpus("stdlib", limit=0)
    dup = tmp_path / "dup.jsonl"
    dup.write_text(json.dumps({"id": 1, "text": "a"}) + "\n" + json.dumps({"id": 1, "text": "b"}) + "\n")
    with pytest.raises(ValueError, match="line 2: document id 1 appears more than once"):
        list(read_corpus(str(dup)))
    empty = tmp_path / "empty.txt"
    empty.write_text("\n \n")
    with pytest.raises(ValueError, match="holds no documents"):
        list(read_corpus(str(empty)))
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("caf\xe9\n".encode("latin-1"))
    with pytest.raises(ValueError, match="is not UTF-8 text"):
        list(read_corpus(str(latin1)))


def test_stdlib_source():
    assert list(read_corpus("stdlib", limit=3)) == stdlib_docstrings(3)
