"""The bad-input catalogue: each public entry point given input it must
refuse, with the exception type and the argument its message must name.
Every case is one line, so the catalogue reads as a list."""

import json
import os
import shutil

import numpy as np
import pytest

import pplx_kernels as pk
from pplx_kernels.index import Index

f32 = np.ones((3, 16), np.float32)
i8 = np.ones((3, 16), np.int8)
u8 = np.ones((3, 2), np.uint8)
hidden = np.ones((2, 5, 8), np.float32)
mask = np.ones((2, 5), np.int64)
nan_rows = np.array([[0.0, 1.0], [np.nan, 1.0]], np.float32)
inf_rows = np.array([[0.0, 1.0], [1.0, -np.inf]], np.float32)
with_minus128 = np.array([[1, -128, 3]], np.int8)

KERNEL_CASES = [
    # mean_pool / mean_pool_spans
    ("mean_pool rank 2 hidden", lambda: pk.mean_pool(np.ones((2, 5), np.float32), mask), ValueError, "hidden"),
    ("mean_pool int hidden", lambda: pk.mean_pool(hidden.astype(np.int32), mask), TypeError, "hidden"),
    ("mean_pool zero-width hidden", lambda: pk.mean_pool(np.ones((2, 5, 0), np.float32), mask), ValueError, "hidden"),
    ("mean_pool mask shape", lambda: pk.mean_pool(hidden, np.ones((2, 4), np.int64)), ValueError, "attention_mask"),
    ("mean_pool float mask", lambda: pk.mean_pool(hidden, mask.astype(np.float32)), TypeError, "attention_mask"),
    ("mean_pool NaN", lambda: pk.mean_pool(np.full((1, 2, 3), np.nan, np.float32), np.ones((1, 2), np.int64)), ValueError, "hidden"),
    ("mean_pool string", lambda: pk.mean_pool("hidden", mask), TypeError, "hidden"),
    ("mean_pool threads=0", lambda: pk.mean_pool(hidden, mask, threads=0), ValueError, "threads"),
    ("spans out of range", lambda: pk.mean_pool_spans(hidden[0], np.array([[0, 6]])), ValueError, "spans"),
    ("spans reversed", lambda: pk.mean_pool_spans(hidden[0], np.array([[3, 2]])), ValueError, "spans"),
    ("spans float", lambda: pk.mean_pool_spans(hidden[0], np.array([[0.0, 2.0]])), TypeError, "spans"),
    ("spans shape", lambda: pk.mean_pool_spans(hidden[0], np.array([[0, 1, 2]])), ValueError, "spans"),
    # quantize / quantize_fused
    ("quantize NaN", lambda: pk.quantize(nan_rows), ValueError, "x: row 1"),
    ("quantize Inf binary", lambda: pk.quantize(inf_rows, "binary"), ValueError, "x: row 1"),
    ("quantize Inf absmax fused", lambda: pk.quantize_fused(inf_rows, scheme="absmax"), ValueError, "x: row 1"),
    ("quantize int input", lambda: pk.quantize(i8), TypeError, "x"),
    ("quantize 3-D", lambda: pk.quantize(hidden), ValueError, "x"),
    ("quantize zero width", lambda: pk.quantize(np.ones((2, 0), np.float32)), ValueError, "x"),
    ("quantize unknown kind", lambda: pk.quantize(f32, "int4"), ValueError, "quantization"),
    ("quantize unknown scheme", lambda: pk.quantize(f32, scheme="minmax"), ValueError, "scheme"),
    ("quantize dimensions 0", lambda: pk.quantize(f32, dimensions=0), ValueError, "dimensions"),
    ("quantize dimensions too wide", lambda: pk.quantize(f32, dimensions=17), ValueError, "dimensions"),
    ("quantize dimensions float", lambda: pk.quantize(f32, dimensions=8.0), TypeError, "dimensions"),
    ("quantize wrong bitorder", lambda: pk.quantize(f32, "ubinary", bitorder="msb"), ValueError, "bitorder"),
    ("quantize threads float", lambda: pk.quantize(f32, threads=2.0), TypeError, "threads"),
    ("quantize None", lambda: pk.quantize(None), TypeError, "x"),
    # pack_bits / unpack_bits
    ("pack_bits int32", lambda: pk.pack_bits(np.ones((2, 8), np.int32)), TypeError, "x"),
    ("pack_bits NaN", lambda: pk.pack_bits(nan_rows), ValueError, "x: row 1"),
    ("pack_bits bitorder", lambda: pk.pack_bits(f32, bitorder=1), ValueError, "bitorder"),
    ("unpack_bits dim mismatch", lambda: pk.unpack_bits(u8, 17), ValueError, "dim"),
    ("unpack_bits int8 input", lambda: pk.unpack_bits(u8.view(np.int8), 16), TypeError, "packed"),
    ("unpack_bits dim str", lambda: pk.unpack_bits(u8, "16"), TypeError, "dim"),
    # search
    ("cosine -128 in a", lambda: pk.cosine(with_minus128, np.ones((2, 3), np.int8)), ValueError, "-128"),
    ("cosine -128 in b", lambda: pk.cosine(np.ones((1, 3), np.int8), with_minus128), ValueError, "-128"),
    ("cosine float input", lambda: pk.cosine(f32, i8), TypeError, "a"),
    ("cosine width mismatch", lambda: pk.cosine(i8, np.ones((3, 15), np.int8)), ValueError, "b"),
    ("cosine norms length", lambda: pk.cosine(i8, i8, norms=np.ones(2, np.float32)), ValueError, "norms"),
    ("hamming int8 codes", lambda: pk.hamming(i8, i8), TypeError, "a"),
    ("hamming width mismatch", lambda: pk.hamming(u8, np.ones((3, 3), np.uint8)), ValueError, "b"),
    ("norms uint8", lambda: pk.norms(u8), TypeError, "x"),
    ("topk k=0", lambda: pk.topk(i8, i8, 0), ValueError, "k"),
    ("topk k=-3", lambda: pk.topk(i8, i8, -3), ValueError, "k"),
    ("topk k float", lambda: pk.topk(i8, i8, 2.0), TypeError, "k"),
    ("topk unknown metric", lambda: pk.topk(i8, i8, 1, metric="l2"), ValueError, "metric"),
    ("topk empty database", lambda: pk.topk(i8, np.ones((0, 16), np.int8), 1), ValueError, "database"),
    ("topk width mismatch", lambda: pk.topk(i8, np.ones((3, 8), np.int8), 1), ValueError, "database"),
    ("topk huge dim", lambda: pk.topk(np.ones((1, 65537), np.int8), np.ones((1, 65537), np.int8), 1), ValueError, "65536"),
    ("topk candidates out of range", lambda: pk.topk(i8, i8, 1, candidates=np.full((3, 2), 7)), ValueError, "candidates"),
    ("topk candidates shape", lambda: pk.topk(i8, i8, 1, candidates=np.zeros((2, 2), np.int64)), ValueError, "candidates"),
    ("topk candidates float", lambda: pk.topk(i8, i8, 1, candidates=np.zeros((3, 2))), TypeError, "candidates"),
    ("topk hamming with norms", lambda: pk.topk(u8, u8, 1, metric="hamming", database_norms=np.ones(3, np.float32)), ValueError, "database_norms"),
    ("topk -128 query", lambda: pk.topk(with_minus128, np.ones((2, 3), np.int8), 1), ValueError, "-128"),
    # runtime
    ("set_isa unknown", lambda: pk.set_isa("sse9"), ValueError, "name"),
    ("set_num_threads 0", lambda: pk.set_num_threads(0), ValueError, "n"),
]


