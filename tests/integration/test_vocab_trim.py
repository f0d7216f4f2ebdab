"""The trimmed-head draft on the tiny pair: exact logits on the kept rows, the fill elsewhere, a working draft."""
from __future__ import annotations

import collections
import json
import shutil

import numpy as np
import pytest

from demo.catalog import Prepared
from demo import vocab_trim as vocab_trim_cli
from demo.models import cache as model_cache, convert, prepare, vocab_trim
from demo.engine import Engine, Request


def logits(model_dir, ids):
    import openvino as ov

    compiled = ov.Core().compile_model(model_dir / "openvino_model.xml", "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    feed = {"input_ids": np.array([ids]), "attention_mask": np.ones((1, len(ids)), np.int64),
            "position_ids": np.arange(len(ids))[None], "beam_idx": np.array([0], np.int32)}
    names = {i.get_any_name() for i in compiled.inputs}
    request = compiled.create_infer_request()
    request.infer({k: v for k, v in feed.items() if k in names})
    return request.get_tensor("logits").data.copy()


@pytest.fixture(scope="module")
def tok(qwen2_pair):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(qwen2_pair.target.parent / "tokenizer")


def test_keep_ids_take_frequent_low_and_special_tokens(tok):
    counts = collections.Counter({70000: 5, 90000: 3, 120000: 1})
    keep = vocab_trim.keep_ids(tok, 151936, counts, top=2, first=100)
    assert set(range(100)) <= set(keep) and {70000, 90000} <= set(keep) and 120000 not in keep
    assert tok.convert_tokens_to_ids("<|im_end|>") in keep and tok.eos_token_id in keep
    assert list(keep) == sorted(set(keep))


def test_trimmed_head_keeps_logits_of_kept_rows_and_fills_the_rest(qwen2_pair, tok, tmp_path):
    src = qwen2_pair.drafts["qwen2-draft"]
    ids = tok("def add(a, b):\n    return a + b")["input_ids"]
    want = logits(src, ids)
    vocab = want.shape[-1]
    # keep the rows the untrimmed draft would pick here, and some others, and drop the runner-up rows
    top = np.argsort(want[0], axis=-1)[:, ::-1]
    picks, runners_up = set(top[:, 0].tolist()), set(top[:, 1].tolist())
    keep = np.array(sorted((set(range(3000)) | picks) - (runners_up - picks)))
    out = vocab_trim.trim_draft(src, tmp_path / "trimmed", keep)
    got = logits(out, ids)
    assert got.shape == want.shape
    np.testing.assert_allclose(got[..., keep], want[..., keep], atol=1e-4)
    dropped = np.setdiff1d(np.arange(vocab), keep)
    assert np.all(got[..., dropped] == np.float32(vocab_trim.FILL))
    assert (got.argmax(-1) == want.argmax(-1)).all()  # the draft's greedy picks were kept
    for name in convert.TOKENIZER_FILES:
        assert (out / name).read_bytes() == (src / name).read_bytes()
    assert json.loads((out / "vocab_trim.json").read_text())["kept"] == len(keep)
    assert (out / "openvino_model.bin").stat().st_size < (src / "openvino_model.bin").stat().st_size


def test_cli_registers_a_trimmed_draft_that_speculates(qwen2_pair, work, tmp_path):
    cache = tmp_path / "cache"  # a copy: the registered draft must not show up in other tests' presets
    shutil.copytree(work / "cache" / qwen2_pair.preset, cache / qwen2_pair.preset)
    corpus = tmp_path / "corpus.py"
    corpus.write_text("def add(a, b):\n    return a + b\n" * 20)
    args = ["--target", str(work / "qwen2-target"), "--draft", f"qwen2-draft={work / 'qwen2-draft'}",
            "--cache-dir", str(cache), "--corpus", str(corpus), "--top", "50", "--first", "20000"]
    assert vocab_trim_cli.main(args + ["--name", "tiny-head"]) == 0
    preset_dir = cache / qwen2_pair.preset
    path = model_cache.registered_drafts(preset_dir)["tiny-head"]
    eng = Engine(Prepared("t", qwen2_pair.target, {"tiny-head": path}))
    base = eng.generate(Request("def add(a, b):", max_new_tokens=16))
    spec = eng.generate(Request("def add(a, b):", lane="speculative", max_new_tokens=16, num_assistant_tokens=3))
    assert spec.tokens == base.tokens and spec.drafted > 0  # the target still decides every token


