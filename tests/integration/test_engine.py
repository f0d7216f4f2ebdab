"""The engine on real OpenVINO GenAI pipelines over the tiny pairs."""
from __future__ import annotations

import threading

import pytest

from demo.engine import Engine, EngineError, IncrementalDecoder, Request
from demo.metrics import first_divergence

PROMPT = "Write a function that adds two numbers"


@pytest.fixture(scope="module")
def baseline(engine):
    return engine.generate(Request(PROMPT, max_new_tokens=40))


@pytest.mark.parametrize("lane,k", [("speculative", 3), ("speculative", 5), ("prompt-lookup", 3)])
def test_lanes_equal_baseline_token_for_token(engine, baseline, lane, k):
    res = engine.generate(Request(PROMPT, lane=lane, max_new_tokens=40, num_assistant_tokens=k))
    assert len(baseline.tokens) == 40
    assert first_divergence(baseline.tokens, res.tokens) is None
    assert res.text == baseline.text


def test_qwen3_pair_equal_baseline(qwen3_pair):
    eng = Engine(qwen3_pair)
    base = eng.generate(Request(PROMPT, max_new_tokens=30))
    spec = eng.generate(Request(PROMPT, lane="speculative", max_new_tokens=30, num_assistant_tokens=4))
    assert spec.tokens == base.tokens


def test_step_events_add_up(engine, baseline):  # c needs a baseline run in this process
    run = engine.start(Request(PROMPT, lane="speculative", max_new_tokens=33, num_assistant_tokens=4))
    events = list(run)
    res = run.result
    assert [t for e in events for t in e.tokens] == res.tokens
    assert "".join(e.text for e in events) == res.text
    assert len(events) == res.steps and res.steps < len(res.tokens)  # several tokens per step
    assert all(0 <= e.accepted <= 4 and e.accepted == len(e.tokens) - 1 for e in events)
    assert sum(e.accepted for e in events) == sum(res.step_accepted)
    last = events[-1].accepted
    assert sum(res.step_accepted) - last <= res.accepted <= sum(res.step_accepted)  # GenAI skips a cut last step
    assert res.accepted <= res.drafted
    assert [e.t for e in events] == sorted(e.t for e in events)
    assert res.tokens_per_step == pytest.approx((len(res.tokens) - 1) / (res.steps - 1))
    assert res.draft_ms_per_token > 0 and res.target_ms_per_step > 0
    assert res.c is not None and res.c > 0 and res.theoretical_speedup > 0


def test_baseline_events_are_single_tokens(engine, baseline):
    assert baseline.steps == len(baseline.tokens) == 40
    assert baseline.accepted is None and baseline.target_ms_per_step > 0
    assert engine.target_ms_per_token is not None


def test_cancel_from_another_thread_stops_within_a_step(engine):
    run = engine.start(Request(PROMPT, lane="speculative", max_new_tokens=400, num_assistant_tokens=2))
    seen = []
    for event in run:
        seen.append(event)
        if len(seen) == 3:
            threading.Thread(target=run.cancel).start()
            threading.Event().wait(0.2)
    assert run.result.cancelled
    assert len(seen) <= 5  # the step in flight when cancel arrived may still land
    assert len(run.result.tokens) < 400


def test_utf8_split_across_steps_is_joined(engine):
    tok = engine.tokenizer()
    text = "naïve café: 大海 🌊 done"
    ids = tok.encode(text, add_special_tokens=False).input_ids.data[0].tolist()
    decoder = IncrementalDecoder(tok.decode)
    deltas = [decoder.push([i]) for i in ids]  # one token per step splits the emoji and CJK bytes
    assert "".join(deltas) == text
    assert not any("\ufffd" in d for d in deltas)
    assert "" in deltas  # at least one step was held back


@pytest.mark.parametrize("req,msg", [
    (Request("   "), "prompt is empty"),
    (Request("hi", lane="fast"), "unknown lane"),
    (Request("hi", lane="speculative", draft="nope"), "unknown draft 'nope'"),
    (Request("hi", lane="speculative", do_sample=True), "sampling is allowed on the baseline lane only"),
    (Request("hi", max_new_tokens=0), "at least 1"),
    (Request("hi " * 9000, max_new_tokens=100), "exceeds the model's context"),
])
def test_bad_requests_get_clear_messages(engine, req, msg):
    with pytest.raises(EngineError, match=msg):
        engine.generate(req)


def test_sampling_on_baseline_is_labelled(engine):
    res = engine.generate(Request(PROMPT, max_new_tokens=8, do_sample=True))
    assert res.sampled and len(res.tokens) == 8
