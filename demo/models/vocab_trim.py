"""A draft with a trimmed vocabulary head: the head computes logits for the tokens that text actually uses and
the rest get a very low constant, so greedy drafting never proposes them (the FR-Spec idea, arXiv 2502.14856).

Qwen2.5's head has 151,936 rows, a quarter of the bytes a 0.5B draft reads per token. The logits keep their
full width, so OpenVINO GenAI sees an ordinary draft; the target still verifies every token, so the output
stays the target's greedy choice whatever the head keeps.

python -m demo.vocab_trim [--preset P | --target T --draft NAME=SRC] [--trim DRAFT] [--top N] [--first M]
                          [--corpus PATH ...]
"""
from __future__ import annotations

import collections
import functools
import json
import shutil
import sys
import sysconfig
from pathlib import Path

import numpy as np

from demo.models import cache

RECIPE = {"top": 32768, "first": 16384, "corpus": "stdlib", "chars": 20_000_000}  # the preset's trimmed draft
FILL = -1e9  # logit of a dropped token: far below any real logit, finite so any softmax stays defined
TEXT_SUFFIXES = {".py", ".md", ".txt", ".rst", ".jsonl", ".json"}


def log(msg: str) -> None:
    print(f"[vocab-trim] {msg}", file=sys.stderr, flush=True)


def corpus_files(paths: list[Path]) -> list[Path]:
    files = []
    for p in paths:
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.suffix in TEXT_SUFFIXES and f.is_file())
        elif p.is_file():
            files.append(p)
    return files


def token_counts(tokenizer, files: list[Path], max_chars: int) -> collections.Counter:
    """Token frequencies over the corpus files, in order, until max_chars characters were read."""
    counts, size = collections.Counter(), 0
    for f in files:
        try:
            text = f.read_text(errors="ignore")
        except OSError:
            continue
        counts.update(tokenizer(text[: max_chars - size], add_special_tokens=False)["input_ids"])
        size += min(len(text), max_chars - size)
        if size >= max_chars:
            break
    return counts


def keep_ids(tokenizer, vocab_size: int, counts: collections.Counter, top: int, first: int) -> np.ndarray:
    """The rows the head keeps: the `top` most frequent corpus tokens, the `first` lowest ids (byte-level BPE
    ranks its merges by frequency, so low ids are common pieces) and every special or added token."""
    keep = {i for i, _ in counts.most_common(top)} | set(range(min(first, vocab_size)))
    keep |= {i for i in tokenizer.all_special_ids if i is not None}
    keep |= {i for i in tokenizer.get_added_vocab().values()}
    return np.array(sorted(i for i in keep if i < vocab_size), dtype=np.int64)


def stdlib_dir() -> Path:
    """This Python's standard library sources (PSF licence): offline text for trimming and healing."""
    return Path(sysconfig.get_paths()["stdlib"])


def stdlib_corpus() -> list[Path]:
    return corpus_files([stdlib_dir()])


def corpus_keep(tokenizer_dir: Path, files: list[Path], chars: int, top: int, first: int) -> tuple[np.ndarray, int]:
    """The kept rows for a corpus, and how many distinct tokens the corpus had."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    counts = token_counts(tok, files, chars)
    return keep_ids(tok, len(tok), counts, top, first), len(counts)


@functools.lru_cache(maxsize=4)  # a preset trims several drafts with one tokenizer: count the corpus once
def default_keep(tokenizer_dir: Path) -> np.ndarray:
    """The rows RECIPE keeps, counted on this Python's standard library sources."""
    keep = corpus_keep(tokenizer_dir, stdlib_corpus(), RECIPE["chars"], RECIPE["top"], RECIPE["first"])[0]
    keep.flags.writeable = False  # shared by every caller of the cache
    return keep


def _rows_of_constant(const, keep: np.ndarray, vocab: int):
    """A Constant with its first axis (the vocabulary) reduced to `keep`; 4-bit data is unpacked and repacked."""
    import openvino as ov

    et = const.get_element_type()
    shape = list(const.get_output_shape(0))
    data = np.asarray(const.get_data())
    if et.bitwidth == 4:
        packed = data.view(np.uint8).reshape(-1)
        nibbles = np.empty(packed.size * 2, dtype=np.uint8)
        nibbles[0::2], nibbles[1::2] = packed & 0x0F, packed >> 4  # low nibble first
        rows = nibbles[: int(np.prod(shape))].reshape(vocab, -1)[keep].reshape(-1)
        if rows.size % 2:
            rows = np.append(rows, np.uint8(0))  # a plain 0 would make the array int64
        tensor = ov.Tensor(et, ov.Shape([len(keep)] + shape[1:]))
        tensor.data[:] = (rows[0::2] | (rows[1::2] << 4)).view(tensor.data.dtype).reshape(tensor.data.shape)
        return ov.op.Constant(tensor)
    return ov.op.Constant(np.ascontiguousarray(data.reshape([vocab] + shape[1:])[keep]))


