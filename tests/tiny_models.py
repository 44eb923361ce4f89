"""Tiny ONNX encoders and tokenizers in Hugging Face layout, built in a
temporary directory (no downloads), with the input/output contract of the
real models, plus a numpy reference of the math they compute.

The encoder: with e = E[input_ids] (+ T[token_type_ids]) (+ P[position_ids])
and m the attention mask,

    last_hidden_state[b, t] = e[b, t] + 0.5 * mean of e[b, s] over m[b, s] != 0

so each token's state depends on the other real tokens of its own sequence
(as in a transformer: batching or late chunking that mixed sequences up, or
a mask fed wrong, changes the result) but not on padding.

The "pplx" layout adds what the pplx-embed ONNX export computes in its graph:
pooler_output = masked mean of last_hidden_state, pooler_output_int8 =
round(127 * tanh(pooler_output)) in float32, pooler_output_binary =
where(pooler_output >= 0, 1, -1).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from tokenizers import Tokenizer, models, pre_tokenizers, processors

WORDS = [f"w{i}" for i in range(40)]
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "<|endoftext|>"]
VOCAB = {tok: i for i, tok in enumerate(SPECIAL + WORDS)}


def make_tokenizer(style: str = "bert") -> Tokenizer:
    """A WordLevel tokenizer over WORDS split on whitespace. "bert" wraps each
    text as [CLS] text [SEP] (type ids 0); "qwen" adds no special tokens (like
    Qwen3, whose separator for chunks is <|endoftext|>)."""
    tok = Tokenizer(models.WordLevel(VOCAB, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.add_special_tokens(SPECIAL)
    if style == "bert":
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
            special_tokens=[("[CLS]", VOCAB["[CLS]"]), ("[SEP]", VOCAB["[SEP]"])],
        )
    elif style != "qwen":
        raise ValueError(style)
    # Like the default model's tokenizer.json: padding and truncation baked
    # in, which the embedder must override.
    tok.enable_padding(pad_id=0, pad_token="[PAD]", length=8)
    tok.enable_truncation(8)
    return tok


def reference_ids(text: str, style: str) -> list:
    """Token ids of one text, computed without the tokenizers library."""
    ids = [VOCAB.get(w, VOCAB["[UNK]"]) for w in text.split()]
    return [VOCAB["[CLS]"], *ids, VOCAB["[SEP]"]] if style == "bert" else ids


class TinyWeights:
    def __init__(self, hidden: int, seed: int = 0, max_pos: int = 512):
        rng = np.random.default_rng(seed)
        # Scale near 1 so that 127 * tanh(x) spreads over the int8 range.
        self.E = rng.normal(0, 0.8, (len(VOCAB), hidden)).astype(np.float32)
        self.T = rng.normal(0, 0.3, (2, hidden)).astype(np.float32)
        self.P = rng.normal(0, 0.1, (max_pos, hidden)).astype(np.float32)

    def hidden_states(self, ids, token_types=False, positions=False) -> np.ndarray:
        """float64 last_hidden_state [S, H] of one unpadded sequence."""
        ids = np.asarray(ids, dtype=np.int64)
        e = self.E[ids].astype(np.float64)
        if token_types:
            e = e + self.T[0]
        if positions:
            e = e + self.P[: len(ids)]
        return e + 0.5 * e.mean(axis=0) if len(ids) else e


def _const(name, value, dtype=np.float32):
    return numpy_helper.from_array(np.asarray(value, dtype=dtype), name)


def make_model(path: Path, weights: TinyWeights, *, layout: str = "plain", token_types: bool = False,
               positions: bool = False, id_dtype=TensorProto.INT64, output_name: str = "last_hidden_state",
               busy_matmuls: int = 0):
    """Writes an ONNX encoder to path. layout "plain" outputs only
    `output_name`; "pplx" adds pooler_output, pooler_output_int8 and
    pooler_output_binary computed in the graph. busy_matmuls: each call
    also runs that many chained 1024 x 1024 float MatMuls (2 GFLOP each;
    seeded from the input, so nothing folds them away) and adds 0 x their
    result: a slow model with the same outputs."""
    H = weights.E.shape[1]
    inits = [_const("E", weights.E), _const("half", 0.5), _const("one", 1.0), _const("ax1", [1], np.int64),
             _const("ax2", [2], np.int64), _const("c127", 127.0), _const("zero", 0.0),
             _const("pos1", 1.0), _const("neg1", -1.0)]
    inputs = [helper.make_tensor_value_info("input_ids", id_dtype, ["batch", "sequence"]),
              helper.make_tensor_value_info("attention_mask", id_dtype, ["batch", "sequence"])]
    nodes = [helper.make_node("Gather", ["E", "input_ids"], ["e0"])]
    e = "e0"
    if token_types:
        inits.append(_const("T", weights.T))
        inputs.append(helper.make_tensor_value_info("token_type_ids", id_dtype, ["batch", "sequence"]))
        nodes += [helper.make_node("Gather", ["T", "token_type_ids"], ["te"]),
                  helper.make_node("Add", [e, "te"], ["e1"])]
        e = "e1"
    if positions:
        inits.append(_const("P", weights.P))
        inputs.append(helper.make_tensor_value_info("position_ids", id_dtype, ["batch", "sequence"]))
        nodes += [helper.make_node("Gather", ["P", "position_ids"], ["pe"]),
                  helper.make_node("Add", [e, "pe"], ["e2"])]
        e = "e2"

    def masked_mean(x, out, keepdims):
        return [
            helper.make_node("Mul", [x, "m3"], [f"{out}_xm"]),
            helper.make_node("ReduceSum", [f"{out}_xm", "ax1"], [f"{out}_s"], keepdims=keepdims),
            helper.make_node("ReduceSum", ["m3", "ax1"], [f"{out}_n0"], keepdims=keepdims),
            helper.make_node("Max", [f"{out}_n0", "one"], [f"{out}_n"]),
            helper.make_node("Div", [f"{out}_s", f"{out}_n"], [out]),
        ]

    nodes += [helper.make_node("Cast", ["attention_mask"], ["mf"], to=TensorProto.FLOAT),
              helper.make_node("Unsqueeze", ["mf", "ax2"], ["m3"])]
    nodes += masked_mean(e, "ctx", 1)
    nodes += [helper.make_node("Mul", ["ctx", "half"], ["ctx_h"])]
    if busy_matmuls:
        rng = np.random.default_rng(1)
        inits += [_const("busy_w", rng.normal(0, 0.03, (1024, 1024))), _const("busy_zero", 0.0)]
        nodes += [helper.make_node("ReduceMean", [e], ["busy_seed"], keepdims=0),
                  helper.make_node("Add", ["busy_w", "busy_seed"], ["busy_0"])]
        for i in range(busy_matmuls):  # tanh keeps the values finite, so 0 x them is 0
            nodes += [helper.make_node("MatMul", [f"busy_{i}", "busy_w"], [f"busy_mm{i}"]),
                      helper.make_node("Tanh", [f"busy_mm{i}"], [f"busy_{i + 1}"])]
        nodes += [helper.make_node("ReduceSum", [f"busy_{busy_matmuls}"], ["busy_sum"], keepdims=0),
                  helper.make_node("Mul", ["busy_sum", "busy_zero"], ["busy_nil"]),
                  helper.make_node("Add", ["ctx_h", "busy_nil"], ["ctx_hb"])]
        nodes += [helper.make_node("Add", [e, "ctx_hb"], [output_name])]
    else:
        nodes += [helper.make_node("Add", [e, "ctx_h"], [output_name])]
    outputs = [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, ["batch", "sequence", H])]
    if layout == "pplx":
        nodes += masked_mean(output_name, "pooler_output", 0)
        nodes += [
            helper.make_node("Tanh", ["pooler_output"], ["th"]),
            helper.make_node("Mul", ["th", "c127"], ["th127"]),
            helper.make_node("Round", ["th127"], ["rounded"]),  # half to even, in float32
            helper.make_node("Cast", ["rounded"], ["pooler_output_int8"], to=TensorProto.INT8),
            helper.make_node("GreaterOrEqual", ["pooler_output", "zero"], ["nonneg"]),
            helper.make_node("Where", ["nonneg", "pos1", "neg1"], ["sign"]),
            helper.make_node("Cast", ["sign"], ["pooler_output_binary"], to=TensorProto.INT8),
        ]
        outputs += [
            helper.make_tensor_value_info("pooler_output", TensorProto.FLOAT, ["batch", H]),
            helper.make_tensor_value_info("pooler_output_int8", TensorProto.INT8, ["batch", H]),
            helper.make_tensor_value_info("pooler_output_binary", TensorProto.INT8, ["batch", H]),
        ]
    elif layout != "plain":
        raise ValueError(layout)
    graph = helper.make_graph(nodes, "tiny_encoder", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # readable by older onnxruntime releases too
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))


def make_model_dir(root: Path, *, hidden: int = 24, layout: str = "plain", style: str = "bert",
                   token_types: bool = True, positions: bool = False, onnx_subdir: bool = True,
                   config: dict | None = None, seed: int = 0, max_pos: int = 512,
                   **model_kwargs) -> tuple[Path, TinyWeights]:
    """A Hugging Face layout directory: tokenizer.json, onnx/model.onnx (or
    model.onnx), config.json. max_pos: rows of the position table (with
    positions=True, longer sequences fail inside ONNX Runtime). Returns
    (directory, weights)."""
    root.mkdir(parents=True, exist_ok=True)
    weights = TinyWeights(hidden, seed, max_pos)
    make_tokenizer(style).save(str(root / "tokenizer.json"))
    onnx_path = root / "onnx" / "model.onnx" if onnx_subdir else root / "model.onnx"
    make_model(onnx_path, weights, layout=layout, token_types=token_types, positions=positions, **model_kwargs)
    cfg = {"model_type": "tiny", "max_position_embeddings": 512} if config is None else config
    (root / "config.json").write_text(json.dumps(cfg))
    return root, weights


def random_texts(n: int, seed: int = 1, max_words: int = 30) -> list:
    """Texts of 0..max_words words in random order of length, with a few
    out-of-vocabulary words (-> [UNK])."""
    rng = np.random.default_rng(seed)
    texts = []
    for _ in range(n):
        k = int(rng.integers(1, max_words + 1))
        words = [WORDS[i] for i in rng.integers(0, len(WORDS), k)]
        if rng.random() < 0.2:
            words[int(rng.integers(0, k))] = "oov"
        texts.append(" ".join(words))
    return texts


SHORT_POSITIONS = 160


def make_short_position_model(root: Path, hidden: int = 32) -> tuple[Path, TinyWeights]:
    """A pplx-layout model (qwen-style tokenizer, position ids) whose
    position table has SHORT_POSITIONS rows while its tokenizer_config.json
    allows 1024 tokens: a longer sequence fails inside ONNX Runtime unless
    the embedder truncates at the smaller limit."""
    root, weights = make_model_dir(root, hidden=hidden, layout="pplx", style="qwen", token_types=False,
                                   positions=True, max_pos=SHORT_POSITIONS,
                                   config={"model_type": "tiny", "max_position_embeddings": SHORT_POSITIONS})
    (root / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 1024,
                                                            "sep_token": "<|endoftext|>"}))
    return root, weights
