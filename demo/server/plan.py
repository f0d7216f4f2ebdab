"""A chat request checked against the engine and turned into a Plan: the engine Run to iterate and the Reply
that presents its text. Every problem is an ApiError that says what to change (400, 404, 413, 503)."""
from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

from demo import reasoning
from demo.engine import Engine, EngineError, Request, Run
from demo.server.errors import ApiError
from demo.server.replies import Reply
from demo.server.schema import NO_DRAFT, PROMPT_LOOKUP, ChatRequest, Message
from demo.server.tool_calls import forced_tool_lead

# max_tokens when a client gives none: enough for an agent's code step, capped by what the context has left.
DEFAULT_MAX_TOKENS = 1024
MAX_STOPS = 16


def _text(content, where: str) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    parts = []
    for i, part in enumerate(content):
        if part.get("type") != "text" or not isinstance(part.get("text"), str):
            raise ApiError(400, f"{where}.content[{i}]: only text parts are supported", param=f"{where}.content")
        parts.append(part["text"])
    return "".join(parts)


def _arguments(args):
    """OpenAI sends arguments as a JSON string; Qwen's template writes them with tojson, so give it the object."""
    if isinstance(args, str):
        try:
            return json.loads(args)
        except ValueError:
            return args
    return args


def chat_messages(messages: list[Message]) -> list[dict]:
    """OpenAI messages as the dicts a Hugging Face chat template expects."""
    out = []
    for i, m in enumerate(messages):
        d: dict[str, Any] = {"role": "system" if m.role == "developer" else m.role,
                             "content": _text(m.content, f"messages[{i}]")}
        if m.tool_calls:
            d["tool_calls"] = [{"id": c.id or f"call_{j}", "type": "function",
                                "function": {"name": c.function.name, "arguments": _arguments(c.function.arguments)}}
                               for j, c in enumerate(m.tool_calls)]
        if m.tool_call_id:
            d["tool_call_id"] = m.tool_call_id
        out.append(d)
    return out


def resolve_model(engine: Engine, name: str) -> None:
    p = engine.prepared
    if name in (p.preset, p.target.name, p.target_label):
        return
    if name in p.drafts:
        raise ApiError(400, f"{name!r} is a draft model: ask for model {p.preset!r} with \"draft\": {name!r}",
                       param="model")
    raise ApiError(404, f"the model {name!r} does not exist here; this server has {p.preset!r} "
                        f"(GET /v1/models lists it)", param="model", code="model_not_found")


def resolve_lane(engine: Engine, draft: str | None) -> tuple[str, str | None]:
    if draft is None:
        return ("speculative", engine.drafts[0]) if engine.drafts else ("baseline", None)
    if draft == NO_DRAFT:
        return "baseline", None
    if draft == PROMPT_LOOKUP:
        return PROMPT_LOOKUP, None
    if draft in engine.drafts:
        return "speculative", draft
    known = ", ".join([*engine.drafts, PROMPT_LOOKUP, NO_DRAFT])
    raise ApiError(404, f"the draft {draft!r} does not exist here; use one of: {known}", param="draft",
                   code="model_not_found")


def _stops(stop) -> list[str]:
    stops = [stop] if isinstance(stop, str) else list(stop or [])
    if len(stops) > MAX_STOPS:
        raise ApiError(400, f"stop: at most {MAX_STOPS} stop strings", param="stop")
    return [s for s in stops if s]


@dataclass
class Plan:
    """A validated request: the engine Run to iterate and how to present its text."""

    id: str
    model: str
    created: int
    run: Run
    reply: Reply
    include_usage: bool


