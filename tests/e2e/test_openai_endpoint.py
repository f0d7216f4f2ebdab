"""The OpenAI-compatible /v1 routes of the running app (python app.py), driven by the official `openai` client
and by smolagents' OpenAIServerModel, on the tiny pair; and python -m demo.serve's queue limit.

The tiny pair's random weights write gibberish, so where a test needs particular model text (a tool call, an
agent's code) the client writes it as the start of the reply (vLLM's continue_final_message, with echo) and
the real engine continues it: the request, template, generation, parsing and agent run are all real."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from helpers import free_port

ROOT = Path(__file__).resolve().parents[2]
KEY = "test-key-123"
HELLO = [{"role": "user", "content": "Write a function that adds two numbers"}]
PLEASE_CONTINUE = {"continue_final_message": True, "add_generation_prompt": False, "echo": True}



def start(cmd: list[str], ready_url: str, log: Path, headers: dict | None = None, timeout: float = 180):
    """Start a server process and wait until `ready_url` answers 200."""
    out = open(log, "w")
    proc = subprocess.Popen([sys.executable, *cmd], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                            env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(urllib.request.Request(ready_url, headers=headers or {}), timeout=2).close()
            return proc
        except OSError:
            if proc.poll() is not None:
                pytest.fail(f"{cmd[0]} exited: {log.read_text()[-3000:]}")
            time.sleep(1)
    proc.kill()
    pytest.fail(f"{cmd[0]} did not start: {log.read_text()[-3000:]}")


def stop(proc) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


def pair_args(pair, tmp_path_factory) -> list[str]:
    (draft,) = pair.drafts.items()
    return ["--target", str(pair.target), "--draft", f"{draft[0]}={draft[1]}",
            "--cache-dir", str(tmp_path_factory.mktemp("cache"))]


@pytest.fixture(scope="module")
def app(qwen2_pair, tmp_path_factory):
    """python app.py with an API key and the Agent tab on its own /v1: (base URL of /v1, model id)."""
    port = free_port()
    log = tmp_path_factory.mktemp("app") / "app.log"
    proc = start(["app.py", *pair_args(qwen2_pair, tmp_path_factory), "--port", str(port), "--api-key", KEY,
                  "--agent-backend", "http"], f"http://127.0.0.1:{port}/", log)
    yield f"http://127.0.0.1:{port}/v1", qwen2_pair.preset
    stop(proc)


def client(base: str, key: str = KEY):
    import openai

    return openai.OpenAI(base_url=base, api_key=key, max_retries=0, timeout=120)


def stats(obj) -> dict:
    return obj.model_extra["speculative"]


def test_models_lists_the_target_and_its_drafts(app, qwen2_pair):
    base, model = app
    listed = {m.id: m for m in client(base).models.list().data}
    assert set(listed) == {model, *qwen2_pair.drafts}
    target = listed[model].model_extra
    assert target["drafts"] == list(qwen2_pair.drafts) and target["max_model_len"] == 8192
    assert "prompt-lookup" in target["draft_values"] and "none" in target["draft_values"]
    assert all(listed[d].model_extra["parent"] == model for d in qwen2_pair.drafts)


def test_greedy_output_equals_the_engines_whole_and_streamed(app, engine):
    from demo.engine import Request

    base, model = app
    expected = engine.generate(Request("", messages=HELLO, lane="speculative", num_assistant_tokens=3,
                                       max_new_tokens=24))
    api = client(base)
    whole = api.chat.completions.create(model=model, messages=HELLO, max_tokens=24,
                                        extra_body={"num_assistant_tokens": 3})
    assert whole.choices[0].message.content == expected.text
    assert whole.choices[0].finish_reason == "length"
    assert whole.usage.completion_tokens == len(expected.tokens)
    assert whole.usage.prompt_tokens == expected.prompt_tokens
    spec = stats(whole)
    assert spec["draft"] == "qwen2-draft" and spec["num_assistant_tokens"] == 3
    assert 0 <= spec["accepted"] <= spec["drafted"] and 0 <= spec["acceptance_rate"] <= 1
    assert spec["tokens_per_step"] >= 1 and spec["ttft_ms"] > 0 and spec["tokens_per_second"] > 0
    ppa = spec["per_position_acceptance"]
    assert len(ppa) == 3 and all(0 <= a <= 1 for a in ppa) and ppa == sorted(ppa, reverse=True)

    chunks = list(api.chat.completions.create(model=model, messages=HELLO, max_tokens=24, stream=True,
                                              extra_body={"num_assistant_tokens": 3}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == expected.text
    final = chunks[-1]
    assert final.choices[0].finish_reason == "length" and final.usage.completion_tokens == len(expected.tokens)
    steps = stats(final)["steps"]
    content_chunks = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert 1 < len(content_chunks) <= steps < 24  # one chunk per target step, several tokens per step
    assert all(c.id == final.id for c in chunks)
    # with include_usage (smolagents asks for it) usage and stats move to OpenAI's extra last chunk, only there
    chunks = list(api.chat.completions.create(model=model, messages=HELLO, max_tokens=8, stream=True,
                                              stream_options={"include_usage": True}))
    assert [bool(c.usage) for c in chunks].count(True) == 1 and chunks[-1].usage and not chunks[-1].choices
    assert stats(chunks[-1])["draft"] == "qwen2-draft"


def test_other_lanes_name_their_draft(app, engine):
    from demo.engine import Request

    base, model = app
    api = client(base)
    plain = api.chat.completions.create(model=model, messages=HELLO, max_tokens=12, extra_body={"draft": "none"})
    assert plain.choices[0].message.content == engine.generate(
        Request("", messages=HELLO, lane="baseline", max_new_tokens=12)).text
    assert stats(plain)["draft"] == "none" and stats(plain)["accepted"] is None
    lookup = api.chat.completions.create(model=model, messages=HELLO, max_tokens=12,
                                         extra_body={"draft": "prompt-lookup"})
    assert stats(lookup)["draft"] == "prompt-lookup"


def test_stop_string_is_honoured(app, engine):
    from demo.engine import Request

    base, model = app
    full = engine.generate(Request("", messages=HELLO, lane="speculative", max_new_tokens=40)).text
    stop = next(full[i:i + 3] for i in range(8, len(full) - 3) if full[i:i + 3].strip() == full[i:i + 3])
    expected = full[:full.index(stop)]
    api = client(base)
    whole = api.chat.completions.create(model=model, messages=HELLO, max_tokens=40, stop=[stop])
    assert whole.choices[0].message.content == expected and whole.choices[0].finish_reason == "stop"
    streamed = api.chat.completions.create(model=model, messages=HELLO, max_tokens=40, stop=stop, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == expected


WEATHER = [{"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
                                             "parameters": {"type": "object",
                                                            "properties": {"city": {"type": "string"}}}}}]
CALL = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'


def test_tool_call_is_parsed_whole_and_streamed(app):
    base, model = app
    api = client(base)
    ask = [{"role": "user", "content": "Weather in Paris?"}]
    # the tools reach the chat template: its tool section lengthens the prompt
    bare = api.chat.completions.create(model=model, messages=ask, max_tokens=2)
    with_tools = api.chat.completions.create(model=model, messages=ask, max_tokens=2, tools=WEATHER)
    assert with_tools.usage.prompt_tokens > bare.usage.prompt_tokens + 40
    messages = [*ask, {"role": "assistant", "content": CALL}]
    reply = api.chat.completions.create(model=model, messages=messages, tools=WEATHER, max_tokens=3,
                                        extra_body=PLEASE_CONTINUE)
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Paris"}
    chunks = list(api.chat.completions.create(model=model, messages=messages, tools=WEATHER, max_tokens=3,
                                              stream=True, extra_body=PLEASE_CONTINUE))
    calls = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or []]
    assert [(tc.index, tc.function.name) for tc in calls] == [(0, "get_weather")]
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    # the answer goes back as a tool message, the way an agent framework sends it
    follow = [*ask, {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
              {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21 C"}]
    assert api.chat.completions.create(model=model, messages=follow, tools=WEATHER, max_tokens=2).choices


def test_errors_are_openai_json(app):
    import openai

    base, model = app
    with pytest.raises(openai.AuthenticationError) as bad_key:
        client(base, key="wrong").chat.completions.create(model=model, messages=HELLO, max_tokens=2)
    assert bad_key.value.body["code"] == "invalid_api_key"
    api = client(base)
    with pytest.raises(openai.NotFoundError) as no_draft:
        api.chat.completions.create(model=model, messages=HELLO, max_tokens=2, extra_body={"draft": "nope"})
    assert no_draft.value.body["param"] == "draft" and "qwen2-draft" in no_draft.value.body["message"]
    with pytest.raises(openai.NotFoundError):
        api.chat.completions.create(model="gpt-4o", messages=HELLO, max_tokens=2)
    with pytest.raises(openai.APIStatusError) as too_long:
        api.chat.completions.create(model=model, messages=[{"role": "user", "content": "word " * 10_000}])
    assert too_long.value.status_code == 413 and too_long.value.body["code"] == "context_length_exceeded"
    with pytest.raises(openai.BadRequestError) as sampled:
        api.chat.completions.create(model=model, messages=HELLO, max_tokens=2, temperature=0.7)
    assert "4190" in sampled.value.body["message"]
    assert api.chat.completions.create(model=model, messages=HELLO, max_tokens=2, temperature=0.7,
                                       extra_body={"draft": "none"}).choices  # sampling without a draft is fine
    with pytest.raises(openai.BadRequestError) as zero:
        api.chat.completions.create(model=model, messages=HELLO, max_tokens=0)
    assert zero.value.body["param"] == "max_tokens"
    # a body that is not JSON: a 400 in the same shape, no stack trace
    req = urllib.request.Request(f"{base}/chat/completions", data=b"{not json", method="POST",
                                 headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as raw:
        urllib.request.urlopen(req, timeout=30)
    body = raw.value.read().decode()
    assert raw.value.code == 400 and json.loads(body)["error"]["type"] == "invalid_request_error"
    assert "Traceback" not in body


def timed_stream(api, model, max_tokens, record, name, started: threading.Event | None = None):
    """Stream a reply; record when its first text came, when it ended and why."""
    t_first = None
    for c in api.chat.completions.create(model=model, messages=HELLO, max_tokens=max_tokens, stream=True,
                                         extra_body={"draft": "none"}):
        if t_first is None and c.choices and c.choices[0].delta.content:
            t_first = time.monotonic()
            if started:
                started.set()
        last = c
    record[name] = (t_first, time.monotonic(), last.choices[0].finish_reason)


def test_clients_at_once_complete_one_after_another_in_order(app):
    base, model = app
    api, record, started = client(base), {}, threading.Event()
    threads = [threading.Thread(target=timed_stream, args=(api, model, 400, record, "a", started))]
    threads[0].start()
    assert started.wait(60)
    for name in ("b", "c"):  # sent while a runs, b before c
        threads.append(threading.Thread(target=timed_stream, args=(api, model, 60, record, name)))
        threads[-1].start()
        time.sleep(0.3)
    for t in threads:
        t.join(120)
    assert {n: r[2] for n, r in record.items()} == {"a": "length", "b": "length", "c": "length"}
    (_, a_end, _), (b_first, b_end, _), (c_first, _, _) = record["a"], record["b"], record["c"]
    assert a_end <= b_first and b_end <= c_first  # one at a time, in arrival order


def test_race_in_the_ui_and_a_client_share_the_engine(app, qwen2_pair):
    from gradio_client import Client

    base, model = app
    ui = Client(base.removesuffix("/v1") + "/", verbose=False)
    out = {}
    race = threading.Thread(target=lambda: out.setdefault("race", ui.predict(
        "Write a palindrome check", "qwen2-draft", 3, False, 0.4, 32, False, "CPU", api_name="/race")))
    race.start()
    reply = client(base).chat.completions.create(model=model, messages=HELLO, max_tokens=32)
    race.join(120)
    assert reply.choices[0].finish_reason == "length" and "tokens/s" in out["race"][1]


class ScriptedReplies:
    """EndpointModel whose replies start with scripted text (its prefill): the engine behind /v1 continues
    each one for a few tokens, and the echoed reply goes to the CodeAgent as the model's answer."""

    @staticmethod
    def model(base: str, model_id: str, replies: list[str]):
        from demo.agent.model import EndpointModel

        class Scripted(EndpointModel):
            def prefill(self, stop_sequences):
                return replies.pop(0) if "</code>" in (stop_sequences or []) and replies else ""

        return Scripted(model_id, base, KEY, own=True, max_new_tokens=3)


