"""A smolagents Model backed by the engine in this process: chat messages in, the engine's greedy reply out."""
from __future__ import annotations

import threading
from typing import Iterator

from smolagents.models import ChatMessage, ChatMessageStreamDelta, MessageRole, Model, TokenUsage, get_clean_message_list

from demo.engine import Engine, Request


def cut_at_stop(text: str, stops: list[str] | None) -> str:
    """Cut the text before the earliest occurrence of any stop sequence."""
    cut = len(text)
    for stop in stops or []:
        i = text.find(stop)
        if stop and i != -1:
            cut = min(cut, i)
    return text[:cut]


def is_looping(text: str, repeats: int = 8) -> bool:
    """A small model under greedy decoding can repeat the same lines until max_new_tokens; a line of
    some length seen `repeats` times is that loop (an unrolled deck repeats its lines once per slide)."""
    counts: dict[str, int] = {}
    for line in text.splitlines():
        line = line.strip()
        if len(line) > 10:
            counts[line] = counts.get(line, 0) + 1
            if counts[line] >= repeats:
                return True
    return False


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


class EngineModel(Model):
    """smolagents Model backed by the engine in this process; draft on or off per instance."""

    def __init__(self, engine: Engine, use_draft: bool = True, max_new_tokens: int = 768, **kwargs):
        super().__init__(flatten_messages_as_text=True, model_id=f"local:{engine.prepared.preset}", **kwargs)
        self.engine, self.use_draft, self.max_new_tokens = engine, use_draft, max_new_tokens
        self.generated_tokens = 0
        self.generation_seconds = 0.0
        self.cancel_event = threading.Event()

    @property
    def supports_stop_parameter(self) -> bool:
        return True

    def _request(self, messages, stop_sequences) -> Request:
        messages = [_as_parts(m) for m in messages]
        clean = get_clean_message_list(messages, role_conversions={MessageRole.TOOL_RESPONSE: MessageRole.USER,
                                                                   MessageRole.TOOL_CALL: MessageRole.ASSISTANT},
                                       flatten_messages_as_text=True)
        chat = [{"role": str(getattr(m["role"], "value", m["role"])), "content": m["content"]} for m in clean]
        lane = "speculative" if self.use_draft and self.engine.drafts else "baseline"
        return Request(prompt="", messages=chat, lane=lane, max_new_tokens=self.max_new_tokens,
                       stop=list(stop_sequences or []), enable_thinking=False,
                       reply_prefix=code_reply_prefix(stop_sequences))

    def generate_stream(self, messages, stop_sequences=None, response_format=None, tools_to_call_from=None,
                        **kwargs) -> Iterator[ChatMessageStreamDelta]:
        run = self.engine.start(self._request(messages, stop_sequences))
        text, first = "", True
        if run.request.reply_prefix:
            yield ChatMessageStreamDelta(content=run.request.reply_prefix)
        for event in run:
            # never stream past a stop sequence, even when it arrives split over two steps
            new = cut_at_stop(text + event.text, stop_sequences)[len(text):]
            text += new
            if self.cancel_event.is_set() or ("\n" in new and is_looping(text)):
                run.cancel()
            usage = TokenUsage(input_tokens=run.prompt_tokens if first else 0,
                               output_tokens=len(event.tokens))
            first = False
            if new:
                yield ChatMessageStreamDelta(content=new, token_usage=usage)
        self._account(run.result)

    def generate(self, messages, stop_sequences=None, response_format=None, tools_to_call_from=None,
                 **kwargs) -> ChatMessage:
        run = self.engine.start(self._request(messages, stop_sequences))
        text = ""
        for event in run:
            text += event.text
            if self.cancel_event.is_set() or ("\n" in event.text and is_looping(text)):
                run.cancel()  # a loop ends the step early; the agent sees the cut reply and tries again
        res = run.result
        self._account(res)
        text = run.request.reply_prefix + cut_at_stop(res.text, stop_sequences)
        return ChatMessage(role=MessageRole.ASSISTANT, content=text,
                           token_usage=TokenUsage(input_tokens=res.prompt_tokens, output_tokens=len(res.tokens)),
                           raw={"lane": res.lane, "tokens_per_second": res.tokens_per_second})

    def _account(self, res) -> None:
        self.generated_tokens += len(res.tokens)
        self.generation_seconds += res.seconds