def test_cli_rejects_bad_input(qwen2_pair, work, tmp_path, capsys):
    base = ["--target", str(work / "qwen2-target"), "--draft", f"qwen2-draft={work / 'qwen2-draft'}",
            "--cache-dir", str(work / "cache")]
    assert vocab_trim_cli.main(base + ["--trim", "nope"]) == 2
    assert "unknown draft 'nope'" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert vocab_trim_cli.main(base + ["--corpus", str(tmp_path / "empty")]) == 2
    assert "no readable text files" in capsys.readouterr().err
    (tmp_path / "text.md").write_text("hello world")
    assert vocab_trim_cli.main(base + ["--corpus", str(tmp_path / "text.md"), "--first", "999999"]) == 2
    assert "nothing to trim" in capsys.readouterr().err


def test_preset_draft_made_by_trimming_another(qwen2_pair, work, tmp_path, monkeypatch):
    from demo.catalog import ModelSpec, Preset

    monkeypatch.setitem(vocab_trim.RECIPE, "chars", 200_000)  # a slice of the standard library is enough here
    cache = tmp_path / "cache"  # a copy of the converted pair, so nothing is converted again
    shutil.copytree(work / "cache" / qwen2_pair.preset, cache / qwen2_pair.preset)
    draft_src = str(work / "qwen2-draft")
    preset = Preset(qwen2_pair.preset, "tiny", ModelSpec("qwen2-target", str(work / "qwen2-target"), "int4"),
                    (ModelSpec("qwen2-draft-trimhead", draft_src, trim_head_of="qwen2-draft"),
                     ModelSpec("qwen2-draft", draft_src, "int8")))
    ready = prepare.prepare(preset, cache)
    assert list(ready.drafts) == ["qwen2-draft-trimhead", "qwen2-draft"]
    trimmed = ready.drafts["qwen2-draft-trimhead"]
    kept = json.loads((trimmed / "vocab_trim.json").read_text())["kept"]
    assert 16384 < kept < 151936
    assert model_cache.read_manifest(trimmed)["kept"] == kept
    stamp = (trimmed / "openvino_model.bin").stat().st_mtime_ns
    assert prepare.prepare(preset, cache).drafts == ready.drafts  # cached: not trimmed again
    assert (trimmed / "openvino_model.bin").stat().st_mtime_ns == stamp
    eng = Engine(ready)
    base = eng.generate(Request("Write a function that adds two numbers", max_new_tokens=16))
    spec = eng.generate(Request("Write a function that adds two numbers", lane="speculative", max_new_tokens=16))
    assert spec.draft == "qwen2-draft-trimhead" and spec.tokens == base.tokens and spec.drafted > 0


@pytest.mark.parametrize("kind", ["u4", "i4"])
def test_four_bit_rows_with_an_odd_count_keep_their_values(kind):
    """Asymmetric int4 heads carry u4 zero points shaped [vocab, groups, 1]: an odd kept count leaves a half byte."""
    import openvino as ov
    import openvino.opset13 as ops

    vocab, groups = 7, 3
    values = np.arange(vocab * groups).reshape(vocab, groups, 1) % 16 - (8 if kind == "i4" else 0)
    et = ov.Type.u4 if kind == "u4" else ov.Type.i4
    src = ops.constant(values.astype(np.int8), dtype=et)
    keep = np.array([0, 3, 6])  # 9 nibbles: odd

    def unpacked(const):
        model = ov.Model([ops.convert(const, ov.Type.f32)], [])
        return ov.Core().compile_model(model, "CPU")({})[0]

    trimmed = vocab_trim._rows_of_constant(src, keep, vocab)
    assert list(trimmed.get_output_shape(0)) == [len(keep), groups, 1]
    assert np.array_equal(unpacked(trimmed), values[keep].astype(np.float32))
