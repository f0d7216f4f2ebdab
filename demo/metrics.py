"""Pure functions behind every number the demo shows. Times are in seconds unless a name says ms."""
from __future__ import annotations

from collections.abc import Sequence


def ttft_ms(start: float, first_token_time: float) -> float:
    """Time to first token: from the generate call to the first streamed token, in ms."""
    return (first_token_time - start) * 1000.0


def tpot_ms(token_times: Sequence[float], n_tokens: int) -> float | None:
    """Time per output token after the first: (last - first token time) / (tokens - 1), in ms."""
    if n_tokens < 2 or not token_times:
        return None
    return (token_times[-1] - token_times[0]) * 1000.0 / (n_tokens - 1)


def tokens_per_second(n_tokens: int, seconds: float) -> float | None:
    """Throughput over a span; None for an empty span."""
    return n_tokens / seconds if seconds > 0 else None


def tokens_per_second_after_first(token_times: Sequence[float], n_tokens: int) -> float | None:
    """Decode throughput without TTFT: tokens after the first over the time after the first token."""
    if n_tokens < 2 or not token_times:
        return None
    return tokens_per_second(n_tokens - 1, token_times[-1] - token_times[0])


def tokens_per_step(n_tokens: int, steps: int) -> float | None:
    """Mean tokens a decode step of the target produces; the first (prefill) step and its token are excluded."""
    if steps < 2:
        return None
    return (n_tokens - 1) / (steps - 1)


def acceptance_rate(accepted: int, drafted: int) -> float | None:
    """Share of drafted tokens that the target accepted."""
    return accepted / drafted if drafted > 0 else None


def cost_ratio(draft_ms_per_token: float | None, target_ms_per_token: float | None) -> float | None:
    """c: the cost of one draft token over the cost of one ordinary target decode step."""
    if not draft_ms_per_token or not target_ms_per_token:
        return None
    return draft_ms_per_token / target_ms_per_token


def expected_tokens_per_step(alpha: float, gamma: float) -> float:
    """E[tokens per step] = (1 - a^(g+1)) / (1 - a) for i.i.d. per-token acceptance a (Leviathan et al. 2023)."""
    if alpha >= 1.0:
        return gamma + 1.0
    return (1.0 - alpha ** (gamma + 1.0)) / (1.0 - alpha)


def alpha_from_tokens_per_step(tokens_step: float, gamma: float) -> float | None:
    """Invert expected_tokens_per_step by bisection: the per-token acceptance that explains the measured mean."""
    if tokens_step is None or gamma <= 0:
        return None
    if tokens_step >= gamma + 1.0:
        return 1.0
    if tokens_step <= 1.0:
        return 0.0
    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2.0
        if expected_tokens_per_step(mid, gamma) < tokens_step:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2.0


def theoretical_speedup(alpha: float | None, gamma: float, c: float | None) -> float | None:
    """(1 - a^(g+1)) / ((1 - a)(g c + 1)): the speedup if a verification step cost one decode step."""
    if alpha is None or c is None or gamma <= 0:
        return None
    return expected_tokens_per_step(alpha, gamma) / (gamma * c + 1.0)


def speedup(lane_seconds: float | None, baseline_seconds: float | None) -> float | None:
    """Measured speedup: baseline wall time over the lane's, for the same prompt and token count."""
    if not lane_seconds or not baseline_seconds:
        return None
    return baseline_seconds / lane_seconds


def first_divergence(a: Sequence[int], b: Sequence[int]) -> int | None:
    """Index of the first token where two sequences differ (a length difference counts); None if equal."""
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def mean(values: Sequence[float]) -> float | None:
    """Arithmetic mean, None when empty."""
    return sum(values) / len(values) if values else None


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """Number of leading tokens two sequences share."""
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def cached_prefix_tokens(prompt: Sequence[int], earlier: Sequence[Sequence[int]], block: int = 32) -> int:
    """Prompt tokens a paged pipeline with prefix caching reads from its cache instead of computing: the longest
    common prefix c with any earlier sequence whose KV it holds (prompt + generated, less the last token), cut
    to whole `block`-token blocks unless c covers that earlier sequence entirely (its last, partial block is kept
    too), and at most len(prompt) - 1 (the last prompt token is always computed). Derived, not reported by
    OpenVINO GenAI 2026.4 (its block manager restores blocks by hash and does not count them); an upper bound
    where the cache has evicted blocks."""
    best = 0
    for seq in earlier:
        c = common_prefix(prompt, seq)
        if c < len(seq):
            c -= c % block
        best = max(best, c)
    return max(0, min(best, len(prompt) - 1))
