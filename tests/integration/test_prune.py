"""Depth pruning on tiny models: distances, the chosen block, the cut, healing and export as a draft."""
from __future__ import annotations

import shutil

import pytest

import tiny
from demo.catalog import Prepared
from demo.models import cache, convert
from demo.engine import Engine, Request
from demo.models.prune import angular
from demo.models.prune.cli import export
from demo.models.prune.cut import cut_checkpoint, cut_layers
from demo.models.prune.heal import encode_pairs, evaluate, heal, step_loss

PROMPTS = ["def add(a, b):", "Explain recursion.", "SELECT * FROM users", "Write a haiku about the sea."]


@pytest.fixture(scope="module")
def model_dir(work, tokenizer_dir):
    return tiny.build_tiny(work / "prune-src", tokenizer_dir, "qwen2", layers=6, seed=5)


@pytest.fixture(scope="module")
def loaded(model_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return (AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32),
            AutoTokenizer.from_pretrained(model_dir))


def test_distances_lie_in_unit_interval_and_skip_the_last_layer(loaded):
    model, tok = loaded
    states = angular.last_token_states(model, tok, PROMPTS)
    assert states.shape[:2] == (6, len(PROMPTS))
    table = angular.distance_table(states)
    assert sorted(table) == [1, 2, 3, 4]
    for n, row in table.items():
        assert len(row) == 6 - n  # starts 0..L-1-n: no block ends at the final layer
        assert all(0.0 <= d <= 1.0 for d in row)


def test_argmin_block():
    table = {2: [0.4, 0.1, 0.3, 0.2]}
    assert angular.best_block(table, 2) == (1, 0.1)
    assert angular.deepest_block(24, 6) == 17


def test_angular_distance_values():
    import torch

    a = torch.tensor([[1.0, 0.0]])
    assert float(angular.angular_distance(a, torch.tensor([[0.0, 1.0]]))) == pytest.approx(0.5)
    assert float(angular.angular_distance(a, torch.tensor([[-2.0, 0.0]]))) == pytest.approx(1.0)
    assert float(angular.angular_distance(a, torch.tensor([[3.0, 0.0]]))) == pytest.approx(0.0, abs=1e-6)


