"""Confidence intervals over prompts and the paired comparison of two lanes; pure Python, no OpenVINO.

The prompt is the unit of sampling: a speedup measured on these prompts should hold on other prompts like
them, so every interval resamples prompts (with replacement), never single runs or tokens. Repeats of a prompt
are pooled into that prompt's one figure before resampling.
"""
from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence

LEVEL = 0.95
RESAMPLES = 4000  # on 22 prompts with a 0.2 spread the endpoints moved by < 0.01 between seeds (1000: ~0.015)
SEED = 12  # fixed, so the same measurements always give the same interval


def quantile(sorted_xs: Sequence[float], q: float) -> float:
    """The q-quantile of sorted values, interpolating linearly between order statistics (numpy's default)."""
    pos = (len(sorted_xs) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_xs) - 1)
    return sorted_xs[lo] + (sorted_xs[hi] - sorted_xs[lo]) * (pos - lo)


def bootstrap_ci(n: int, statistic: Callable[[list[int]], float], level: float = LEVEL,
                 resamples: int = RESAMPLES, seed: int = SEED) -> list[float] | None:
    """Percentile bootstrap interval [low, high] of statistic(indices) over n items: draw n indices with
    replacement `resamples` times and take the (1 - level)/2 and (1 + level)/2 quantiles. None for n = 0."""
    if n == 0:
        return None
    rng = random.Random(seed)
    stats = sorted(statistic([rng.randrange(n) for _ in range(n)]) for _ in range(resamples))
    return [quantile(stats, (1 - level) / 2), quantile(stats, (1 + level) / 2)]


def mean_ci(values: Sequence[float], **kw) -> tuple[float | None, list[float] | None]:
    """The mean and its bootstrap interval."""
    if not values:
        return None, None
    return sum(values) / len(values), bootstrap_ci(len(values), lambda ix: sum(values[i] for i in ix) / len(ix), **kw)


def ratio_of_rates_ci(tokens_a: Sequence[float], seconds_a: Sequence[float], tokens_b: Sequence[float],
                      seconds_b: Sequence[float], **kw) -> tuple[float | None, list[float] | None]:
    """(sum tokens_a / sum seconds_a) / (sum tokens_b / sum seconds_b) over the same prompts, the aggregate
    tokens/s ratio, and its interval when whole prompts are resampled."""
    def stat(ix: Sequence[int]) -> float:
        rate_a = sum(tokens_a[i] for i in ix) / sum(seconds_a[i] for i in ix)
        rate_b = sum(tokens_b[i] for i in ix) / sum(seconds_b[i] for i in ix)
        return rate_a / rate_b

    n = len(tokens_a)
    if n == 0 or not all(s > 0 for s in (*seconds_a, *seconds_b)) or not sum(tokens_b):
        return None, None
    return stat(range(n)), bootstrap_ci(n, stat, **kw)


def geometric_mean(values: Sequence[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


def verdict(ci: Sequence[float] | None, a: str, b: str, level: float = LEVEL) -> str:
    """A plain sentence from the interval of speed(a) / speed(b)."""
    if ci is None:
        return "no data"
    if ci[0] > 1:
        return f"{a} is faster"
    if ci[1] < 1:
        return f"{b} is faster"
    return f"no decision at {level:.0%}"


def paired_comparison(speeds_a: Sequence[float], speeds_b: Sequence[float], a: str = "A", b: str = "B",
                      **kw) -> dict:
    """Lane a against lane b on the same prompts: the geometric mean of the per-prompt ratios
    speed_a / speed_b (so that comparing b with a gives exactly the reciprocal), its bootstrap interval over
    prompts, and the verdict. Prompts without a positive speed in both lanes are left out."""
    ratios = [x / y for x, y in zip(speeds_a, speeds_b) if x and y and x > 0 and y > 0]
    if not ratios:
        return {"a": a, "b": b, "ratio": None, "ratio_ci": None, "prompts": 0, "verdict": "no data"}
    ci = bootstrap_ci(len(ratios), lambda ix: geometric_mean([ratios[i] for i in ix]), **kw)
    level = kw.get("level", LEVEL)
    return {"a": a, "b": b, "ratio": geometric_mean(ratios), "ratio_ci": ci, "prompts": len(ratios),
            "a_faster_on": sum(r > 1 for r in ratios), "verdict": verdict(ci, a, b, level)}