DECK_CODE = """Thought: two slides on speculative decoding, two points each, then save and answer.
<code>
from pptx import Presentation
prs = Presentation()
slides = [("Speculative decoding: the idea", ["A small draft model proposes several tokens",
                                              "The large target model checks them in one step"]),
          ("When speculative decoding pays off", ["The draft agrees with the target most of the time",
                                                  "A draft token costs far less than a target step"])]
for title, points in slides:
    slide = prs.slides.add_slide(prs.slide_layouts[1])
    slide.shapes.title.text = title
    body = slide.placeholders[1].text_frame
    body.text = points[0]
    body.add_paragraph().text = points[1]
prs.save("deck.pptx")
final_answer("Saved deck.pptx: two slides on speculative decoding")
</code>"""


def test_smolagents_openai_model_builds_a_deck_through_the_endpoint(app, engine, tmp_path):
    from demo.agent import run as agent
    from demo.agent.slides import slide_texts

    base, model_id = app
    model = ScriptedReplies.model(base, model_id, [DECK_CODE])
    items = list(agent.run_agent(engine, "Make a two-slide deck about speculative decoding with two bullet "
                                         "points per slide", tmp_path / "run", model=model, search=False,
                                 max_steps=2))
    result = items[-1]
    assert isinstance(result, agent.AgentResult), items
    errors = [it.text for it in result.trace if it.kind == "error"]
    assert result.files and not errors and not result.reached_max_steps, errors
    assert [t for t, _ in slide_texts(Path(result.files[0]))] == ["Speculative decoding: the idea",
                                                                   "When speculative decoding pays off"]
    assert "two slides" in (result.final_answer or "")
    assert model.generated_tokens > 0  # counted from the endpoint's usage


