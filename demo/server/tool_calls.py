"""Qwen's tool-call format both ways: the start of a forced call written for the model to continue, and the
`<tool_call>{"name": ..., "arguments": {...}}</tool_call>` blocks of a reply parsed into OpenAI tool_calls."""
from __future__ import annotations

import json
import re
import secrets

from demo.server.errors import ApiError
from demo.server.schema import ChatRequest

TOOL_OPEN, TOOL_CLOSE = "<tool_call>", "</tool_call>"  # Qwen's tool-call format (its chat template says so)


def forced_tool_lead(body: ChatRequest) -> str:
    """tool_choice "required" or a named function: the reply is started as that tool call."""
    choice = body.tool_choice
    if choice is None or choice in ("auto", "none"):
        return ""
    if not body.tools:
        raise ApiError(400, "tool_choice needs tools", param="tool_choice")
    if choice == "required":
        return TOOL_OPEN + "\n"
    name = choice.function.get("name")
    if name not in {t.function.name for t in body.tools}:
        raise ApiError(400, f"tool_choice names {name!r}, which is not among the tools", param="tool_choice")
    return f'{TOOL_OPEN}\n{{"name": {json.dumps(name)}, "arguments": '


def parse_tool_calls(text: str) -> tuple[str | None, list[dict]]:
    """Qwen's `<tool_call>{"name": ..., "arguments": {...}}</tool_call>` blocks as OpenAI tool_calls; the rest
    is the content. A block whose JSON does not parse stays in the content, as text."""
    calls, kept, pos = [], [], 0
    decoder = json.JSONDecoder()
    for m in re.finditer(re.escape(TOOL_OPEN) + r"(.*?)(?:" + re.escape(TOOL_CLOSE) + r"|\Z)", text, re.S):
        body = m.group(1).strip()
        try:
            obj, _ = decoder.raw_decode(body)
        except ValueError:
            continue
        if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
            continue
        args = obj.get("arguments", obj.get("parameters", {}))
        calls.append({"id": f"call_{secrets.token_hex(12)}", "type": "function",
                      "function": {"name": obj["name"],
                                   "arguments": args if isinstance(args, str) else json.dumps(args, ensure_ascii=False)}})
        kept.append(text[pos:m.start()])
        pos = m.end()
    if not calls:
        return text, []
    kept.append(text[pos:])
    content = "".join(kept).strip()
    return content or None, calls
