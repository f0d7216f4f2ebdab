"""The agent's plumbing with real smolagents objects: the engine-backed Model, the interpreter, the deck."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from smolagents.models import ChatMessage, MessageRole, Model, TokenUsage

from demo.agent import model as agent_model, run as agent, slides, tools
from demo.engine import EngineError, Request

ROOT = Path(__file__).resolve().parents[2]


def test_cut_at_stop_takes_the_earliest():
    assert agent_model.cut_at_stop("abc Observation: x </code> y", ["</code>", "Observation:"]) == "abc "
    assert agent_model.cut_at_stop("no stop here", ["</code>"]) == "no stop here"


@pytest.mark.parametrize("draft", [True, False])
def test_engine_model_honours_stop_sequences_and_usage(engine, draft):
    messages = [ChatMessage(role=MessageRole.USER, content="Write a function that adds two numbers")]
    full = engine.generate(Request("", messages=[{"role": "user", "content": "Write a function that adds two numbers"}],
                                   max_new_tokens=40)).text
    stop = full[len(full) // 2: len(full) // 2 + 4]
    assert stop.strip() and stop in full
    model = agent_model.EngineModel(engine, use_draft=draft, max_new_tokens=40)
    msg = model.generate(messages, stop_sequences=[stop, "NEVER-APPEARS"])
    assert msg.content == full[: full.index(stop)]
    assert msg.token_usage.input_tokens > 10 and 0 < msg.token_usage.output_tokens <= 40
    assert msg.raw["lane"] == ("speculative" if draft else "baseline")
    streamed = list(model.generate_stream(messages, stop_sequences=[stop]))
    assert "".join(d.content for d in streamed) == msg.content
    assert streamed[0].token_usage.input_tokens == msg.token_usage.input_tokens


class ScriptedModel(Model):
    """Replays fixed replies, so the real CodeAgent and python interpreter run without a capable LLM."""

    def __init__(self, replies):
        super().__init__(model_id="scripted")
        self.replies = list(replies)
        self.prompts: list[str] = []  # each call's messages as text, to see what the agent handed back

    def generate(self, messages, stop_sequences=None, **kwargs):
        self.prompts.append(json.dumps([m.dict() if hasattr(m, "dict") else m for m in messages], default=str))
        text = self.replies.pop(0) if self.replies else '<code>\nfinal_answer("out of script")\n</code>'
        return ChatMessage(role=MessageRole.ASSISTANT, content=agent_model.cut_at_stop(text, stop_sequences),
                           token_usage=TokenUsage(input_tokens=1, output_tokens=1))

    def generate_stream(self, messages, stop_sequences=None, **kwargs):
        from smolagents.models import ChatMessageStreamDelta

        msg = self.generate(messages, stop_sequences)
        yield ChatMessageStreamDelta(content=msg.content, token_usage=msg.token_usage)


DECK = '''I will build the deck.
<code>
from pptx import Presentation
prs = Presentation()
for title, bullets in [("Speculative decoding", ["A draft proposes", "The target verifies"]),
                       ("Verification", ["One pass over k tokens", "Keep the agreeing prefix"]),
                       ("When it pays off", ["High acceptance", "Cheap draft"])]:
    slide = prs.slides.add_slide(prs.slide_layouts[1])
    slide.shapes.title.text = title
    body = slide.placeholders[1].text_frame
    body.text = bullets[0]
    body.add_paragraph().text = bullets[1]
prs.save("deck.pptx")
final_answer("Saved deck.pptx with 3 slides")
</code>'''


def run_scripted(engine, tmp_path, replies, max_steps=6, kind="code", task="a deck", **kwargs):
    items = list(agent.run_agent(engine, task, tmp_path / "run", model=ScriptedModel(replies),
                                 max_steps=max_steps, kind=kind, **{"search": False, **kwargs}))
    return items[:-1], items[-1]


def action(name: str, **arguments) -> str:
    return "Action:\n" + json.dumps({"name": name, "arguments": arguments})


def test_scripted_agent_builds_a_real_deck_and_refuses_escapes(engine, tmp_path):
    evil = tmp_path / "evil.pptx"
    replies = [
        "<code>\nimport os\nprint(os.listdir('/'))\n</code>",
        "<code>\nprint(open('/etc/passwd').read())\n</code>",
        f"<code>\nfrom pptx import Presentation\nPresentation().save({str(evil)!r})\n</code>",
        "<code>\nfrom pptx import Presentation\nPresentation().save('../outside.pptx')\n</code>",
        "<code>\nx = 1 / 0\n</code>",
        DECK,
    ]
    trace, result = run_scripted(engine, tmp_path, replies, max_steps=8)
    errors = [t.text for t in trace if t.kind == "error"]
    assert any("Import of os is not allowed" in e for e in errors)
    assert any("open" in e and "not" in e.lower() for e in errors)
    # the sandbox (demo/agent/sandbox.py): the host path does not exist in it, and its root is read-only
    assert sum("No such file or directory" in e or "Read-only file system" in e for e in errors) == 2
    assert any("division by zero" in e for e in errors)
    assert not evil.exists() and not (tmp_path / "outside.pptx").exists()
    assert result.final_answer == "Saved deck.pptx with 3 slides"
    assert result.files == [str((tmp_path / "run" / "files" / "deck.pptx").resolve())] and result.steps == 6
    assert not result.reached_max_steps
    titles = [t for t, _ in slides.slide_texts(Path(result.files[0]))]
    assert titles == ["Speculative decoding", "Verification", "When it pays off"]
    assert any(t.kind == "code" and "prs.save" in t.text for t in trace)


def test_max_steps_gives_a_clear_message(engine, tmp_path):
    trace, result = run_scripted(engine, tmp_path, ["<code>\nprint('thinking')\n</code>"] * 5, max_steps=2)
    assert result.reached_max_steps and result.files == []
    assert "reached the limit of 2 steps" in trace[-1].text


def test_empty_task(engine, tmp_path):
    with pytest.raises(EngineError, match="task is empty"):
        list(agent.run_agent(engine, "  ", tmp_path))


def test_search_offline_is_an_observation():
    out = tools.SearchTool().forward("OpenVINO speculative decoding")
    assert out.startswith("search unavailable (offline)") or "http" in out  # a machine with network gets results


def test_slide_preview_simple_renderer(engine, tmp_path):
    _, result = run_scripted(engine, tmp_path, [DECK])
    pngs, _ = slides.preview(Path(result.files[0]), tmp_path / "png", simple=True)
    assert len(pngs) == 3 and all(p.stat().st_size > 2000 for p in pngs)


def test_cli_json(qwen2_pair, tmp_path):
    (name, path), = qwen2_pair.drafts.items()
    out = subprocess.run([sys.executable, "-m", "demo.agent", "--target", str(qwen2_pair.target), "--draft",
                          f"{name}={path}", "--cache-dir", str(tmp_path / "c"), "--task", "Make a deck about cats",
                          "--out", str(tmp_path / "run"), "--max-steps", "1", "--no-search", "--json"],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(got) == {"final_answer", "files", "steps", "seconds", "speculative", "tokens", "budget_seconds",
                        "budget_spent", "loops", "breakdown"}
    assert got["budget_seconds"] == 120 and not got["budget_spent"] and got["breakdown"]["decode_tokens"] == got["tokens"]
    assert got["speculative"] is True and got["steps"] >= 1 and got["tokens"] > 0
    assert "[step 1]" in out.stderr


@pytest.mark.slow
def test_offline_pair_writes_a_deck(tmp_path):
    out = subprocess.run([sys.executable, "-m", "demo.agent", "--preset", "qwen2.5-coder-1.5b", "--task",
                          "Make a three-slide deck introducing Python list comprehensions", "--out",
                          str(tmp_path), "--no-search", "--json"], cwd=ROOT, capture_output=True, text=True,
                         timeout=1800)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["files"], out.stderr[-3000:]
    assert len(slides.slide_texts(Path(got["files"][0]))) >= 3


def test_final_answer_without_a_real_deck_is_sent_back(engine, tmp_path):
    placeholder = DECK.replace('"Speculative decoding"', '"First slide title"')
    replies = ['<code>\nfinal_answer("done")\n</code>', placeholder, DECK]
    trace, result = run_scripted(engine, tmp_path, replies)
    errors = [t.text for t in trace if t.kind == "error"]
    assert any("no .pptx was saved" in e for e in errors)
    assert any("come from the example" in e for e in errors)
    assert result.final_answer == "Saved deck.pptx with 3 slides" and result.steps == 3


def test_tool_calling_agent_builds_the_deck_through_python_interpreter(engine, tmp_path):
    code = DECK.split("<code>\n")[1].split("final_answer")[0]
    replies = [
        action("python_interpreter", code="import os\nprint(os.listdir('/'))"),
        action("python_interpreter", code=code),
        action("final_answer", answer="Saved deck.pptx with 3 slides"),
    ]
    trace, result = run_scripted(engine, tmp_path, replies, kind="tool")
    assert any(t.kind == "error" and "Import of os is not allowed" in t.text for t in trace)
    assert any(t.kind == "code" and "prs.save" in t.text for t in trace)
    assert result.final_answer == "Saved deck.pptx with 3 slides" and result.steps == 3
    assert [t for t, _ in slides.slide_texts(Path(result.files[0]))][0] == "Speculative decoding"


@pytest.mark.parametrize("kind", agent.AGENT_KINDS)
def test_short_system_prompt_keeps_tools_rules_and_example(kind):
    built = agent.build_agent(ScriptedModel([]), kind=kind)
    prompt = built.system_prompt
    assert "web_search" in prompt and "final_answer" in prompt and "prs.save(\"deck.pptx\")" in prompt
    assert ("pptx" in prompt and "<code>" in prompt) if kind == "code" else "python_interpreter" in prompt
    default = agent.build_agent(ScriptedModel([]), kind=kind, short_prompt=False).system_prompt
    assert len(prompt) < len(default) * 0.6, (len(prompt), len(default))


def test_agent_bench_judges_decks(engine, tmp_path):
    from demo.agent import bench as agent_bench

    tasks = agent_bench.load_tasks(agent_bench.DEFAULT_TASKS)
    assert len(tasks) >= 20 and all(t["keywords"] and t["split"] in ("dev", "test") for t in tasks)
    _, result = run_scripted(engine, tmp_path, [DECK])
    task = {"task": "t", "slides": 3, "bullets": 2, "keywords": ["verif"]}
    assert agent_bench.judge(task, result.files) == (True, "3 slides")
    # strict: the exact slide count, the asked bullets on every slide, on topic
    ok, why = agent_bench.judge({**task, "slides": 2}, result.files)
    assert not ok and "has 3 slides but the task asks for exactly 2" in why
    ok, why = agent_bench.judge({**task, "bullets": 3}, result.files)
    assert not ok and "at least 3 bullets, but slide 1 has 2, slide 2 has 2, slide 3 has 2" in why
    ok, why = agent_bench.judge({**task, "keywords": ["qwen"]}, result.files)
    assert not ok and "does not mention the task's topic (qwen)" in why
    assert agent_bench.judge(task, []) == (False, "no deck")


def test_agent_bench_cli_on_the_tiny_pair(qwen2_pair, tmp_path):
    (name, path), = qwen2_pair.drafts.items()
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text(json.dumps({"task": "Make a deck about cats", "slides": 2, "keywords": ["cat"]}) + "\n")
    base = [sys.executable, "-m", "demo.agent_bench", "--target", str(qwen2_pair.target), "--draft",
            f"{name}={path}", "--cache-dir", str(tmp_path / "c"), "--tasks", str(tasks), "--out", str(tmp_path / "runs")]
    bad = subprocess.run(base + ["--agents", "nope"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "--agents takes code, tool" in bad.stderr
    out = subprocess.run(base + ["--agents", "code,tool", "--speculative", "on,off", "--max-steps", "1", "--no-search",
                                 "--json", str(tmp_path / "r.json")], cwd=ROOT, capture_output=True, text=True,
                         timeout=900)
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads((tmp_path / "r.json").read_text())
    assert [(s["agent"], s["draft"], s["runs"]) for s in report["summary"]] == [
        ("code", True, 1), ("code", False, 1), ("tool", True, 1), ("tool", False, 1)]
    assert all(r["verdict"] == "no deck" and not r["success"] and r["tokens"] > 0 for r in report["runs"])


def test_code_agent_steps_start_inside_a_code_block(engine):
    model = agent_model.EngineModel(engine, use_draft=True, max_new_tokens=12)
    messages = [ChatMessage(role=MessageRole.USER, content="Print hello")]
    msg = model.generate(messages, stop_sequences=["Observation:", "</code>"])
    assert msg.content.startswith("<code>\n") and len(msg.content) > len("<code>\n")
    streamed = "".join(d.content for d in model.generate_stream(messages, stop_sequences=["</code>"]))
    assert streamed == msg.content
    plain = model.generate(messages, stop_sequences=["Observation:"])  # a ToolCallingAgent step: no prefix
    assert not plain.content.startswith("<code>")
    # the prefix is part of the prompt the model continues
    run = engine.start(agent_model.EngineModel(engine)._request(messages, ["</code>"]))
    list(run)
    assert engine.tokenizer().decode(engine.encode(run.request)).endswith("\nassistant\n<code>\n")


def test_is_looping():
    deck = "\n".join(f'slide = prs.slides.add_slide(prs.slide_layouts[1])\nslide.shapes.title.text = "T{i}"'
                     for i in range(6))
    assert not agent_model.is_looping(deck)
    loop = "features = [\n" + '    "High throughput and low latency",\n    "High security and privacy",\n' * 8
    assert agent_model.is_looping(loop)


# ---------------------------------------------------------------- the deck the request asked for

def deck_reply(slides_: list[tuple[str, list[str]]], answer: str = "Saved deck.pptx") -> str:
    return ("<code>\nfrom pptx import Presentation\nprs = Presentation()\n"
            f"for title, bullets in {slides_!r}:\n"
            "    slide = prs.slides.add_slide(prs.slide_layouts[1])\n"
            "    slide.shapes.title.text = title\n"
            "    body = slide.placeholders[1].text_frame\n"
            "    body.text = bullets[0]\n"
            "    for b in bullets[1:]:\n"
            "        body.add_paragraph().text = b\n"
            f"prs.save('deck.pptx')\nfinal_answer({answer!r})\n</code>")


TWO = [("Speculative decoding", ["A draft proposes", "The target verifies"]),
       ("When it pays off", ["High acceptance", "Cheap draft"])]
THREE = [*TWO[:1], ("Verification", ["One pass over k tokens", "Keep the agreeing prefix"]), TWO[1]]
SHAPED_TASK = "Make a three-slide deck introducing speculative decoding with two bullets per slide"


def test_shape_check_hands_the_differences_back_until_the_deck_matches(engine, tmp_path):
    same_titles = [THREE[0], THREE[1], (THREE[1][0], ["Cheap draft", "High acceptance"])]
    thin = [THREE[0], THREE[1], (THREE[2][0], ["High acceptance"])]
    replies = [deck_reply(TWO), deck_reply(same_titles), deck_reply(thin), deck_reply(THREE, "Done: 3 slides")]
    items = list(agent.run_agent(engine, SHAPED_TASK, tmp_path / "run", model=(model := ScriptedModel(replies)),
                                 search=False))
    trace, result = items[:-1], items[-1]
    assert trace[0].kind == "shape" and "3 slides; at least 2 bullets each" in trace[0].text
    errors = [t.text for t in trace if t.kind == "error"]
    assert len(errors) == 3
    assert "the deck has 2 slides but the task asks for exactly 3" in errors[0]
    assert "slides 2 and 3 have the same title 'Verification'" in errors[1]
    assert "every slide needs at least 2 bullets, but slide 3 has 1" in errors[2]
    # each failure is what the model reads before its next step
    assert "The deck needs exactly 3 slides" in model.prompts[0]
    assert "asks for exactly 3" in model.prompts[1] and "same title" in model.prompts[2]
    assert result.final_answer == "Done: 3 slides" and result.steps == 4 and not result.reached_max_steps
    assert [t for t, _ in slides.slide_texts(Path(result.files[0]))] == [t for t, _ in THREE]
    assert (result.shape.slides, result.shape.bullets) == (3, 2)


def test_shape_check_within_the_step_limit(engine, tmp_path):
    trace, result = run_scripted(engine, tmp_path, [deck_reply(TWO)] * 3, max_steps=2, task=SHAPED_TASK)
    assert result.reached_max_steps and result.files  # the last deck is still shown
    assert sum("asks for exactly 3" in t.text for t in trace if t.kind == "error") == 2


def test_the_model_reads_the_shape_when_asked(engine, tmp_path):
    task = "Make a short deck about speculative decoding"
    reading = '{"deck": true, "slides": 2, "bullets": 2, "search": false, "topic": ["speculative decoding"]}'
    trace, result = run_scripted(engine, tmp_path, [reading, deck_reply(THREE), deck_reply(TWO)], task=task,
                                 shape_from="model")
    assert "a deck (parser+model): 2 slides; at least 2 bullets each" in trace[0].text
    assert any("has 3 slides but the task asks for exactly 2" in t.text for t in trace if t.kind == "error")
    assert len(slides.slide_texts(Path(result.files[0]))) == 2 and result.steps == 2
    # an unusable reading leaves the parser's: any number of slides
    trace, result = run_scripted(engine, tmp_path / "b", ["I am not sure.", deck_reply(THREE)], task=task,
                                 shape_from="model")
    assert "a deck (parser): any number of slides" in trace[0].text and result.steps == 1
    with pytest.raises(EngineError, match="unknown shape reader"):
        run_scripted(engine, tmp_path, [], task=task, shape_from="guess")


def test_a_task_that_is_not_a_deck_gets_a_plain_answer(engine, tmp_path):
    task = "Run this code and report what it prints: print(6 * 7)"
    replies = ["Thought: run it.\n<code>\nprint(6 * 7)\n</code>", '<code>\nfinal_answer("It prints 42.")\n</code>']
    items = list(agent.run_agent(engine, task, tmp_path / "run", model=(model := ScriptedModel(replies)),
                                 search=False))
    trace, result = items[:-1], items[-1]
    assert trace[0].text == "the request asks for not a deck: a plain answer"
    assert result.final_answer == "It prints 42." and result.files == [] and result.steps == 2
    assert not any(t.kind == "error" for t in trace)
    assert any(t.kind == "observation" and "42" in t.text for t in trace)
    assert "python-pptx" not in model.prompts[0] and "It prints 10." in model.prompts[0]


def test_reply_prefix_only_where_the_task_is_a_deck(engine, tmp_path):
    model = agent_model.EngineModel(engine, max_new_tokens=8)
    list(agent.run_agent(engine, "What is 6 * 7?", tmp_path / "a", model=model, max_steps=1, search=False))
    assert model.code_prefix is False
    msg = model.generate([ChatMessage(role=MessageRole.USER, content="Print hello")], stop_sequences=["</code>"])
    assert not msg.content.startswith("<code>")
    list(agent.run_agent(engine, SHAPED_TASK, tmp_path / "b", model=model, max_steps=1, search=False))
    assert model.code_prefix is True


def test_a_search_that_did_not_happen_is_said_in_the_answer(engine, tmp_path):
    task = "Search the web for facts about speculative decoding, then make a two-slide deck with 2 bullets each"
    _, result = run_scripted(engine, tmp_path / "off", [deck_reply(TWO, "Saved the deck")], task=task)
    assert result.final_answer == ("Saved the deck (web search is turned off for this run, so this is written from "
                                   "the model's own knowledge)")
    # offered, the asked search is made before the first step and its outcome handed to the model
    items = list(agent.run_agent(engine, task, tmp_path / "on", search=True,
                                 model=(model := ScriptedModel([deck_reply(TWO, "Saved the deck")]))))
    trace, result = items[:-1], items[-1]
    assert trace[1].kind == "code" and trace[1].text == "web_search(query='speculative decoding')"
    assert trace[2].kind == "observation" and trace[2].step == 0
    offline = "search unavailable" in trace[2].text  # a machine with network gets results
    assert ("unavailable (offline)" in result.final_answer) == offline
    assert ("Web search results for" in model.prompts[0]) != offline
    assert len(slides.slide_texts(Path(result.files[0]))) == 2 and result.steps == 1
