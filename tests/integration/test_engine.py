"""The engine on real OpenVINO GenAI pipelines over the tiny pairs."""
from __future__ import annotations

import threading

import pytest

from demo.engine import Engine, EngineError, IncrementalDecoder, Request
from demo.engine.result import position_acceptance
from demo.metrics import first_divergence

PROMPT = "Write a function that adds two numbers"


@pytest.fixture(scope="module")
def baseline(engine):
    return engine.generate(Request(PROMPT, max_new_tokens=40))


@pytest.mark.parametrize("lane,k", [("speculative", 3), ("speculative", 5), ("prompt-lookup", 3)])
def test_lanes_equal_baseline_token_for_token(engine, baseline, lane, k):
    res = engine.generate(Request(PROMPT, lane=lane, max_new_tokens=40, num_assistant_tokens=k))
    assert engine.lane_settings("baseline")["backend"] == "paged"  # greedy identity against the paged baseline
    assert len(baseline.tokens) == 40
    assert first_divergence(baseline.tokens, res.tokens) is None
    assert res.text == baseline.text


def test_baseline_is_paged_with_the_drafted_lanes_scheduler(engine, baseline):
    engine.generate(Request(PROMPT, lane="speculative", max_new_tokens=4))
    base, spec = engine.lane_settings("baseline"), engine.lane_settings("speculative")
    assert engine.baseline_backend == "paged" and engine.settings()["baseline_backend"] == "paged"
    assert base == spec and base["backend"] == "paged"
    assert base["scheduler"]["enable_prefix_caching"] is True and base["scheduler"]["cache_size"] == 0


def test_stateful_baseline_stays_selectable(qwen2_pair):
    eng = Engine(qwen2_pair, baseline_backend="stateful")
    res = eng.generate(Request(PROMPT, max_new_tokens=6))
    assert len(res.tokens) == 6 and eng.settings()["baseline_backend"] == "stateful"
    assert eng.lane_settings("baseline") == {"backend": "stateful", "scheduler": None}
    with pytest.raises(EngineError, match="unknown baseline backend 'cb'; use paged or stateful"):
        Engine(qwen2_pair, baseline_backend="cb")


def test_exact_turns_dynamic_quantization_off_on_the_target_only(qwen2_pair, engine):
    """--exact: the target's compile properties switch dynamic activation quantization off (the one-token vs
    multi-token rounding difference); the draft keeps the fast default; the lanes still give the same tokens."""
    assert "DYNAMIC_QUANTIZATION_GROUP_SIZE" not in engine.properties and engine.settings()["exact"] is False
    assert engine.draft_properties == engine.properties
    eng = Engine(qwen2_pair, exact=True)
    assert eng.properties["DYNAMIC_QUANTIZATION_GROUP_SIZE"] == "0" and eng.settings()["exact"] is True
    assert eng.draft_properties == engine.properties  # the default, DQ on
    base = eng.generate(Request(PROMPT, max_new_tokens=20))
    spec = eng.generate(Request(PROMPT, lane="speculative", max_new_tokens=20))
    assert spec.tokens == base.tokens and spec.drafted > 0
    # explicit properties win over exact
    assert Engine(qwen2_pair, exact=True, properties={"KV_CACHE_PRECISION": "f32"}).properties == \
        {"KV_CACHE_PRECISION": "f32"}


@pytest.mark.parametrize("lane", ["baseline", "speculative"])
def test_a_shared_prefix_is_read_once(engine, lane):
    """Prefix caching on both sides of the agent's Compare: the second and third tasks after a long shared
    text start far sooner than the first (the stateful backend reads the whole prompt every time)."""
    shared = " ".join(f"{lane}-note-{i}" for i in range(600))  # ~3000 tokens no other test sends
    ttft = [engine.generate(Request(f"{shared}\n\nTask {t}: summarize the notes.", lane=lane,
                                    max_new_tokens=2)).ttft_ms for t in "ABC"]
    assert max(ttft[1:]) < ttft[0] / 3, ttft


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


def test_pipeline_instances_keep_their_prefix_caches_apart(engine):
    """The bench's lanes with one draft and different k: each reads every prompt itself, as the baseline does."""
    shared = " ".join(f"instance-note-{i}" for i in range(600))

    def ttft(instance: str) -> float:
        return engine.generate(Request(f"{shared}\n\nSummarize.", lane="speculative", num_assistant_tokens=2,
                                       max_new_tokens=2, pipeline_instance=instance)).ttft_ms

    first_a, second_a, first_b = ttft("a"), ttft("a"), ttft("b")
    assert engine.pipeline("speculative", engine.drafts[0], "a") is not engine.pipeline("speculative",
                                                                                       engine.drafts[0], "b")
    assert second_a < first_a / 3 and second_a < first_b / 3, (first_a, second_a, first_b)


@pytest.mark.parametrize("asked", [1, 2])
def test_a_short_drafted_request_leaves_the_draft_working(engine, asked):
    """GenAI never runs the draft of a request that ends within its first steps but keeps the draft's blocks
    of its prompt: the next drafted request on that prefix had every candidate rejected. The engine therefore
    lets a drafted request write a few tokens more than asked and returns only those asked for."""
    shared = " ".join(f"short-{asked}-note-{i}" for i in range(200))  # several 256-token prefill chunks

    def ask(task: str, n: int):
        return engine.generate(Request(f"{shared}\n\n{task}", lane="speculative", num_assistant_tokens=3,
                                       max_new_tokens=n, pipeline_instance=f"short-{asked}"))

    short = ask("Summarize the notes.", asked)
    assert len(short.tokens) == asked and short.text == engine.generate(
        Request(f"{shared}\n\nSummarize the notes.", max_new_tokens=asked)).text
    after, again = ask("List the notes.", 40), ask("List the notes.", 40)
    assert after.cached_tokens > 512
    rates = [r.acceptance_rate or 0 for r in (after, again)]  # None: GenAI counted no drafted token at all
    assert rates[1] > 0.5 and rates[0] >= rates[1] - 0.1, rates