def test_cut_equals_original_when_removed_layers_are_identities(model_dir, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        for i in (2, 3):  # zero the residual branches: the layers add nothing
            model.model.layers[i].self_attn.o_proj.weight.zero_()
            model.model.layers[i].mlp.down_proj.weight.zero_()
    model.save_pretrained(tmp_path / "ident")
    ids = torch.tensor([[151643, 785, 1156, 88, 42]])
    with torch.no_grad():
        want = model(ids).logits
    cut_checkpoint(tmp_path / "ident", tmp_path / "cut", start=2, n=2)
    cut = AutoModelForCausalLM.from_pretrained(tmp_path / "cut", dtype=torch.float32).eval()
    assert cut.config.num_hidden_layers == 4 and len(cut.model.layers) == 4
    assert [layer.self_attn.layer_idx for layer in cut.model.layers] == [0, 1, 2, 3]
    with torch.no_grad():
        got = cut(ids).logits
        gen = cut.generate(ids, max_new_tokens=5, do_sample=False)  # the KV cache works after renumbering
    assert torch.allclose(got, want, atol=1e-5)
    assert gen.shape[1] == ids.shape[1] + 5


def test_cut_refuses_the_last_layer(loaded):
    import copy

    with pytest.raises(ValueError, match="the last layer stays"):
        cut_layers(copy.deepcopy(loaded[0]), 4, 2)


def test_healing_lowers_the_loss_and_exports_a_working_draft(model_dir, tmp_path, qwen2_pair, tokenizer_dir):
    from transformers import AutoTokenizer

    cut = cut_checkpoint(model_dir, tmp_path / "cut", start=3, n=2)
    tok = AutoTokenizer.from_pretrained(model_dir)
    pairs = [{"prompt": p, "response": "The answer is forty-two, as always."} for p in PROMPTS]
    examples = encode_pairs(tok, pairs)
    stats = heal(cut, tmp_path / "healed", examples, steps=12, lr=1e-3, checkpoint_every=5, device="cpu",
                 log=lambda m: None, eval_every=4)
    assert stats["loss_after"] < stats["loss_before"]
    # the healing curve: before, every 4 steps, after, with the tokens trained on so far
    curve = stats["curve"]
    assert [p["step"] for p in curve] == [0, 4, 8, 12]
    assert curve[0]["agreement"] == stats["agreement_before"] and curve[-1]["agreement"] == stats["agreement_after"]
    assert curve[0]["tokens"] == 0 and curve[1]["tokens"] == sum(len(examples[i % len(examples)][0]) for i in range(4))
    assert curve[1]["tokens"] < curve[2]["tokens"] < curve[3]["tokens"]
    # export with the tiny pair's shared tokenizer, registered in a preset folder of its own
    preset_dir = tmp_path / "preset"
    shutil.copytree(qwen2_pair.target.parent / "tokenizer", preset_dir / "tokenizer")
    out = export(preset_dir, "tiny-pruned-2l", tmp_path / "healed")
    for name in convert.TOKENIZER_FILES:
        assert (out / name).read_bytes() == (qwen2_pair.target / name).read_bytes()
    assert cache.registered_drafts(preset_dir)["tiny-pruned-2l"] == out
    eng = Engine(Prepared("t", qwen2_pair.target, {"tiny-pruned-2l": out}))
    base = eng.generate(Request("def add(a, b):", max_new_tokens=16))
    spec = eng.generate(Request("def add(a, b):", lane="speculative", max_new_tokens=16, num_assistant_tokens=3))
    assert spec.tokens == base.tokens and spec.drafted > 0


def test_int4_asym_export_has_zero_points_and_drafts_correctly(model_dir, tmp_path, qwen2_pair):
    # the int4 format for healed drafts (issue 13): unsigned 4-bit levels with zero points, not the sym grid
    # whose rounding ties a fine-tune of GGUF-born weights tips
    import openvino as ov

    cut = cut_checkpoint(model_dir, tmp_path / "cut", start=3, n=2)
    preset_dir = tmp_path / "preset"
    shutil.copytree(qwen2_pair.target.parent / "tokenizer", preset_dir / "tokenizer")
    out = export(preset_dir, "tiny-pruned-2l-int4-asym", cut, "int4-asym-all")
    types = {op.get_element_type().get_type_name() for op in ov.Core().read_model(out / "openvino_model.xml").get_ops()
             if op.get_type_name() == "Constant"}
    assert "u4" in types and "i4" not in types
    eng = Engine(Prepared("t", qwen2_pair.target, {"tiny-pruned-2l-int4-asym": out}))
    base = eng.generate(Request("def add(a, b):", max_new_tokens=16))
    spec = eng.generate(Request("def add(a, b):", lane="speculative", max_new_tokens=16, num_assistant_tokens=3))
    assert spec.tokens == base.tokens and spec.drafted > 0


def test_kl_healing_moves_the_cut_model_towards_its_teacher(model_dir, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cut = cut_checkpoint(model_dir, tmp_path / "cut", start=2, n=2)
    tok = AutoTokenizer.from_pretrained(model_dir)
    teacher = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    pairs = []
    for p in PROMPTS:  # the teacher's own greedy answers: agreement with them is what acceptance measures
        ids = tok.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True, return_tensors="pt",
                                      return_dict=True)["input_ids"]
        with torch.no_grad():
            out = teacher.generate(ids, max_new_tokens=12, do_sample=False)
        pairs.append({"prompt": p, "response": tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True)})
    examples = encode_pairs(tok, pairs)

    def kl_to_teacher(model_path):
        model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32).eval()
        with torch.no_grad():
            return sum(step_loss(model, torch.tensor([i]), torch.tensor([l]), teacher, 1.0)[1]["kl"]
                       for i, l in examples) / len(examples)

    stats = heal(cut, tmp_path / "healed", examples, steps=16, lr=1e-3, part="layers", device="cpu",
                 log=lambda m: None, teacher_dir=model_dir, kl_weight=1.0, eval_examples=examples)
    assert kl_to_teacher(tmp_path / "healed") < 0.7 * kl_to_teacher(cut)
    assert stats["agreement_after"] >= stats["agreement_before"] and stats["teacher"] == str(model_dir)
    assert 0.0 <= stats["agreement_before"] <= 1.0
    healed = AutoModelForCausalLM.from_pretrained(tmp_path / "healed", dtype=torch.float32)
    original = AutoModelForCausalLM.from_pretrained(cut, dtype=torch.float32)
    # part="layers" leaves the embedding (tied with the head) as it was
    assert torch.equal(healed.model.embed_tokens.weight, original.model.embed_tokens.weight)
    assert evaluate(healed, examples)["agreement"] == pytest.approx(stats["agreement_after"])