def test_agent_tab_runs_through_the_endpoint(app):
    """The app runs with --agent-backend http: the Agent tab's model is EndpointModel on this app's /v1."""
    from gradio_client import Client

    base, _ = app
    ui = Client(base.removesuffix("/v1") + "/", verbose=False)
    trace, status, *_ = ui.predict("Make a two-slide deck about cats", True, False, 2, "code", api_name="/agent")
    assert "step 1" in trace and "tokens generated" in status
    assert "agent stopped" not in trace and "Error code" not in trace  # no HTTP error from the endpoint


@pytest.mark.slow
def test_agent_tab_builds_a_deck_through_the_endpoint_on_the_offline_pair(tmp_path):
    """The real 1.5B/0.5B pair (prepared in the model cache), a task no prompt was tuned on, through /v1."""
    from gradio_client import Client

    port = free_port()
    proc = start(["app.py", "--preset", "qwen2.5-coder-1.5b", "--port", str(port), "--api-key", KEY,
                  "--agent-backend", "http"], f"http://127.0.0.1:{port}/", tmp_path / "app.log", timeout=900)
    try:
        ui = Client(f"http://127.0.0.1:{port}/", verbose=False)
        trace, status, deck, *_ = ui.predict(
            "Make a three-slide deck on how to review a pull request, two bullet points per slide", True, False, 6,
            "code", api_name="/agent")
        assert deck and Path(deck).suffix == ".pptx", (status, trace[-3000:])
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def serve_one(qwen2_pair, tmp_path_factory):
    """python -m demo.serve (the routes without the UI), admitting one request at a time."""
    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    base = f"http://127.0.0.1:{port}/v1"
    proc = start(["-m", "demo.serve", *pair_args(qwen2_pair, tmp_path_factory), "--port", str(port),
                  "--max-queue", "1"], f"{base}/models", log)
    yield base, qwen2_pair.preset
    stop(proc)


