"""A run in progress: per-step events, incremental decoding and the streamer that feeds them."""
from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterator

from demo.engine.request import Request
from demo.engine.result import RunResult


@dataclass
class StepEvent:
    """What one target step produced. The last token of a speculative step is the target's own."""

    index: int
    tokens: list[int]
    text: str  # decoded text added by this step (may lag one step on a split multi-byte character)
    accepted: int  # accepted draft tokens in this step
    draft_text: str  # the part of `text` that came from accepted draft tokens (a prefix of it)
    t: float  # seconds since the run started (monotonic clock)


class IncrementalDecoder:
    """Turns a growing token list into text deltas, holding back a multi-byte character split across steps."""

    def __init__(self, decode):
        self.decode = decode
        self.tokens: list[int] = []
        self.emitted = ""

    def push(self, tokens: list[int]) -> str:
        self.tokens.extend(tokens)
        full = self.decode(self.tokens)
        if full.endswith("\ufffd") or not full.startswith(self.emitted):
            return ""  # incomplete UTF-8 sequence: wait for the next step
        delta, self.emitted = full[len(self.emitted):], full
        return delta


def cut_at_stop(text: str, stops: list[str] | None) -> str:
    """The text before the earliest occurrence of any stop string (empty ones ignored).

    Request.stop also goes to GenAI (GenerationConfig.stop_strings), which ends the generation there, but on
    whole tokens: a token that holds the stop string in its middle ("Virtual" for "rtu") is kept whole. The
    front ends (the agent's EngineModel, the /v1 endpoint) cut the text at the stop string itself with this."""
    cut = len(text)
    for stop in stops or []:
        i = text.find(stop)
        if stop and i != -1:
            cut = min(cut, i)
    return text[:cut]


class _Streamer:
    """Collects per-step token chunks from the pipeline into a queue and honours cancellation."""

    def __init__(self, ov_genai, out: queue.Queue, cancel: threading.Event, t0: float):
        class Impl(ov_genai.StreamerBase):
            def write(inner, token):
                out.put((time.monotonic() - t0, token if isinstance(token, list) else [token]))
                return ov_genai.StreamingStatus.CANCEL if cancel.is_set() else ov_genai.StreamingStatus.RUNNING

            def end(inner):
                pass

        self.impl = Impl()


class Run:
    """A generation in a background thread; iterate for StepEvents, then read `result`."""

    def __init__(self, request: Request, drive: Callable[[Run], Iterator[StepEvent]]):
        self.request, self._drive = request, drive  # drive: the engine's generation loop for this run
        self.cancel_event = threading.Event()
        self.result: RunResult | None = None
        self.prompt_tokens: int | None = None  # set once the prompt is encoded
        self._queue: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None

    def cancel(self) -> None:
        self.cancel_event.set()

    def __iter__(self) -> Iterator[StepEvent]:
        return self._drive(self)