def _clone(node, inputs):
    """A copy of one weight-decompression op (the ops nncf's compressed weights are built from) on new inputs."""
    import openvino.opset13 as ops

    kind = node.get_type_name()
    if kind == "Convert":
        new = ops.convert(inputs[0], node.get_output_element_type(0))
    elif kind in ("Multiply", "Subtract", "Add"):
        new = getattr(ops, kind.lower())(*inputs)
    elif kind == "Reshape":
        new = ops.reshape(inputs[0], inputs[1], node.get_attributes()["special_zero"])
    elif kind == "Transpose":
        new = ops.transpose(*inputs)
    else:
        raise ValueError(f"unexpected {kind} between the head's weights and its MatMul")
    for key, value in node.get_rt_info().items():  # keeps marks such as "decompression" for the plugin
        try:
            new.get_rt_info()[key] = value
        except (TypeError, RuntimeError):
            pass
    return new


def _trimmed(output, keep: np.ndarray, vocab: int):
    """A copy of the weight subgraph feeding the head, with every vocabulary-sized constant reduced to `keep`
    (a copy, because a tied embedding may read the same weights)."""
    import openvino as ov

    node = output.get_node()
    if node.get_type_name() != "Constant":
        return _clone(node, [_trimmed(i, keep, vocab) for i in node.input_values()]).output(0)
    shape = list(node.get_output_shape(0))
    if shape and shape[0] == vocab:
        return _rows_of_constant(node, keep, vocab).output(0)
    if node.get_element_type().is_integral() and len(shape) == 1 and vocab in np.asarray(node.get_data()):
        values = np.asarray(node.get_data()).copy()  # a Reshape target such as [vocab, hidden]
        values[values == vocab] = len(keep)
        return ov.op.Constant(values).output(0)
    return output


def trim_head(model, keep: np.ndarray):
    """Rewrite the model's logits MatMul (hidden x head^T) to the kept rows, scattered back to full width."""
    import openvino.opset13 as ops

    result = next(o for o in model.outputs if "logits" in o.get_names()).get_node()
    matmul = result.input_value(0).get_node()
    attrs = matmul.get_attributes()
    if matmul.get_type_name() != "MatMul" or attrs.get("transpose_a") or not attrs.get("transpose_b"):
        raise ValueError(f"expected the logits to come from MatMul(hidden, head^T), found {matmul.get_type_name()}")
    vocab = matmul.get_output_partial_shape(0)[-1].get_length()
    if len(keep) >= vocab or keep.max() >= vocab:
        raise ValueError(f"keep {len(keep)} of {vocab} rows: nothing to trim, or ids out of range")
    hidden = matmul.input_value(0)
    sub = ops.matmul(hidden, _trimmed(matmul.input_value(1), keep, vocab), False, True)
    lead = ops.gather(ops.shape_of(sub), ops.constant(np.array([0, 1], dtype=np.int64)), ops.constant(np.int64(0)))
    full_shape = ops.concat([lead, ops.constant(np.array([vocab], dtype=np.int64))], 0)
    fill = ops.broadcast(ops.constant(np.float32(FILL)), full_shape)
    logits = ops.scatter_update(fill, ops.constant(keep), sub, ops.constant(np.int64(2)))
    logits.output(0).get_tensor().set_names(set(result.input_value(0).get_names()))
    result.input(0).replace_source_output(logits.output(0))
    model.validate_nodes_and_infer_types()
    return model


def trim_draft(src: Path, dest: Path, keep: np.ndarray, manifest: dict | None = None) -> Path:
    """Copy an OpenVINO draft folder with its head trimmed; tokenizer and configs stay byte-identical.
    `manifest` replaces the copied folder's cache manifest."""
    import openvino as ov

    tmp = dest.with_name(f".tmp-{dest.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp, ignore=shutil.ignore_patterns("openvino_model.xml", "openvino_model.bin"))
    model = trim_head(ov.Core().read_model(src / "openvino_model.xml"), keep)
    ov.save_model(model, tmp / "openvino_model.xml", compress_to_fp16=False)
    (tmp / "vocab_trim.json").write_text(json.dumps({"source": str(src), "kept": len(keep)}))
    if manifest is not None:
        (tmp / cache.MANIFEST).write_text(json.dumps(manifest, indent=1))
    cache.replace_atomically(tmp, dest)
    return dest
