"""The booth's attract loop without the UI: curated prompts in turn, and the tally of every race since start.

python app.py --booth [--idle N] starts it (demo/views/booth.py): when nobody has used the page for N seconds
the page races the next prompt; any visitor input stops it, and the engine lets any visitor's run go first.
"""
from __future__ import annotations

import itertools
import statistics
import threading
from dataclasses import dataclass, field

from demo import metrics
from demo.prompt_sets import PROMPTS_DIR, load_prompts

PROMPTS = PROMPTS_DIR / "booth.jsonl"  # short code and chat prompts, answered in ~128 tokens
DEFAULT_IDLE_SECONDS = 60.0
MAX_NEW_TOKENS = 128


class Playlist:
    """The curated prompts, one after another, round and round."""

    def __init__(self, prompts: list[str] | None = None):
        self.prompts = prompts or load_prompts(PROMPTS)
        self._next = itertools.cycle(self.prompts)
        self._lock = threading.Lock()

    def next(self) -> str:
        with self._lock:
            return next(self._next)


def seconds_saved(base_tokens_per_second: float | None, spec_tokens: int, spec_seconds: float) -> float | None:
    """What the draft saved on one race: the time the baseline would take for the drafted lane's tokens at its
    own end-to-end speed, minus the drafted lane's time (negative when the draft cost time)."""
    if not base_tokens_per_second:
        return None
    return spec_tokens / base_tokens_per_second - spec_seconds


@dataclass
class Tally:
    """Every race that finished since start (the attract loop's and the visitors')."""

    speedups: list[float] = field(default_factory=list)
    tokens: int = 0
    saved: float = 0.0
    by_loop: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, base, spec, loop: bool = False) -> float | None:
        """Count a race from its two RunResults and return its speedup; a stopped or failed lane does not count
        (None)."""
        if base is None or spec is None or base.cancelled or spec.cancelled:
            return None
        speedup = metrics.speedup(spec.seconds, base.seconds)
        if speedup is None:
            return None
        with self._lock:
            self.speedups.append(speedup)
            self.tokens += len(base.tokens) + len(spec.tokens)
            self.saved += seconds_saved(base.tokens_per_second, len(spec.tokens), spec.seconds) or 0.0
            self.by_loop += bool(loop)
        return speedup

    def summary(self) -> dict:
        with self._lock:
            s = list(self.speedups)
            return {"races": len(s), "by_loop": self.by_loop,
                    "median_speedup": statistics.median(s) if s else None,
                    "min_speedup": min(s) if s else None, "max_speedup": max(s) if s else None,
                    "tokens": self.tokens, "seconds_saved": self.saved}
