"""The endpoint's pure parts: tool-call parsing, the streamed reply's stop and tool hold-back, the FIFO queue,
and who must give an API key. The HTTP side is tests/e2e/test_openai_endpoint.py."""
from __future__ import annotations

import json
import threading
import time

import pytest

from demo import server
from demo.server import ApiError, Gate, Reply, parse_tool_calls


def test_tool_calls_parse_into_openai_shape():
    text = ('Let me check.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n'
            '<tool_call>\n{"name": "get_time", "arguments": {}}\n</tool_call>')
    content, calls = parse_tool_calls(text)
    assert content == "Let me check."
    assert [c["function"]["name"] for c in calls] == ["get_weather", "get_time"]
    assert json.loads(calls[0]["function"]["arguments"]) == {"city": "Paris"}
    assert all(c["type"] == "function" and c["id"].startswith("call_") for c in calls)
    assert len({c["id"] for c in calls}) == 2


def test_tool_call_without_closing_tag_at_the_end_still_parses():
    content, calls = parse_tool_calls('<tool_call>\n{"name": "f", "arguments": {"x": 1}}')
    assert content is None and json.loads(calls[0]["function"]["arguments"]) == {"x": 1}


def test_malformed_tool_call_stays_text():
    text = '<tool_call>\n{"name": "f", "arguments": {"x": </tool_call>'
    assert parse_tool_calls(text) == (text, [])
    assert parse_tool_calls("no tools here") == ("no tools here", [])


def stream_all(reply: Reply, deltas: list[str]) -> str:
    out = "".join(reply.push(d) for d in deltas)
    return out + reply.finish()[2]


def test_reply_never_streams_a_stop_string_split_over_steps():
    reply = Reply(["STOP"])
    parts = [reply.push(d) for d in ["abc S", "TO", "P and more"]]
    assert parts == ["abc ", "", ""]
    assert reply.text() == "abc " and reply.stopped


def test_reply_releases_a_held_back_prefix_that_was_not_a_stop():
    reply = Reply(["STOP"])
    assert reply.push("abc ST") == "abc "
    assert reply.push("ays") == "STays"
    assert not reply.stopped and stream_all(Reply(["STOP"]), ["abc ST", "ays"]) == "abc STays"


def test_reply_with_tools_streams_only_the_text_before_a_tool_call():
    reply = Reply([], tools=True)
    streamed = "".join(reply.push(d) for d in ["Sure. <tool", '_call>\n{"name": "f", ', '"arguments": {}}\n</tool_call>'])
    content, calls, rest = reply.finish()
    assert streamed == "Sure. " and content == "Sure." and rest == ""
    assert calls[0]["function"]["name"] == "f"


def test_reply_lead_is_part_of_the_text_and_of_tool_parsing():
    reply = Reply([], lead='<tool_call>\n{"name": "f", "arguments": ', tools=True)
    assert reply.push('{"a": 2}}\n</tool_call>') == ""
    content, calls, _ = reply.finish()
    assert content is None and json.loads(calls[0]["function"]["arguments"]) == {"a": 2}
    echoed = Reply(["</code>"], lead="<code>\n")
    assert stream_all(echoed, ["x = 1\n", "</code> junk"]) == "<code>\nx = 1\n"


def test_gate_serves_in_arrival_order_and_refuses_past_its_limit():
    gate = Gate(limit=3)
    first = gate.reserve()
    assert gate.wait(first)
    order, threads = [], []
    for name in ("b", "c"):
        ticket = gate.reserve()

        def work(t=ticket, n=name):
            gate.wait(t)
            order.append(n)
            gate.release(t)
        threads.append(threading.Thread(target=work))
    with pytest.raises(ApiError) as full:
        gate.reserve()
    assert full.value.status == 429 and full.value.code == "queue_full"
    for t in reversed(threads):  # started in reverse: the tickets, not the threads, set the order
        t.start()
    time.sleep(0.2)
    assert order == []  # nobody passes the running request
    gate.release(first)
    for t in threads:
        t.join(5)
    assert order == ["b", "c"] and gate.pending == 0


def test_gate_released_while_waiting_returns_false():
    gate = Gate(limit=2)
    first, second = gate.reserve(), gate.reserve()
    got = []
    t = threading.Thread(target=lambda: got.append(gate.wait(second)))
    t.start()
    gate.release(second)  # the client went away while queued
    t.join(5)
    assert got == [False] and gate.wait(first)


def test_api_key_is_required_beyond_loopback():
    assert server.api_key_problem("127.0.0.1", False, None) is None
    assert server.api_key_problem("localhost", False, None) is None
    assert server.api_key_problem("::1", False, None) is None
    assert "--api-key" in server.api_key_problem("0.0.0.0", False, None)
    assert "--share" in server.api_key_problem("127.0.0.1", True, None)
    assert server.api_key_problem("0.0.0.0", True, "k") is None
    assert server.own_base_url("0.0.0.0", 7860) == "http://127.0.0.1:7860/v1"
