"""A pruned draft shipped as a LoRA delta: trained with heal(lora=...), applied by demo.prepare, drafting in GenAI."""
from __future__ import annotations

import hashlib
import shutil

import pytest

from demo.catalog import DeltaSource, ModelSpec, Prepared, Preset
from demo.engine import Engine, Request
from demo.models import PrepareError, prepare
from demo.models.prune import delta
from demo.models.prune.cut import cut_checkpoint
from demo.models.prune.heal import encode_pairs, heal

PROMPTS = ["def add(a, b):", "Explain recursion.", "SELECT * FROM users"]
NAME = "qwen2-draft-pruned-1l"


@pytest.fixture(scope="module")
def trained(work, qwen2_pair, tmp_path_factory):
    """Two LoRA steps on the tiny draft with layer 1 cut, KL towards the uncut draft; the delta with its recipe."""
    from transformers import AutoTokenizer

    base = work / "qwen2-draft"  # the tiny pair's draft checkpoint (qwen2_pair built it)
    tmp = tmp_path_factory.mktemp("delta")
    cut = cut_checkpoint(base, tmp / "cut", start=1, n=1)
    tok = AutoTokenizer.from_pretrained(base)
    examples = encode_pairs(tok, [{"prompt": p, "response": "The answer is forty-two."} for p in PROMPTS])
    lora = {"rank": 4, "alpha": 8, "targets": delta.TARGETS}
    stats = heal(cut, tmp / "healed", examples, steps=2, lr=1e-2, device="cpu", log=lambda m: None,
                 teacher_dir=base, kl_weight=0.9, lora=lora)
    recipe = delta.write_recipe(tmp / "healed" / "delta", name=NAME, base={"draft": "qwen2-draft", "source": str(base)},
                                cut={"start": 1, "n": 1}, lora=stats["lora"], command="(the test's heal call)",
                                heal=stats)
    return {"base": base, "cut": cut, "healed": tmp / "healed", "folder": tmp / "healed" / "delta",
            "stats": stats, "recipe": recipe}


def test_the_adapter_is_small_and_its_recipe_has_its_sha256(trained):
    from safetensors.torch import load_file

    adapter = trained["folder"] / delta.ADAPTER
    model_bytes = (trained["cut"] / "model.safetensors").stat().st_size
    assert adapter.stat().st_size < 0.01 * model_bytes
    recipe = delta.load_recipe(trained["folder"])
    assert recipe["adapter_sha256"] == hashlib.sha256(adapter.read_bytes()).hexdigest()
    assert recipe["lora"]["rank"] == 4 and recipe["lora"]["dtype"] == "float16" and recipe["cut"] == {"start": 1, "n": 1}
    tensors = load_file(str(adapter))
    # 7 linear layers x 3 remaining decoder layers, A and B each; two steps moved B off its zero start
    assert len(tensors) == 2 * 7 * 3 and all(str(t.dtype) == "torch.float16" for t in tensors.values())
    assert any(float(t.abs().max()) > 0 for k, t in tensors.items() if k.endswith("lora_B"))
    assert trained["stats"]["part"] == "lora" and 0.0 <= trained["stats"]["agreement_after"] <= 1.0


def test_applying_the_delta_gives_the_checkpoint_training_merged(trained, tmp_path):
    from safetensors.torch import load_file

    out = delta.apply(trained["base"], trained["folder"], tmp_path / "applied")
    want = load_file(str(trained["healed"] / "model.safetensors"))  # peft's merge_and_unload, at the end of training
    got = load_file(str(out / "model.safetensors"))
    assert sorted(got) == sorted(want)
    assert all(got[k].equal(want[k]) for k in want)
    uncut = load_file(str(trained["cut"] / "model.safetensors"))
    assert not got["model.layers.0.mlp.up_proj.weight"].equal(uncut["model.layers.0.mlp.up_proj.weight"])


def delta_preset(work, pair: Prepared, folder) -> Preset:
    # the tiny pair's own preset with one more draft: the cached target and draft are reused
    return Preset(name=pair.preset, description="tiny pair with a shipped delta draft",
                  target=ModelSpec("qwen2-target", str(work / "qwen2-target"), "int4"),
                  drafts=(ModelSpec("qwen2-draft", str(work / "qwen2-draft"), "int8"),
                          ModelSpec(NAME, DeltaSource("qwen2-draft", str(folder)), "int4-asym-all"),
                          # as the real preset ships it: the delta draft's vocabulary head trimmed
                          ModelSpec(NAME + "-trimhead", DeltaSource("qwen2-draft", str(folder)), "int4-asym-all",
                                    trim_head_of=NAME)))


