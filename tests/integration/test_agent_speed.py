"""Where an agent run's time goes, and the guards that keep a run from hanging a visitor, on the tiny pair through
real OpenVINO GenAI pipelines, the real smolagents CodeAgent and the real confined process."""
from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from smolagents.models import ChatMessage, MessageRole
from test_agent import ScriptedModel, deck_reply

from demo.agent import model as agent_model, run as agent, timing
from demo.engine import Request

ROOT = Path(__file__).resolve().parents[2]
CATS = [("Cats at home", ["They sleep a lot", "They like boxes"]), ("Cat food", ["Meat first", "Fresh water"])]


class Recording(ScriptedModel):
    """ScriptedModel that keeps each call's messages as the agent built them."""

    def __init__(self, replies):
        super().__init__(replies)
        self.calls: list[tuple[list, list]] = []

    def generate(self, messages, stop_sequences=None, **kwargs):
        self.calls.append((list(messages), list(stop_sequences or [])))
        return super().generate(messages, stop_sequences, **kwargs)


def run(engine, tmp_path, model, task="Make a 2-slide deck about cats with 2 bullets per slide", **kwargs):
    items = list(agent.run_agent(engine, task, tmp_path / "run", model=model, search=False, **kwargs))
    return items[:-1], items[-1]


def code_reply(slides_) -> str:
    """A deck reply as EngineModel returns one: inside the code block its prefix opened."""
    return "<code>\n" + deck_reply(slides_).split("<code>\n", 1)[1]


def test_prefix_cache_hits_are_counted(engine):
    system = f"{uuid.uuid4()} You are a careful assistant who writes slide decks. " * 20  # nothing cached yet
    ask = [Request("", messages=[{"role": "system", "content": system}, {"role": "user", "content": q}],
                   max_new_tokens=4) for q in ("Write about cats", "Write about dogs")]
    first, second = (engine.generate(r) for r in ask)
    assert first.cached_tokens == 0 and first.prefill_ms > 0
    assert second.prompt_tokens - 40 < second.cached_tokens < second.prompt_tokens and second.cached_tokens % 32 == 0
    assert second.prefill_ms < first.prefill_ms  # the cache is real: a few new tokens read instead of all


def test_the_breakdown_sums_to_the_run_and_each_step_is_timed(engine, tmp_path):
    trace, result = run(engine, tmp_path, ScriptedModel([code_reply(CATS)]))
    b = result.breakdown
    assert sum(b[k] for k in (*timing.CATEGORIES, "other_s")) == pytest.approx(result.seconds, abs=0.05)
    assert b["code_s"] > 0 and 0 < b["code_start_s"] <= b["code_s"] and b["shape_s"] > 0
    steps = [t for t in trace if t.kind == "timing"]
    assert [t.step for t in steps] == [1] and "code (confined process)" in steps[0].text
    assert json.loads(json.dumps(result.to_json()))["breakdown"] == b


def test_a_real_model_call_is_in_the_breakdown(engine, tmp_path):
    model = agent_model.EngineModel(engine, use_draft=True, max_new_tokens=24)
    _, result = run(engine, tmp_path, model, max_steps=1)
    (call, *_), b = result.calls, result.breakdown
    assert call["lane"] == "speculative" and call["prompt_tokens"] > 300 and call["decode_tokens"] > 0
    assert b["prefill_s"] > 0 and b["decode_s"] > 0 and b["prompt_tokens"] >= call["prompt_tokens"]


def test_the_time_budget_stops_a_run_and_fails_it(engine, tmp_path):
    step = "<code>\nprint(sum(i * i for i in range(1000)))\n</code>"  # starting the confined process takes longer
    t = time.monotonic()
    trace, result = run(engine, tmp_path, ScriptedModel([step] * 6), budget=0.2)
    assert time.monotonic() - t < 30 and result.budget_spent and result.steps == 1
    assert result.final_answer.startswith("stopped: the run used its 0 s time budget")
    assert any("budget" in t.text for t in trace if t.kind == "error")


def test_a_generation_past_the_deadline_is_cut(engine):
    model = agent_model.EngineModel(engine, use_draft=False, max_new_tokens=600)
    model.deadline = time.monotonic() + 0.3
    with pytest.raises(agent_model.BudgetSpent):
        model.generate([ChatMessage(role=MessageRole.USER, content="Write a long story")])
    assert 0 < model.generated_tokens < 600
    with pytest.raises(agent_model.BudgetSpent):  # spent: the next call does not start
        model.generate([ChatMessage(role=MessageRole.USER, content="Hello")])


def test_the_same_shape_failure_gets_the_outline_then_ends_with_the_closest_deck(engine, tmp_path):
    two = code_reply(CATS)
    trace, result = run(engine, tmp_path, ScriptedModel([two] * 6),
                        task="Make a 3-slide deck about cats with 2 bullets per slide")
    errors = [t.text for t in trace if t.kind == "error"]
    assert result.steps == 3 and len(errors) == 2
    assert "The saved deck holds:" not in errors[0] and "The saved deck holds:" in errors[1]
    assert "('Cat food', ['Meat first', 'Fresh water'])" in errors[1] and "exactly 3 entries" in errors[1]
    assert result.repairs["outlines"] == 1 and result.repairs["failures"] == 3
    assert "closest deck" in result.final_answer and "asks for exactly 3" in result.final_answer


