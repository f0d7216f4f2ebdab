"""`HF_HUB_OFFLINE=1 python app.py` with the qwen3-8b stand-in in the Hugging Face cache (tests/qwen3_standin.py):
the app picks the preset by itself and shows the thinking toggle; its /v1 routes take `chat_template_kwargs`
through the official `openai` client and return the reasoning apart from `content`, as OVMS and vLLM do.

The weights are random: where a test needs reasoning, the client opens the think block as the start of the reply
(vLLM's continue_final_message) and the real engine continues it."""
from __future__ import annotations

import json
import urllib.request

import pytest
from helpers import launch, stop_app

ASK = [{"role": "user", "content": "Write a function that adds two numbers"}]
THINKING = [*ASK, {"role": "assistant", "content": "<think>\n"}]  # a reply that opens with a think block
CONTINUE = {"continue_final_message": True, "add_generation_prompt": False}


@pytest.fixture(scope="module")
def qwen3_app(qwen3_standin, tmp_path_factory):
    """python app.py with no --preset, offline, the stand-in the only models in its Hugging Face cache."""
    log = tmp_path_factory.mktemp("qwen3-app") / "app.log"
    proc, url = launch(["app.py", "--cache-dir", str(tmp_path_factory.mktemp("cache"))], log, seconds=240,
                       env=qwen3_standin.env())
    yield url.rstrip("/"), log
    stop_app(proc)


def test_qwen3_app_starts_offline_on_the_preset_with_the_thinking_toggle(qwen3_app):
    url, log = qwen3_app
    text = log.read_text()
    assert "preset qwen3-8b chosen by default: qwen3-8b models are in the Hugging Face cache" in text, text[-2000:]
    assert "serving qwen3-8b" in text and "qwen3-0.6b-pruned-6l" in text
    config = json.load(urllib.request.urlopen(f"{url}/config", timeout=30))
    props = [c.get("props", {}) for c in config["components"]]
    toggle = [p for p in props if p.get("label") == "Qwen3 thinking"]
    assert toggle and toggle[0].get("visible") is not False, toggle
    header = [p.get("value") for p in props if "· target `" in str(p.get("value"))]
    assert header and "target `qwen3-8b`" in header[0], header  # the preset's name, not the snapshot's hash


def test_qwen3_race_over_http_with_thinking_on(qwen3_app):
    """The served race with the toggle on: both lanes of the Qwen3 preset run (the panes' thinking box is
    checked in tests/integration/test_qwen3.py, where a reply prefix opens the block)."""
    from gradio_client import Client

    client = Client(qwen3_app[0], verbose=False)
    base, spec, _plot, metrics, _how, message = client.predict(ASK[0]["content"], "qwen3-0.6b", 3, False, 0.4, 16,
                                                               True, "CPU", api_name="/race")
    assert message == "" and "16 tokens in" in base and "16 tokens in" in spec
    assert "speedup" in metrics and "target qwen3-8b, draft qwen3-0.6b" in metrics


def test_qwen3_v1_chat_template_kwargs_and_reasoning_content(qwen3_app):
    from openai import OpenAI

    client = OpenAI(base_url=f"{qwen3_app[0]}/v1", api_key="unused")

    def ask(messages, thinking, **extra):
        return client.chat.completions.create(model="qwen3-8b", messages=messages, max_tokens=8,
                                              extra_body={"chat_template_kwargs": {"enable_thinking": thinking},
                                                          **extra})

    off, on = ask(ASK, False), ask(ASK, True)
    # off: Qwen3's template closes an empty think block (<think>, "\n\n", </think>, "\n\n": 4 tokens); on: it
    # leaves the reply to the model, which does not open one here (random weights): all of it is content
    assert off.usage.prompt_tokens - on.usage.prompt_tokens == 4
    for reply in (off, on):
        msg = reply.choices[0].message
        assert msg.content and msg.model_extra.get("reasoning_content") is None and "<think>" not in msg.content

    opened = ask(THINKING, True, **CONTINUE)
    msg = opened.choices[0].message
    thought = msg.model_extra.get("reasoning_content")
    assert thought and "<think>" not in thought and msg.content == ""  # no </think> yet: all reasoning
    assert opened.usage.completion_tokens == 8

    stream = client.chat.completions.create(model="qwen3-8b", messages=THINKING, max_tokens=8, stream=True,
                                            extra_body={"chat_template_kwargs": {"enable_thinking": True},
                                                        **CONTINUE})
    parts = {"reasoning_content": "", "content": ""}
    for chunk in stream:
        for choice in chunk.choices:
            for key in parts:
                parts[key] += (choice.delta.model_extra or {}).get(key) or getattr(choice.delta, key, None) or ""
    assert parts == {"reasoning_content": thought, "content": ""}  # greedy: the same reply, streamed apart