@pytest.mark.parametrize("case,call,exc,needle", KERNEL_CASES, ids=[c[0] for c in KERNEL_CASES])
def test_kernel_bad_input(case, call, exc, needle):
    with pytest.raises(exc) as info:
        call()
    assert needle in str(info.value), f"{case}: message does not name {needle!r}: {info.value}"


def test_catalogue_is_large_and_distinct():
    names = [c[0] for c in KERNEL_CASES] + [c[0] for c in INDEX_CASES] + [c[0] for c in EMBEDDER_CASES]
    assert len(names) == len(set(names))
    assert len(names) >= 40


# ----------------------------------------------------------------- index

def small_index():
    index = Index(16)
    index.add(np.random.default_rng(0).standard_normal((5, 16)).astype(np.float32), ids=[1, 2, 3, 4, 5])
    return index


INDEX_CASES = [
    ("Index dim 0", lambda ix: Index(0), ValueError, "dim"),
    ("Index unknown metric", lambda ix: Index(8, metric="l1"), ValueError, "metric"),
    ("Index unknown scheme", lambda ix: Index(8, scheme="x"), ValueError, "scheme"),
    ("Index.add wrong width", lambda ix: ix.add(np.ones((2, 15), np.float32)), ValueError, "vectors"),
    ("Index.add duplicate id", lambda ix: ix.add(np.ones((1, 16), np.float32), ids=[3]), ValueError, "ids"),
    ("Index.add repeated ids in batch", lambda ix: ix.add(np.ones((2, 16), np.float32), ids=[9, 9]), ValueError, "ids"),
    ("Index.add NaN", lambda ix: ix.add(np.full((1, 16), np.nan, np.float32), ids=[10]), ValueError, "vectors"),
    ("Index.add ids length", lambda ix: ix.add(np.ones((2, 16), np.float32), ids=[11]), ValueError, "ids"),
    ("Index.search k=0", lambda ix: ix.search(np.ones((1, 16), np.float32), k=0), ValueError, "k"),
    ("Index.search bad mode", lambda ix: ix.search(np.ones((1, 16), np.float32), mode="fast"), ValueError, "mode"),
    ("Index.search wrong width", lambda ix: ix.search(np.ones((1, 8), np.float32)), ValueError, "queries"),
    ("Index.search oversample 0", lambda ix: ix.search(np.ones((1, 16), np.float32), mode="two_stage", oversample=0), ValueError, "oversample"),
]


