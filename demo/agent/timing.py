"""Where an agent run's time goes: one ledger per run, by category and by step.

Categories (seconds; with `other_s` they sum to the run's wall time):
  prefill_s  the model reading its prompt: time to the first token of every agent step's generation
  decode_s   the model writing: the rest of every generation
  code_s     the confined process: its start and the model's code (less the searches the code made)
  search_s   web searches, the one made before the first step and those the code made
  shape_s    reading the request's deck shape and checking the saved deck against it (their model calls included)
  render_s   slide previews (the Agent tab renders them after the answer)
  other_s    everything else: smolagents, chat template and tokenizer, the run folder, Python
"""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Callable, Iterator

CATEGORIES = ("prefill_s", "decode_s", "code_s", "search_s", "shape_s", "render_s")
LABELS = {"prefill_s": "prefill", "decode_s": "decode", "code_s": "code (confined process)", "search_s": "web search",
          "shape_s": "deck-shape check", "render_s": "previews", "other_s": "other"}


@dataclass
class ModelCall:
    """One generation of the agent's model."""

    step: int
    lane: str
    prompt_tokens: int
    cached_tokens: int | None  # read from the prefix cache (target; the draft sees the same tokens)
    decode_tokens: int
    prefill_s: float  # to the first token: the prompt's new tokens through the target (and the draft)
    decode_s: float
    tokens_per_step: float | None = None
    acceptance: float | None = None  # accepted / drafted tokens
    target_prefill_ms: float | None = None
    draft_prefill_ms: float | None = None
    looped: bool = False  # cut early as degenerate repetition

    @property
    def new_tokens(self) -> int:
        return self.prompt_tokens - (self.cached_tokens or 0)


class Ledger:
    """Times what an agent run does. `timed(category)` nests: an inner category's time (a search made by the
    model's code) leaves the outer one's (code), so the categories never count a second twice. A model call made
    inside a timed block (the shape reader's) belongs to that block."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.t0 = clock()
        self.step_of: Callable[[], int] = lambda: 0  # the agent's current step (set once the agent exists)
        self.totals = dict.fromkeys(CATEGORIES, 0.0)
        self.by_step: dict[int, dict[str, float]] = {}
        self.code_start_s = 0.0  # part of code_s: starting confined processes
        self.calls: list[ModelCall] = []
        self._open: list[list] = []  # [category, seconds of nested blocks]
        self._lock = threading.Lock()

    def add(self, category: str, seconds: float, step: int | None = None) -> None:
        with self._lock:
            self.totals[category] += seconds
            row = self.by_step.setdefault(self.step_of() if step is None else step, dict.fromkeys(CATEGORIES, 0.0))
            row[category] += seconds

    @contextmanager
    def timed(self, category: str) -> Iterator[None]:
        frame = [category, 0.0]
        start = self.clock()
        self._open.append(frame)
        try:
            yield
        finally:
            elapsed = self.clock() - start
            self._open.remove(frame)
            self.add(category, elapsed - frame[1])
            if self._open:
                self._open[-1][1] += elapsed

    def wrap(self, category: str, fn: Callable) -> Callable:
        """fn, timed under category; keeps fn's name (smolagents names a failed check by it)."""
        def timed_fn(*args, **kwargs):
            with self.timed(category):
                return fn(*args, **kwargs)
        timed_fn.__name__ = getattr(fn, "__name__", "timed")
        return timed_fn

    def model_call(self, call: ModelCall) -> None:
        self.calls.append(call)
        if not self._open:  # inside a timed block (the shape reader's model call) the block counts it
            self.add("prefill_s", call.prefill_s, call.step)
            self.add("decode_s", call.decode_s, call.step)

    def seconds(self) -> float:
        return self.clock() - self.t0

    def breakdown(self, seconds: float | None = None) -> dict:
        """The run's breakdown: the categories and other_s sum to `seconds` (default: time since the start)."""
        seconds = self.seconds() if seconds is None else seconds
        out = {k: round(v, 2) for k, v in self.totals.items()}
        out["other_s"] = round(seconds - sum(self.totals.values()), 2)
        out.update(tokens(self.calls))
        out["code_start_s"] = round(self.code_start_s, 2)
        out["model_calls"] = len(self.calls)
        return out

    def step_line(self, step: int) -> str:
        """One line for the trace: what this step's time went to."""
        row = self.by_step.get(step, {})
        calls = [c for c in self.calls if c.step == step]
        parts = []
        for c in calls:
            cached = f", {c.cached_tokens:,} from cache" if c.cached_tokens else ""
            parts.append(f"prompt {c.prompt_tokens:,} tokens{cached}: prefill {c.prefill_s:.1f} s")
            rate = c.decode_tokens / c.decode_s if c.decode_s > 0 else 0.0
            line = f"wrote {c.decode_tokens} tokens in {c.decode_s:.1f} s ({rate:.1f}/s"
            if c.tokens_per_step:
                line += f", {c.tokens_per_step:.2f} per step"
            if c.acceptance is not None:
                line += f", {c.acceptance:.0%} of drafts accepted"
            parts.append(line + ")" + (", cut: it was repeating itself" if c.looped else ""))
        for key in ("code_s", "search_s", "shape_s"):
            if row.get(key, 0) >= 0.05:
                parts.append(f"{LABELS[key]} {row[key]:.1f} s")
        return " · ".join(parts) or "no model call"


def tokens(calls: list[ModelCall]) -> dict:
    """Token totals over model calls: prompt tokens, those read from the prefix cache, and written tokens."""
    return {"prompt_tokens": sum(c.prompt_tokens for c in calls),
            "cached_tokens": sum(c.cached_tokens or 0 for c in calls),
            "decode_tokens": sum(c.decode_tokens for c in calls)}


def call_from_result(res, step: int, looped: bool = False) -> ModelCall:
    """A ModelCall from the engine's RunResult."""
    first = res.step_times[0] if res.step_times else res.seconds
    return ModelCall(step=step, lane=res.lane, prompt_tokens=res.prompt_tokens, cached_tokens=res.cached_tokens,
                     decode_tokens=len(res.tokens), prefill_s=first, decode_s=max(res.seconds - first, 0.0),
                     tokens_per_step=res.tokens_per_step, acceptance=res.acceptance_rate,
                     target_prefill_ms=res.prefill_ms, draft_prefill_ms=res.draft_prefill_ms, looped=looped)


def calls_json(calls: list[ModelCall]) -> list[dict]:
    return [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in asdict(c).items()} for c in calls]