def test_prepare_builds_the_delta_draft_and_it_drafts_in_genai(trained, work, qwen2_pair, tmp_path):
    cache = tmp_path / "cache"
    shutil.copytree(qwen2_pair.target.parent, cache / qwen2_pair.preset)  # no tiny model converted twice
    ready = prepare.prepare(delta_preset(work, qwen2_pair, trained["folder"]), cache)
    out = ready.drafts[NAME]
    assert out == cache / qwen2_pair.preset / NAME and (out / "openvino_model.xml").is_file()
    assert '"num_hidden_layers": 3' in (out / "config.json").read_text()
    # the trimmed head of an int4-asym draft: u4 zero points with an odd number of kept rows
    trimmed = ready.drafts[NAME + "-trimhead"]
    assert '"num_hidden_layers": 3' in (trimmed / "config.json").read_text()
    eng = Engine(Prepared("t", ready.target, {NAME: out, NAME + "-trimhead": trimmed}))
    base = eng.generate(Request("def add(a, b):", max_new_tokens=16))
    for name in (NAME, NAME + "-trimhead"):
        spec = eng.generate(Request("def add(a, b):", lane="speculative", draft=name, max_new_tokens=16,
                                    num_assistant_tokens=3))
        assert spec.tokens == base.tokens and spec.drafted > 0
    # a changed byte in the shipped adapter: named, even though the draft is cached
    broken = tmp_path / "broken"
    shutil.copytree(trained["folder"], broken)
    data = bytearray((broken / delta.ADAPTER).read_bytes())
    data[len(data) // 2] ^= 0x40
    (broken / delta.ADAPTER).write_bytes(bytes(data))
    with pytest.raises(PrepareError, match="SHA-256 mismatch for .*adapter.safetensors"):
        prepare.prepare(delta_preset(work, qwen2_pair, broken), cache)


def test_pruning_tab_names_a_lora_heal_and_its_delta_size(engine, trained, tmp_path, monkeypatch):
    import json

    import gradio as gr

    from demo.views import pruning as prune_view

    monkeypatch.setenv("SPECDEMO_CACHE", str(tmp_path))
    ws = tmp_path / engine.prepared.preset / "prune" / "qwen2-draft"
    (ws / "healed-1l").mkdir(parents=True)
    (ws / "analysis.json").write_text(json.dumps({"layers": 4, "n": 1, "start": 1, "distance": 0.2,
                                                  "variant": "angular", "distances": {"1": [0.3, 0.2, 0.4]}}))
    (ws / "healed-1l" / "heal.json").write_text(json.dumps({**trained["stats"], "teacher_kind": "draft"}))
    with gr.Blocks() as blocks:
        prune_view.build(engine)
    texts = [b.value for b in blocks.blocks.values() if isinstance(b, gr.Markdown)]
    assert any("KL towards the uncut draft, LoRA rank 4, a " in t and " MiB delta)" in t for t in texts)


def test_the_prune_cli_writes_the_recipe_from_the_cut_it_trained_on(trained, tmp_path):
    import json
    from types import SimpleNamespace

    from demo.catalog import QWEN25_CODER_05B_GGUF
    from demo.models.prune.cli import write_delta

    (tmp_path / "cut").mkdir()
    shutil.copy(trained["cut"] / "config.json", tmp_path / "cut")
    shutil.copytree(trained["folder"], tmp_path / "healed" / "delta", ignore=shutil.ignore_patterns(delta.RECIPE))
    analysis = tmp_path / "analysis.json"
    analysis.write_text(json.dumps({"layers": 4, "n": 1, "start": 1, "distances": {"1": [0.2, 0.1, 0.3]}}))
    ws = SimpleNamespace(draft=ModelSpec("qwen2.5-coder-0.5b", QWEN25_CODER_05B_GGUF), cut=tmp_path / "cut",
                         healed=tmp_path / "healed", name="qwen2.5-coder-0.5b-pruned-1l", analysis=analysis)
    cmd = "python -m demo.prune run --lora 4 --weights int4-asym-all"
    write_delta(ws, trained["stats"], cmd)
    # the analysis travels with the delta: the Pruning tab draws its heatmap on a machine that never pruned
    assert (tmp_path / "healed" / "delta" / "analysis.json").read_text() == analysis.read_text()
    recipe = json.loads((tmp_path / "healed" / "delta" / delta.RECIPE).read_text())
    assert recipe["cut"] == {"start": 1, "n": 1} and recipe["command"] == cmd
    assert recipe["base"] == {"draft": "qwen2.5-coder-0.5b", "gguf": QWEN25_CODER_05B_GGUF.filename,
                              "gguf_sha256": QWEN25_CODER_05B_GGUF.sha256}
    assert recipe["heal"]["agreement_after"] == trained["stats"]["agreement_after"] and "teacher" not in recipe["heal"]
    assert delta.load_recipe(tmp_path / "healed" / "delta")["adapter_sha256"] == trained["recipe"]["adapter_sha256"]


def test_an_interrupted_lora_heal_resumes_to_the_same_adapter(trained, tmp_path):
    from transformers import AutoTokenizer

    cut = cut_checkpoint(trained["base"], tmp_path / "cut", start=1, n=1)
    examples = encode_pairs(AutoTokenizer.from_pretrained(trained["base"]),
                            [{"prompt": p, "response": "The answer is forty-two."} for p in PROMPTS])
    args = dict(steps=2, lr=1e-2, device="cpu", teacher_dir=trained["base"], kl_weight=0.9, checkpoint_every=1,
                lora={"rank": 4, "alpha": 8, "targets": delta.TARGETS})

    def interrupt_at_step_2(msg):
        if msg.startswith("step 2/"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        heal(cut, tmp_path / "h", examples, log=interrupt_at_step_2, **args)
    assert (tmp_path / "h" / "checkpoint" / "lora.pt").exists()
    logs = []
    heal(cut, tmp_path / "h", examples, log=logs.append, **args)
    assert logs[0] == "resuming at step 1"
    # the same two steps as the uninterrupted run: the adapter is byte for byte the same
    assert (tmp_path / "h" / "delta" / delta.ADAPTER).read_bytes() == (trained["folder"] / delta.ADAPTER).read_bytes()