def test_serve_without_ui_refuses_past_its_queue_and_recovers(serve_one):
    import openai

    base, model = serve_one
    api = client(base, key="unused")  # loopback without --api-key: no key needed
    assert model in [m.id for m in api.models.list().data]
    long = api.chat.completions.create(model=model, messages=HELLO, max_tokens=2000, stream=True)
    next(iter(long))  # admitted and running
    with pytest.raises(openai.RateLimitError) as busy:
        api.chat.completions.create(model=model, messages=HELLO, max_tokens=2)
    assert busy.value.body["code"] == "queue_full"
    long.close()  # the client goes away: the server stops that generation and frees the queue
    deadline = time.monotonic() + 30
    while True:
        try:
            reply = api.chat.completions.create(model=model, messages=HELLO, max_tokens=4)
            break
        except openai.RateLimitError:
            assert time.monotonic() < deadline, "the queue was not freed after the client left"
            time.sleep(0.2)
    assert reply.usage.completion_tokens == 4


def test_app_refuses_to_serve_v1_beyond_loopback_without_a_key(qwen2_pair, tmp_path_factory):
    env = {k: v for k, v in os.environ.items() if k != "SPECDEMO_API_KEY"}
    done = subprocess.run([sys.executable, "app.py", *pair_args(qwen2_pair, tmp_path_factory), "--host", "0.0.0.0",
                           "--auth", "user:a-long-password"], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env=env)
    assert done.returncode == 2 and "--api-key" in done.stderr and "Traceback" not in done.stderr