def test_every_step_prompt_extends_the_last_one(engine, tmp_path):
    """Prefix caching pays on every step only if step k+1's prompt starts with step k's prompt token for token:
    the chat template, smolagents' memory and the reply prefix together keep it so."""
    model = Recording([code_reply(CATS[:1]), code_reply(CATS)])
    run(engine, tmp_path, model)
    em = agent_model.EngineModel(engine)
    (m1, s1), (m2, s2) = model.calls
    first, second = engine.encode(em._request(m1, s1)), engine.encode(em._request(m2, s2))
    assert second[:len(first)] == first
    em.slim_history = False  # smolagents' "Calling tools:" copy of the code makes the prompt longer
    assert len(engine.encode(em._request(m2, s2))) > len(second) + 40


def test_prewarm_reads_the_fixed_prompt_into_both_lanes(engine, tmp_path):
    agent.prewarm(engine, search=False)
    model = Recording([code_reply(CATS)])
    run(engine, tmp_path, model)
    (messages, stops), = model.calls
    for draft in (False, True):
        res = engine.generate(agent_model.EngineModel(engine, use_draft=draft, max_new_tokens=1)
                              ._request(messages, stops))
        system = len(engine.encode(Request("", messages=[{"role": "system", "content": messages[0].content[0]
                                                          ["text"]}])))
        assert res.cached_tokens >= system - 40, (draft, res.cached_tokens, system)


def test_the_first_drafted_step_after_prewarm_drafts_as_well_as_a_later_one(qwen2_pair, tmp_path):
    """A fresh engine, as at start-up: prewarm, then the first task's first step with the draft. When prewarm
    ended after one token, GenAI never ran the draft, and the next request's draft, a prefill chunk behind the
    target, had every candidate rejected (acceptance 0 on the real pair, 48 s instead of 14)."""
    from demo.engine import Engine

    fresh = Engine(qwen2_pair)
    agent.prewarm(fresh, ("speculative",), search=False)
    model = Recording([code_reply(CATS)])
    run(fresh, tmp_path, model)  # the scripted model makes no engine call: only the messages are recorded
    (messages, stops), = model.calls
    em = agent_model.EngineModel(fresh, use_draft=True, max_new_tokens=48)
    first, again = (fresh.generate(em._request(messages, stops)) for _ in range(2))
    assert len(fresh.encode(em._request(messages, stops))) > 2 * 256  # the prompt takes several prefill chunks
    rates = [r.acceptance_rate or 0 for r in (first, again)]  # None: GenAI counted no drafted token at all
    assert first.cached_tokens > 256 and rates[1] > 0.5, rates
    assert rates[0] >= rates[1] - 0.1, rates


def test_agent_bench_reports_paired_figures(qwen2_pair, tmp_path):
    (name, path), = qwen2_pair.drafts.items()
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text("".join(json.dumps({"task": f"Make a deck about {a}", "slides": 2, "keywords": [a]}) + "\n"
                             for a in ("cats", "dogs")))
    out = subprocess.run([sys.executable, "-m", "demo.agent_bench", "--target", str(qwen2_pair.target), "--draft",
                          f"{name}={path}", "--cache-dir", str(tmp_path / "c"), "--tasks", str(tasks), "--out",
                          str(tmp_path / "runs"), "--speculative", "on,off", "--max-steps", "1", "--no-search",
                          "--settle", "0.5", "--json", str(tmp_path / "r.json")], cwd=ROOT, capture_output=True,
                         text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads((tmp_path / "r.json").read_text())
    assert [(r["index"], r["draft"]) for r in report["runs"]] == [(1, True), (1, False), (2, False), (2, True)]
    assert report["paired_tasks"] == 2 and report["time_ratio"] > 0 and len(report["time_ratio_ci"]) == 2
    assert report["settle_seconds"] == 0.5  # untimed: the runs' seconds are the breakdown's sum below
    assert report["pass_rate_draft"] == report["pass_rate_plain"] == 0.0 and report["peak_rss_mb"] > 100
    for r in report["runs"]:
        b = r["breakdown"]
        assert sum(b[k] for k in (*timing.CATEGORIES, "other_s")) == pytest.approx(r["seconds"], abs=0.1)
        assert b["prompt_tokens"] > 0 and b["decode_tokens"] == r["tokens"] and r["loops"] >= 0


def test_the_same_failing_code_twice_ends_the_run(engine, tmp_path):
    # the dev run that showed it: the list written first and the import left out, five times until the budget
    broken = "<code>\nslides = [('A', ['x', 'y'])]\nprs = Presentation()\n</code>"
    trace, result = run(engine, tmp_path, ScriptedModel([broken] * 6))
    errors = [t.text for t in trace if t.kind == "error"]
    assert result.steps == 2 and "the same failing code twice" in errors[-1] and "Presentation" in errors[-1]


def test_the_fixed_prompt_keeps_the_import_beside_the_list_start():
    from demo.agent.deck_shape import parse_request

    task = "Make a 2-slide deck about cats, 3 bullets on each slide"
    text = agent.task_text(task, parse_request(task))
    assert text.endswith("from pptx import Presentation\nslides = [  # 2 slides, 3 bullets each")
    assert agent.task_text(task, parse_request(task), agent.Speedups(fixed_prompt=False)).endswith("every slide.")