def plan(engine: Engine, body: ChatRequest) -> Plan:
    """Validate a chat request and turn it into an engine Run; ApiErrors say what is wrong."""
    resolve_model(engine, body.model)
    lane, draft = resolve_lane(engine, body.draft)
    if body.logprobs:
        raise ApiError(400, "logprobs are not supported by this server", param="logprobs")
    if body.response_format and body.response_format.get("type") not in (None, "text"):
        raise ApiError(400, "response_format: only {\"type\": \"text\"} is supported", param="response_format")
    if body.num_assistant_tokens is not None and body.assistant_confidence_threshold is not None:
        raise ApiError(400, "num_assistant_tokens and assistant_confidence_threshold are mutually exclusive",
                       param="num_assistant_tokens")
    stops = _stops(body.stop)
    messages = chat_messages(body.messages)
    tools = [t.model_dump(exclude_none=True) for t in body.tools or []] if body.tool_choice != "none" else []
    lead = forced_tool_lead(body)
    prefill = ""
    if body.continue_final_message:
        if messages[-1]["role"] != "assistant":
            raise ApiError(400, "continue_final_message needs an assistant message last", param="messages")
        if body.add_generation_prompt and "add_generation_prompt" in body.model_fields_set:
            raise ApiError(400, "continue_final_message and add_generation_prompt cannot both be true",
                           param="add_generation_prompt")
        if lead:
            raise ApiError(400, "continue_final_message cannot be combined with a forced tool_choice",
                           param="tool_choice")
        prefill = messages.pop()["content"]
    elif not body.add_generation_prompt:
        raise ApiError(400, "add_generation_prompt false is supported only with continue_final_message",
                       param="add_generation_prompt")
    if not messages:
        raise ApiError(400, "messages: there is nothing before the message to continue", param="messages")
    thinking = bool((body.chat_template_kwargs or {}).get("enable_thinking", False))
    temperature = body.temperature or 0.0
    requested = body.max_completion_tokens or body.max_tokens
    common = dict(lane=lane, draft=draft, num_assistant_tokens=body.num_assistant_tokens,
                  assistant_confidence_threshold=body.assistant_confidence_threshold,
                  max_new_tokens=requested or DEFAULT_MAX_TOKENS, do_sample=temperature > 0,
                  temperature=temperature or 0.7, top_p=body.top_p or 1.0,
                  seed=body.seed if body.seed is not None else secrets.randbelow(2**31), stop=stops or None)
    try:
        tok = engine.tokenizer()
    except EngineError as exc:
        raise ApiError(503, str(exc)) from exc
    extra = {"enable_thinking": thinking} if engine.prepared.thinking else None
    try:
        text = tok.apply_chat_template(messages, add_generation_prompt=True, tools=tools or None,
                                       extra_context=extra)
    except Exception as exc:
        raise ApiError(400, f"the model's chat template cannot render these messages: {exc}",
                       param="messages") from exc
    text += prefill + lead
    if tools:  # the engine's chat path has no tools argument: give it the rendered prompt
        req = Request(prompt=text, chat=False, **common)
    else:
        req = Request(prompt="", messages=messages, chat=True, enable_thinking=thinking, reply_prefix=prefill + lead,
                      **common)
    try:
        run = engine.start(req)
    except EngineError as exc:
        hint = " (here: temperature 0, or \"draft\": \"none\" to sample without a draft)" if req.do_sample else ""
        raise ApiError(400, f"{exc}{hint}") from exc
    n = len(tok.encode(text, add_special_tokens=False).input_ids.data[0])
    ctx = engine.max_context
    if ctx:
        if requested is None:
            req.max_new_tokens = max(1, min(DEFAULT_MAX_TOKENS, ctx - n))
        if n + req.max_new_tokens > ctx:
            raise ApiError(413, f"this model's context is {ctx} tokens, but the request needs "
                                f"{n + req.max_new_tokens} ({n} in the messages, {req.max_new_tokens} for the "
                                f"completion): shorten the messages or max_tokens", param="messages",
                           code="context_length_exceeded")
    echoed = prefill if body.echo else ""
    # a thinking model's reply starts as reasoning when the prompt (or a continued reply) left <think> open
    opens = reasoning.opens_thinking(text) if engine.prepared.thinking else None
    return Plan(id=f"chatcmpl-{secrets.token_hex(12)}", model=body.model, created=int(time.time()), run=run,
                reply=Reply(stops, lead=echoed + lead, tools=bool(tools), thinking=opens),
                include_usage=bool(body.stream_options and body.stream_options.include_usage))
