"""A Plan answered: one `chat.completion` body, or server-sent `chat.completion.chunk` events, one per target
step that adds text; both end with `usage` and the `speculative` stats."""
from __future__ import annotations

import json
import sys
import traceback
from typing import Any

from demo.engine import EngineError
from demo.server.errors import ApiError
from demo.server.gate import Gate
from demo.server.plan import Plan
from demo.server.replies import speculative_stats, usage


def finish_reason(p: Plan, calls: list) -> str:
    if calls:
        return "tool_calls"
    if p.reply.stopped:
        return "stop"
    res = p.run.result
    return "length" if len(res.tokens) >= p.run.request.max_new_tokens else "stop"


def completion(p: Plan) -> dict:
    """The whole-answer body of a finished run."""
    for event in p.run:
        p.reply.push(event.text)
    content, calls, _ = p.reply.finish()
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if p.reply.thinking is not None:  # a thinking model: its reasoning apart, as OVMS and vLLM return it
        message["reasoning_content"] = p.reply.reasoning() or None
    if calls:
        message["tool_calls"] = calls
    return {"id": p.id, "object": "chat.completion", "created": p.created, "model": p.model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish_reason(p, calls), "logprobs": None}],
            "usage": usage(p.run), "speculative": speculative_stats(p.run)}


def _sse(obj) -> str:
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"


def _chunk(p: Plan, delta: dict, finish: str | None = None, **extra) -> str:
    return _sse({"id": p.id, "object": "chat.completion.chunk", "created": p.created, "model": p.model,
                 "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}], **extra})


_END = object()


async def stream(p: Plan, gate: Gate, ticket: int):
    """Server-sent events: a role chunk, one chunk per target step that adds text, the tool calls, then a
    final chunk with finish_reason, usage and the speculation stats; then [DONE]."""
    import anyio
    import anyio.to_thread

    events = None
    try:
        if not await anyio.to_thread.run_sync(gate.wait, ticket, abandon_on_cancel=True):
            return
        yield _chunk(p, {"role": "assistant", "content": ""})
        events = iter(p.run)
        while (event := await anyio.to_thread.run_sync(next, events, _END)) is not _END:
            delta = p.reply.push(event.text)
            thought = p.reply.pop_reasoning()
            if thought:
                yield _chunk(p, {"reasoning_content": thought})
            if delta:
                yield _chunk(p, {"content": delta})
        _, calls, rest = p.reply.finish()
        thought = p.reply.pop_reasoning(final=True)
        if thought:
            yield _chunk(p, {"reasoning_content": thought})
        if rest:
            yield _chunk(p, {"content": rest})
        if calls:
            yield _chunk(p, {"tool_calls": [{"index": i, **c} for i, c in enumerate(calls)]})
        stats = {"usage": usage(p.run), "speculative": speculative_stats(p.run)}
        # the stats ride on the last chunk: the finish chunk, or with include_usage OpenAI's extra usage chunk
        # (usage on both would be counted twice by clients that add up every chunk's usage, smolagents among them)
        yield _chunk(p, {}, finish_reason(p, calls), **({} if p.include_usage else stats))
        if p.include_usage:
            yield _sse({"id": p.id, "object": "chat.completion.chunk", "created": p.created, "model": p.model,
                        "choices": [], **stats})
        yield "data: [DONE]\n\n"
    except EngineError as exc:  # the stream has begun: the error travels as an event, as OpenAI's do
        yield _sse(ApiError(500, str(exc)).body())
    except Exception:
        traceback.print_exc(file=sys.stderr)
        yield _sse(ApiError(500, "internal server error; the server log has the details").body())
    finally:  # the client may have gone: stop the pipeline, then free the queue
        p.run.cancel()
        if events is not None:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(events.close)
        gate.release(ticket)