@pytest.mark.parametrize("case,call,exc,needle", INDEX_CASES, ids=[c[0] for c in INDEX_CASES])
def test_index_bad_input(case, call, exc, needle):
    with pytest.raises(exc) as info:
        call(small_index())
    assert needle in str(info.value), f"{case}: message does not name {needle!r}: {info.value}"


@pytest.mark.parametrize(
    "damage,needle",
    [
        ("missing_dir", "index"),
        ("foreign_dir", "manifest"),
        ("truncated_codes", "codes"),
        ("wrong_version", "version"),  # the version check refuses it
        ("manifest_not_json", "manifest"),
    ],
)
def test_index_load_refuses_damage(tmp_path, damage, needle):
    path = tmp_path / "ix"
    small_index().save(path)
    if damage == "missing_dir":
        path = tmp_path / "nothing-here"
    elif damage == "foreign_dir":
        shutil.rmtree(path)
        path.mkdir()
        (path / "notes.txt").write_text("not an index")
    elif damage == "truncated_codes":
        codes = next(p for p in path.iterdir() if p.name.endswith(".codes.i8"))
        os.truncate(codes, codes.stat().st_size - 1)
    elif damage == "wrong_version":
        manifest = json.loads((path / "manifest.json").read_text())
        manifest["version"] = 999
        (path / "manifest.json").write_text(json.dumps(manifest))
    elif damage == "manifest_not_json":
        (path / "manifest.json").write_text("{not json")
    with pytest.raises((ValueError, FileNotFoundError)) as info:
        Index.load(path, mmap=False)
    assert needle in str(info.value).lower(), str(info.value)


# -------------------------------------------------------------- embedder

@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    import tiny_models as tm

    root, _ = tm.make_model_dir(tmp_path_factory.mktemp("bad-model"), layout="plain", style="bert")
    return root


def _copy_without(root, tmp_path, name):
    dst = tmp_path / "model"
    shutil.copytree(root, dst)
    for p in dst.rglob(name):
        p.unlink()
    return dst


def _corrupt(root, tmp_path, name, data=b"garbage"):
    dst = tmp_path / "model"
    shutil.copytree(root, dst)
    for p in dst.rglob(name):
        p.write_bytes(data)
    return dst


EMBEDDER_CASES = [
    ("Embedder missing dir", lambda root, tmp: pk.Embedder(tmp / "absent"), FileNotFoundError, "model"),
    ("Embedder model not a path", lambda root, tmp: pk.Embedder(42), TypeError, "model"),
    ("Embedder no tokenizer", lambda root, tmp: pk.Embedder(_copy_without(root, tmp, "tokenizer.json")), FileNotFoundError, "tokenizer"),
    ("Embedder no onnx", lambda root, tmp: pk.Embedder(_copy_without(root, tmp, "model.onnx")), FileNotFoundError, "onnx"),
    ("Embedder corrupt onnx", lambda root, tmp: pk.Embedder(_corrupt(root, tmp, "model.onnx")), ValueError, "model"),
    ("Embedder corrupt tokenizer", lambda root, tmp: pk.Embedder(_corrupt(root, tmp, "tokenizer.json", b"{")), ValueError, "model"),
    ("encode empty list", lambda root, tmp: pk.Embedder(root).encode([]), ValueError, "texts"),
    ("encode non-string item", lambda root, tmp: pk.Embedder(root).encode(["a", 3]), TypeError, "texts"),
    ("encode unknown quantization", lambda root, tmp: pk.Embedder(root).encode(["a"], quantization="int4"), ValueError, "quantization"),
    ("encode dimensions too wide", lambda root, tmp: pk.Embedder(root).encode(["a"], dimensions=10_000), ValueError, "dimensions"),
    ("Embedder bad scheme", lambda root, tmp: pk.Embedder(root, scheme="minmax"), ValueError, "scheme"),
    ("encode_contextual empty document", lambda root, tmp: pk.Embedder(root).encode_contextual([[]]), ValueError, "documents"),
]


@pytest.mark.parametrize("case,call,exc,needle", EMBEDDER_CASES, ids=[c[0] for c in EMBEDDER_CASES])
def test_embedder_bad_input(case, call, exc, needle, model_dir, tmp_path):
    with pytest.raises(exc) as info:
        call(model_dir, tmp_path)
    assert needle in str(info.value).lower() or needle in str(info.value), f"{case}: {info.value}"
