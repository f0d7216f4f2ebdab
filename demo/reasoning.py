"""Qwen3's thinking: a reply may start with a <think>...</think> block, the model's reasoning, before its answer.
One split of a reply into (reasoning, answer) for every front end: the race shows the reasoning as such, the /v1
endpoint returns it as `reasoning_content` apart from `content` (as OVMS's and vLLM's qwen3 reasoning parsers do).
"""
from __future__ import annotations

OPEN, CLOSE = "<think>", "</think>"


def opens_thinking(prompt: str) -> bool:
    """True when the prompt (chat template and reply prefix) ends inside a think block, so the reply starts as
    reasoning: a reply prefix "<think>\\n...", or a template that opens the block itself. Qwen3's template with
    enable_thinking false closes an empty one (<think>\\n\\n</think>\\n\\n): then the reply is all answer."""
    return prompt.rfind(OPEN) > prompt.rfind(CLOSE)


def split(text: str, open_at_start: bool = False) -> tuple[str, str, bool]:
    """(reasoning, answer, still_thinking) of a reply. Without an open block, only a reply that starts with
    <think> has reasoning; text before </think> is reasoning, after it the answer (newlines around the tags,
    which Qwen's template writes itself, trimmed). No </think> yet: all reasoning, still thinking."""
    if not open_at_start:
        head = text.lstrip()
        if not head.startswith(OPEN):  # <think> is one token: a reply never shows half of it
            return "", text, False
        text = head[len(OPEN):]
    end = text.find(CLOSE)
    if end == -1:
        return text.lstrip("\n"), "", True
    return text[:end].strip("\n"), text[end + len(CLOSE):].lstrip("\n"), False


def partial_tag(text: str) -> int:
    """Length of the end of `text` that may still grow into </think> (held back while streaming)."""
    for k in range(min(len(CLOSE) - 1, len(text)), 0, -1):
        if text.endswith(CLOSE[:k]):
            return k
    return 0


def segments(pieces: list[tuple[str, bool]], open_at_start: bool = False) -> list[tuple[str, str, bool]]:
    """Text pieces (text, flag) cut at the think block: (kind, text, flag) with kind "think" for reasoning,
    "answer" for the rest; the tags themselves are left out. Flags (accepted draft tokens) stay with their text."""
    full = "".join(p for p, _ in pieces)
    reasoning_end, answer_start = _bounds(full, open_at_start)
    out: list[tuple[str, str, bool]] = []
    pos = 0
    for text, flag in pieces:
        for kind, lo, hi in (("think", _think_start(full, open_at_start), reasoning_end),
                             ("answer", answer_start, len(full))):
            a, b = max(lo, pos), min(hi, pos + len(text))
            if a < b:
                out.append((kind, text[a - pos:b - pos], flag))
        pos += len(text)
    return out


def _think_start(full: str, open_at_start: bool) -> int:
    if open_at_start:
        return 0
    head = len(full) - len(full.lstrip())
    return head + len(OPEN) if full[head:].startswith(OPEN) else len(full)


def _bounds(full: str, open_at_start: bool) -> tuple[int, int]:
    """(end of the reasoning, start of the answer) as offsets into full."""
    start = _think_start(full, open_at_start)
    if start == len(full) and not open_at_start and not full.lstrip().startswith(OPEN):
        return 0, 0  # no think block: all answer
    end = full.find(CLOSE, start)
    if end == -1:
        return len(full), len(full)
    return end, end + len(CLOSE)
