"""What the client gets back from a run: the reply text step by step (cut at the stop strings, holding back
what may still become one or a tool call) and the `usage` and `speculative` stats of the finished run."""
from __future__ import annotations

from demo import reasoning
from demo.engine import Run
from demo.engine.stream import cut_at_stop
from demo.server.schema import NO_DRAFT, PROMPT_LOOKUP
from demo.server.tool_calls import TOOL_OPEN, parse_tool_calls


def _partial_tail(text: str, markers: list[str]) -> int:
    """Length of the longest end of `text` that is the start of a marker (it may still become one)."""
    best = 0
    for m in markers:
        for k in range(min(len(m) - 1, len(text)), best, -1):
            if text.endswith(m[:k]):
                best = k
                break
    return best


class Reply:
    """The reply as the client sees it, step by step: the lead (an echoed prefill, or the start of a forced
    tool call) and the generated text cut before the first stop string. While streaming it holds back what
    may still turn into a stop string or, with tools, into a tool call. For a thinking model (`thinking` not
    None: whether the prompt left a think block open) the reasoning goes apart from the content, as
    `reasoning_content` (demo/reasoning.py)."""

    def __init__(self, stops: list[str], lead: str = "", tools: bool = False, thinking: bool | None = None):
        self.stops, self.lead, self.tools = [s for s in stops if s], lead, tools
        self.thinking = thinking
        self.generated = ""
        self.sent = 0  # characters of text() already streamed
        self.reasoning_sent = 0  # characters of the reasoning already streamed

    def _split(self) -> tuple[str, str, bool]:
        """(reasoning, answer, still thinking) of the generated text cut at the stop strings."""
        text = cut_at_stop(self.generated, self.stops)
        return ("", text, False) if self.thinking is None else reasoning.split(text, self.thinking)

    def text(self) -> str:
        return self.lead + self._split()[1]

    def reasoning(self) -> str | None:
        """The whole reasoning (None for a model that does not think)."""
        return None if self.thinking is None else self._split()[0]

    def pop_reasoning(self, final: bool = False) -> str:
        """The reasoning not streamed yet; while the model still thinks, less what may become </think> or a stop
        string, and trailing newlines (trimmed once the block closes)."""
        think, _, still = self._split()
        end = len(think)
        if still and not final:
            end -= max(reasoning.partial_tag(think), _partial_tail(think, [] if self.stopped else self.stops))
            end = len(think[:end].rstrip("\n"))
        out = think[self.reasoning_sent:end] if end > self.reasoning_sent else ""
        self.reasoning_sent += len(out)
        return out

    @property
    def stopped(self) -> bool:
        return len(cut_at_stop(self.generated, self.stops)) < len(self.generated)

    def push(self, delta: str) -> str:
        """Add a step's text; return what may be streamed now."""
        self.generated += delta
        full = self.text()
        end = len(full)
        if self.tools and TOOL_OPEN in full:
            end = full.index(TOOL_OPEN)
        else:
            markers = ([] if self.stopped else self.stops) + ([TOOL_OPEN] if self.tools else [])
            end -= _partial_tail(full, markers)
        out = full[self.sent:end] if end > self.sent else ""
        self.sent += len(out)
        return out

    def finish(self) -> tuple[str | None, list[dict], str]:
        """content, tool_calls, and the part of the content not streamed yet."""
        full = self.text()
        content, calls = parse_tool_calls(full) if self.tools else (full, [])
        streamed = full[:self.sent]
        rest = content[len(streamed):] if content and content.startswith(streamed) else ""
        return content, calls, rest


def _r(x, nd=4):
    return None if x is None else round(x, nd)


def speculative_stats(run: Run) -> dict:
    res, req = run.result, run.request
    draft = req.draft if req.lane == "speculative" else (PROMPT_LOOKUP if req.lane == PROMPT_LOOKUP else NO_DRAFT)
    ppa = [round(a, 4) for a in res.per_position_acceptance] if res.per_position_acceptance else None
    return {"draft": draft, "num_assistant_tokens": req.gamma if req.lane != "baseline" else None,
            "assistant_confidence_threshold": req.assistant_confidence_threshold,
            "drafted": res.drafted, "accepted": res.accepted, "acceptance_rate": _r(res.acceptance_rate),
            "tokens_per_step": _r(res.tokens_per_step), "per_position_acceptance": ppa, "steps": res.steps,
            "ttft_ms": _r(res.ttft_ms, 1), "tokens_per_second": _r(res.tokens_per_second, 3),
            "seconds": _r(res.seconds, 3)}


def usage(run: Run) -> dict:
    res = run.result
    return {"prompt_tokens": res.prompt_tokens, "completion_tokens": len(res.tokens),
            "total_tokens": res.prompt_tokens + len(res.tokens)}