@pytest.mark.parametrize("k,n", [(4, 40), (3, 17)])
def test_per_position_acceptance_agrees_with_the_steps(engine, k, n):
    res = engine.generate(Request(PROMPT, lane="speculative", max_new_tokens=n, num_assistant_tokens=k))
    share, steps = res.per_position_acceptance, res.per_position_steps
    assert len(share) == k and 0 < steps < res.steps
    # recount from the per-step record: the steps after the first that had room for k drafts and one more token
    done, counted = res.step_counts[0], []
    for acc, count in zip(res.step_accepted[1:], res.step_counts[1:]):
        if n - done > k:
            counted.append(acc)
        done += count
    assert steps == len(counted)
    assert share == pytest.approx([sum(a >= pos for a in counted) / len(counted) for pos in range(1, k + 1)])
    assert share == sorted(share, reverse=True)  # a k-th accepted draft means the (k-1)-th was accepted too
    assert sum(share) == pytest.approx(sum(counted) / len(counted))  # the mean accepted drafts per step
    assert sum(counted) <= sum(res.step_accepted)


def test_position_acceptance_leaves_out_steps_the_length_cap_decided():
    # max 10 tokens: the first step 1, then steps of 4 (3 accepted) and 4 (3 accepted) and 1 token of room
    assert position_acceptance([0, 3, 3, 0], [1, 4, 4, 1], gamma=3, max_new_tokens=10) == ([2, 2, 2], 2)
    # max 6: steps of 1, 2 (1 accepted), 1 (none), 2 (1 accepted): the last had room for 2 tokens, not 2 + 1
    assert position_acceptance([0, 1, 0, 1], [1, 2, 1, 2], gamma=2, max_new_tokens=6) == ([1, 0], 2)
    assert position_acceptance([0], [1], gamma=2, max_new_tokens=5) == ([0, 0], 0)


def test_threshold_and_prompt_lookup_have_no_per_position_figure(engine):
    conf = engine.generate(Request(PROMPT, lane="speculative", max_new_tokens=12, assistant_confidence_threshold=0.5))
    look = engine.generate(Request(PROMPT, lane="prompt-lookup", max_new_tokens=12, num_assistant_tokens=3))
    base = engine.generate(Request(PROMPT, max_new_tokens=4))
    assert conf.per_position_acceptance is None and look.per_position_acceptance is None
    assert base.per_position_acceptance is None


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
    (Request("hi " * 9000, max_new_tokens=100), "exceeds the context of"),
])
def test_bad_requests_get_clear_messages(engine, req, msg):
    with pytest.raises(EngineError, match=msg):
        engine.generate(req)


def test_sampling_on_baseline_is_labelled(engine):
    res = engine.generate(Request(PROMPT, max_new_tokens=8, do_sample=True))
    assert res.sampled and len(res.tokens) == 8


def test_the_longest_allowed_context_fits_the_fixed_kv_cache(engine):
    """The KV cache has a fixed size (request.scheduler): a prompt that fills the allowed context is served by
    both lanes, and one token more is refused with a message instead of GenAI dropping the request."""
    assert engine.scheduler["num_kv_blocks"] > 0 and engine.scheduler["max_num_batched_tokens"] == 256
    tok = engine.tokenizer()
    base = engine.encode(Request("hi"))
    filler = engine.max_context - len(base) - 8 - 16
    prompt = "hi" + " hi" * filler
    n = len(engine.encode(Request(prompt, max_new_tokens=8)))
    assert engine.max_context - 40 <= n + 8 <= engine.max_context, (n, tok)
    for lane in ("baseline", "speculative"):
        res = engine.generate(Request(prompt, lane=lane, max_new_tokens=8))
        assert len(res.tokens) == 8
    with pytest.raises(EngineError, match="exceeds the context"):
        engine.generate(Request(prompt + " hi" * 64, max_new_tokens=8))


def test_at_most_keep_pipelines_stay_loaded(qwen2_pair):
    """Trying lane after lane does not stack up copies of the target: the least recently used goes, never the
    baseline."""
    eng = Engine(qwen2_pair, keep_pipelines=2)
    for lane in ("baseline", "speculative", "prompt-lookup"):
        eng.generate(Request("Write a function", lane=lane, max_new_tokens=4))
    assert sorted(k[0] for k in eng.loaded()) == ["baseline", "prompt-lookup"]
    eng.generate(Request("Write a function", lane="speculative", max_new_tokens=4))
    assert sorted(k[0] for k in eng.loaded()) == ["baseline", "speculative"]
    assert "memory" in eng.memory() and "GB" in eng.memory()


def test_a_background_run_gives_way(engine):
    """The booth's attract loop runs in the background: another run cancels it at its next step and goes next,
    and a background run does not start while the engine is busy."""
    import threading

    bg = engine.start(Request("Write a long story about a dragon", max_new_tokens=200, background=True))
    it = iter(bg)
    next(it)  # the background run holds the engine
    assert engine.busy()
    done = {}
    t = threading.Thread(target=lambda: done.setdefault("res", engine.generate(Request("hi", max_new_tokens=4))))
    t.start()
    for _ in it:
        pass
    t.join(timeout=60)
    assert bg.result.cancelled and len(bg.result.tokens) < 200
    assert len(done["res"].tokens) == 4
    with engine._lock:  # busy: a background run refuses to start
        with pytest.raises(EngineError, match="busy"):
            engine.generate(Request("hi", max_new_tokens=4, background=True))
