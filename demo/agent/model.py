"""smolagents Models for the agent: EngineModel on the engine in this process (the default), or EndpointModel on
an OpenAI-compatible endpoint (this app's /v1, OpenVINO Model Server, any other) with --agent-backend http."""
from __future__ import annotations

import threading
import time
from typing import Iterator

from smolagents.models import (ChatMessage, ChatMessageStreamDelta, MessageRole, Model, OpenAIServerModel, TokenUsage,
                               get_clean_message_list)

from demo.agent import timing
from demo.engine import Engine, Request
from demo.engine.stream import cut_at_stop  # shared with the /v1 endpoint's replies


def repeats_at_end(text: str, times: int = 4, min_period: int = 8, max_period: int = 160) -> bool:
    """The text ends with the same piece of `min_period`..`max_period` characters written `times` times in a row,
    within a line or across lines: a list literal that repeats the same three strings until max_new_tokens.
    Pieces of one or two distinct characters ("--------", "    ") are layout, not a loop."""
    for period in range(min_period, min(max_period, len(text) // times) + 1):
        piece = text[-period:]
        if len(set(piece)) > 2 and text.endswith(piece * times):
            return True
    return False


def is_looping(text: str, repeats: int = 8) -> bool:
    """A small model under greedy decoding can repeat itself until max_new_tokens: a line of some length seen
    `repeats` times (an unrolled deck repeats its lines once per slide), or the same piece written four times in
    a row at the end (repeats_at_end)."""
    counts: dict[str, int] = {}
    for line in text.splitlines():
        line = line.strip()
        if len(line) > 10:
            counts[line] = counts.get(line, 0) + 1
            if counts[line] >= repeats:
                return True
    return repeats_at_end(text)


class BudgetSpent(Exception):
    """The agent run's wall-clock budget is spent."""


def code_reply_prefix(stops: list[str] | None) -> str:
    """A CodeAgent step (it stops at "</code>") starts the reply inside a code block. Everything a
    CodeAgent does, searching included, is code; a small model otherwise often answers with the deck as
    prose, or with code it forgot to open with "<code>", and smolagents rejects both (docs/performance.md)."""
    return "<code>\n" if "</code>" in (stops or []) else ""


def _as_parts(message):
    """smolagents cleans messages whose content is a list of parts; accept plain strings too."""
    content = message.content if isinstance(message, ChatMessage) else message.get("content")
    if not isinstance(content, str):
        return message
    role = message.role if isinstance(message, ChatMessage) else message["role"]
    return ChatMessage(role=MessageRole(role), content=[{"type": "text", "text": content}])


def slim(messages: list[ChatMessage]) -> list[ChatMessage]:
    """A CodeAgent's history without smolagents' "Calling tools:" messages: each repeats, as a Python repr, the
    code the assistant message before it already holds, so it only adds prompt tokens to read every later step."""
    def text(m):
        c = m.content
        return c if isinstance(c, str) else "".join(p.get("text", "") for p in c or [] if isinstance(p, dict))
    return [m for m in messages if not (m.role == MessageRole.TOOL_CALL and text(m).startswith("Calling tools:"))]


class EngineModel(Model):
    """smolagents Model backed by the engine in this process; draft on or off per instance."""

    def __init__(self, engine: Engine, use_draft: bool = True, max_new_tokens: int = 768, **kwargs):
        super().__init__(flatten_messages_as_text=True, model_id=f"local:{engine.prepared.preset}", **kwargs)
        self.engine, self.use_draft, self.max_new_tokens = engine, use_draft, max_new_tokens
        self.generated_tokens = 0
        self.generation_seconds = 0.0
        self.cancel_event = threading.Event()
        # The "<code>" reply prefix helps only where the task is a deck; a plain question gets room to answer.
        self.code_prefix = True
        self.ledger: timing.Ledger | None = None  # set per run by run_agent: where the time goes
        self.deadline: float | None = None  # time.monotonic() at which the run's budget is spent
        self.loops = 0  # replies cut as degenerate repetition
        self.slim_history = True  # leave out smolagents' "Calling tools:" copy of a CodeAgent step's code
        # Request fields for the drafted lane's agent steps (draft, num_assistant_tokens,
        # assistant_confidence_threshold); empty: the engine's defaults, as the race uses
        self.draft_settings: dict = {}

    @property
    def supports_stop_parameter(self) -> bool:
        return True

    def _request(self, messages, stop_sequences) -> Request:
        messages = [_as_parts(m) for m in messages]
        if self.slim_history and "</code>" in (stop_sequences or []):
            messages = slim(messages)
        clean = get_clean_message_list(messages, role_conversions={MessageRole.TOOL_RESPONSE: MessageRole.USER,
                                                                   MessageRole.TOOL_CALL: MessageRole.ASSISTANT},
                                       flatten_messages_as_text=True)
        chat = [{"role": str(getattr(m["role"], "value", m["role"])), "content": m["content"]} for m in clean]
        lane = "speculative" if self.use_draft and self.engine.drafts else "baseline"
        draft = self.draft_settings if lane == "speculative" else {}
        return Request(prompt="", messages=chat, lane=lane, max_new_tokens=self.max_new_tokens, **draft,
                       stop=list(stop_sequences or []), enable_thinking=False,
                       reply_prefix=code_reply_prefix(stop_sequences) if self.code_prefix else "")

    def generate_stream(self, messages, stop_sequences=None, response_format=None, tools_to_call_from=None,
                        **kwargs) -> Iterator[ChatMessageStreamDelta]:
        run = self._start(self._request(messages, stop_sequences))
        text, first = "", True
        if run.request.reply_prefix:
            yield ChatMessageStreamDelta(content=run.request.reply_prefix)
        for event in run:
            # never stream past a stop sequence, even when it arrives split over two steps
            new = cut_at_stop(text + event.text, stop_sequences)[len(text):]
            text += new
            self._watch(run, text, new)
            usage = TokenUsage(input_tokens=run.prompt_tokens if first else 0,
                               output_tokens=len(event.tokens))
            first = False
            if new:
                yield ChatMessageStreamDelta(content=new, token_usage=usage)
        self._account(run)

    def generate(self, messages, stop_sequences=None, response_format=None, tools_to_call_from=None,
                 **kwargs) -> ChatMessage:
        run = self._start(self._request(messages, stop_sequences))
        text = ""
        for event in run:
            text += event.text
            self._watch(run, text, event.text)
        res = run.result
        self._account(run)
        text = run.request.reply_prefix + cut_at_stop(res.text, stop_sequences)
        return ChatMessage(role=MessageRole.ASSISTANT, content=text,
                           token_usage=TokenUsage(input_tokens=res.prompt_tokens, output_tokens=len(res.tokens)),
                           raw={"lane": res.lane, "tokens_per_second": res.tokens_per_second})

    def _start(self, request: Request):
        if self.deadline is not None and time.monotonic() >= self.deadline:
            raise BudgetSpent("the run's time budget is spent")
        run = self.engine.start(request)
        run.looped = run.out_of_time = False
        return run

    def _watch(self, run, text: str, new: str) -> None:
        """Cancel the generation on Stop, when the budget is spent, or when it repeats itself (the agent sees the
        cut reply and tries again)."""
        if self.cancel_event.is_set():
            run.cancel()
        elif self.deadline is not None and time.monotonic() >= self.deadline:
            run.out_of_time = True
            run.cancel()
        elif not run.looped and new and is_looping(text):
            run.looped = True
            self.loops += 1
            run.cancel()

    def _account(self, run) -> None:
        res = run.result
        self.generated_tokens += len(res.tokens)
        self.generation_seconds += res.seconds
        if self.ledger is not None:
            self.ledger.model_call(timing.call_from_result(res, self.ledger.step_of(), run.looped))
        if run.out_of_time:
            raise BudgetSpent("the run's time budget is spent")


class EndpointModel(OpenAIServerModel):
    """smolagents' OpenAI client model, greedy, on an OpenAI-compatible endpoint. On this app's own endpoint
    (`own`) it starts a CodeAgent's reply inside a code block as EngineModel does, through vLLM's
    continue_final_message and echo fields, and turns the draft off with "draft": "none"; elsewhere (OVMS)
    it sends only standard fields and the server's own draft settings apply."""

    def __init__(self, model_id: str, api_base: str, api_key: str | None = None, own: bool = False,
                 use_draft: bool = True, max_new_tokens: int = 768, thinking: bool = False):
        super().__init__(model_id=model_id, api_base=api_base, api_key=api_key or "unused",
                         client_kwargs={"timeout": 900.0}, temperature=0, max_tokens=max_new_tokens)
        self.own, self.use_draft = own, use_draft
        self.thinking = thinking  # a Qwen3 model: its template thinks unless told not to (OVMS, vLLM)
        self.code_prefix = True  # set per task by run_agent, as on EngineModel
        self.generated_tokens = 0
        self.generation_seconds = 0.0
        self.ledger: timing.Ledger | None = None
        self.deadline: float | None = None  # checked before each call; a call in flight runs to its end
        self.loops = 0

    def prefill(self, stop_sequences: list[str] | None) -> str:
        """The start of the reply, written for the model to continue (own endpoint only)."""
        return code_reply_prefix(stop_sequences) if self.own and self.code_prefix else ""

    def _prepare_completion_kwargs(self, *args, stop_sequences=None, **kwargs) -> dict:
        ck = super()._prepare_completion_kwargs(*args, stop_sequences=stop_sequences, **kwargs)
        extra = {"draft": "none"} if self.own and not self.use_draft else {}
        if self.thinking:  # agent steps are code: thinking would spend their tokens (EngineModel does the same)
            extra["chat_template_kwargs"] = {"enable_thinking": False}
        prefix = self.prefill(stop_sequences)
        if prefix:
            ck["messages"] = [*ck["messages"], {"role": "assistant", "content": prefix}]
            extra.update(continue_final_message=True, add_generation_prompt=False, echo=True)
        if extra:
            ck["extra_body"] = {**ck.get("extra_body", {}), **extra}
        return ck

    def generate(self, messages, stop_sequences=None, response_format=None, tools_to_call_from=None,
                 **kwargs) -> ChatMessage:
        if self.deadline is not None and time.monotonic() >= self.deadline:
            raise BudgetSpent("the run's time budget is spent")
        t0 = time.monotonic()
        msg = super().generate(messages, stop_sequences=stop_sequences, response_format=response_format,
                               tools_to_call_from=tools_to_call_from, **kwargs)
        seconds = time.monotonic() - t0
        self.generation_seconds += seconds
        usage = msg.token_usage
        self.generated_tokens += usage.output_tokens if usage else 0
        if self.ledger is not None:  # an endpoint reports no first-token time: the whole call counts as decode
            self.ledger.model_call(timing.ModelCall(self.ledger.step_of(), "endpoint",
                                                    usage.input_tokens if usage else 0, None,
                                                    usage.output_tokens if usage else 0, 0.0, seconds))
        return msg


# Where the agent's model runs: None for the engine in this process, else EndpointModel's settings.
_endpoint: dict | None = None


def use_endpoint(base_url: str | None, api_key: str | None = None, model_id: str = "", own: bool = False) -> None:
    """Make make_model() build EndpointModels on `base_url` (app.py --agent-backend http); None: the engine."""
    global _endpoint
    _endpoint = None if base_url is None else {"api_base": base_url, "api_key": api_key, "model_id": model_id,
                                               "own": own}


def uses_engine() -> bool:
    """The agent's model is the engine in this process (not an endpoint)."""
    return _endpoint is None


def make_model(engine: Engine, use_draft: bool = True) -> Model:
    """The agent's model for the configured backend."""
    if _endpoint is None:
        return EngineModel(engine, use_draft=use_draft)
    return EndpointModel(use_draft=use_draft, thinking=engine.prepared.thinking, **_endpoint)