def test_evaluating_during_healing_leaves_the_weights_unchanged(model_dir, tmp_path):
    # the healing curve must not change what the recipe trains: the shipped delta is re-created bit for bit
    import torch
    from safetensors.torch import load_file
    from transformers import AutoTokenizer

    cut = cut_checkpoint(model_dir, tmp_path / "cut", start=1, n=1)
    examples = encode_pairs(AutoTokenizer.from_pretrained(model_dir),
                            [{"prompt": p, "response": "The answer is forty-two."} for p in PROMPTS])
    weights = []
    for every in (0, 1):
        out = tmp_path / f"every-{every}"
        stats = heal(cut, out, examples, steps=3, lr=1e-3, device="cpu", log=lambda m: None, eval_every=every)
        assert len(stats["curve"]) == (2 if every == 0 else 4)
        weights.append(load_file(str(out / "model.safetensors")))
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_heal_resumes_from_checkpoint(model_dir, tmp_path, tokenizer_dir):
    from transformers import AutoTokenizer

    cut = cut_checkpoint(model_dir, tmp_path / "cut", start=1, n=1)
    examples = encode_pairs(AutoTokenizer.from_pretrained(model_dir), [{"prompt": "hi", "response": "hello there"}])

    def interrupt_at_step_5(msg):
        if msg.startswith("step 5/"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        heal(cut, tmp_path / "h", examples, steps=6, checkpoint_every=2, device="cpu", log=interrupt_at_step_5)
    assert (tmp_path / "h" / "checkpoint" / "state.json").exists()
    logs = []
    heal(cut, tmp_path / "h", examples, steps=6, checkpoint_every=2, device="cpu", log=logs.append)
    assert logs[0] == "resuming at step 4" and len([m for m in logs if m.startswith("step")]) == 2
    assert not (tmp_path / "h" / "checkpoint").exists()  # removed once healing finished


def test_pruning_tab_shows_analysis_heal_stats_and_compares_drafts(engine, tmp_path, monkeypatch):
    import json

    import gradio as gr

    from demo.views import pruning as prune_view

    monkeypatch.setenv("SPECDEMO_CACHE", str(tmp_path))
    ws = tmp_path / engine.prepared.preset / "prune" / "tiny-draft"
    (ws / "healed-2l").mkdir(parents=True)
    (ws / "analysis.json").write_text(json.dumps({"layers": 4, "n": 2, "start": 1, "distance": 0.123,
                                                  "variant": "angular", "distances": {"1": [0.1, 0.2, 0.3],
                                                                                      "2": [0.3, 0.123]}}))
    (ws / "healed-2l" / "heal.json").write_text(json.dumps({"agreement_before": 0.5, "agreement_after": 0.625,
                                                            "steps": 3, "teacher": "/cache/prune/tiny-draft/hf",
                                                            "teacher_kind": "draft",
                                                            "curve": [{"step": s, "tokens": 40 * s, "agreement": a}
                                                                      for s, a in ((0, 0.5), (2, 0.6), (3, 0.625))]}))
    (found,) = prune_view.analyses(engine)
    assert found["draft"] == "tiny-draft" and found["heal"]["agreement_after"] == 0.625
    with gr.Blocks() as blocks:
        prune_view.build(engine)
    texts = [b.value for b in blocks.blocks.values() if isinstance(b, gr.Markdown)]
    assert any("removing layers 1–2" in t and "0.123" in t for t in texts)
    assert any("KL towards the uncut draft" in t and "0.500 → 0.625" in t for t in texts)
    curve = next(b for b in blocks.blocks.values() if isinstance(b, gr.Plot) and b.elem_id == "prune-curve-tiny-draft")
    assert "tokens trained on" in json.dumps(curve.value)
    table = prune_view.compare_rows(engine, "def add(a, b):", max_new_tokens=12)
    rows = table.splitlines()
    assert rows[2].startswith("| baseline |") and len(rows) == 3 + len(engine.drafts)
    assert all(row.endswith("| yes |") for row in rows[3:])  # greedy: every draft gives the baseline's tokens
    # a public link's cap: a 50,000-character paste gets a message, not a run
    from demo import limits
    refused = prune_view.compare_rows(engine, "x" * 50_000, limits=limits.PUBLIC)
    assert "50,000 characters" in refused and "4,000" in refused and "|" not in refused


def test_the_shipped_delta_shows_its_block_and_heal_without_a_local_run():
    # a fresh machine has no pruning run in its cache: the tab reads the delta the preset ships
    import json

    from demo import catalog
    from demo.models.prune import delta
    from demo.views import pruning as prune_view

    folders = {d.source.folder for d in catalog.PRESETS["qwen2.5-coder-1.5b"].drafts
               if isinstance(d.source, catalog.DeltaSource)}
    found = prune_view.shipped("qwen2.5-coder-1.5b")
    assert [a["shipped"] for a in found] == sorted(folders)
    for a in found:
        recipe = json.loads((delta.folder_path(a["shipped"]) / delta.RECIPE).read_text())
        assert (a["start"], a["n"]) == (recipe["cut"]["start"], recipe["cut"]["n"])
        assert a["heal"]["agreement_after"] == recipe["heal"]["agreement_after"] and a["heal"]["lora"]["rank"]
        assert len(a["distances"][str(a["n"])]) == a["layers"] - a["n"]  # any start but the last layer


def test_target_texts_are_the_targets_greedy_answers_batched_and_cached(engine, tmp_path):
    """Healing data goes to the target a batch at a time; each answer is what one request alone gets, and a
    second call only asks for the prompts it has not seen."""
    from demo.models.prune.heal import target_texts

    cache_file = tmp_path / "texts.jsonl"
    pairs = target_texts(engine, PROMPTS[:3], 8, cache_file, batch=2)
    assert [p["prompt"] for p in pairs] == PROMPTS[:3]
    for pair in pairs:
        assert pair["response"] == engine.generate(Request(pair["prompt"], max_new_tokens=8)).text
    again = target_texts(engine, PROMPTS, 8, cache_file, batch=2)
    assert again[:3] == pairs and len(cache_file.read_text().splitlines()) == 4
