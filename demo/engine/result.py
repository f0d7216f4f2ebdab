"""The summary of one run: every number the race, the agent and the bench show, from one place."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from demo import metrics

if TYPE_CHECKING:
    from demo.engine.request import Request


@dataclass
class RunResult:
    lane: str
    draft: str | None
    prompt_tokens: int
    tokens: list[int]
    text: str
    steps: int
    seconds: float
    ttft_ms: float | None
    tpot_ms: float | None
    tokens_per_second: float | None
    tokens_per_second_after_first: float | None
    tokens_per_step: float | None
    accepted: int | None
    drafted: int | None
    acceptance_rate: float | None
    gamma: float | None
    alpha: float | None
    draft_ms_per_token: float | None
    target_ms_per_step: float | None
    target_ms_per_token: float | None  # ordinary decode step cost, from a baseline run of this engine
    c: float | None
    theoretical_speedup: float | None
    cancelled: bool
    sampled: bool
    step_times: list[float] = field(default_factory=list)
    step_counts: list[int] = field(default_factory=list)
    step_accepted: list[int] = field(default_factory=list)
    # position k (1..gamma, position 1 first): the share of drafting steps whose k-th draft token was accepted,
    # and how many steps those shares are over (see position_acceptance); None where it cannot be known
    per_position_acceptance: list[float] | None = None
    per_position_steps: int | None = None
    # prompt tokens read from the pipeline's prefix cache (derived: metrics.cached_prefix_tokens); the target's
    # first (prefill) step in ms from GenAI's raw metrics, and on the speculative lane the rest of the time to the
    # first token, the draft's prefill and first drafts (GenAI's draft metrics hold no usable prefill step)
    cached_tokens: int | None = None
    prefill_ms: float | None = None
    draft_prefill_ms: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def summarize(req: Request, ids, tokens, text, times, counts, acc, seconds, res, cancelled,
              target_ms_per_token: float | None, cached_tokens: int | None = None) -> RunResult:
    """The RunResult of a finished run, from its per-step record and GenAI's perf metrics."""
    n, steps = len(tokens), len(times)
    accepted = drafted = draft_ms = target_step_ms = None
    per_position = per_position_steps = None
    gamma = alpha = theory = c = None
    ext = getattr(res, "extended_perf_metrics", None)
    raw_main = res.perf_metrics.raw_metrics
    prefill_ms, draft_prefill_ms = _first(raw_main.m_times_to_first_token), None
    if req.lane == "speculative" and ext is not None and hasattr(ext, "main_model_metrics"):
        # GenAI's speculative pipeline records every step of the target, the first (prefill) one included
        prefill_ms = _first(ext.main_model_metrics.raw_metrics.m_durations)
        if prefill_ms is not None and times:
            draft_prefill_ms = max(times[0] * 1000.0 - prefill_ms, 0.0)
    if req.lane == "baseline":
        target_step_ms = _decode_step_ms(raw_main)
        if target_step_ms and not req.do_sample:
            target_ms_per_token = target_step_ms
    else:
        accepted = sum(acc)
        if ext is not None and hasattr(ext, "get_num_accepted_tokens"):
            # GenAI's own pair, so accepted <= drafted holds; it leaves out the last step when
            # max_new_tokens cuts it, so it can be lower than the per-step counts the UI colours.
            accepted = int(ext.get_num_accepted_tokens())
            drafted = int(ext.get_num_draft_tokens())
            draft_us = list(ext.draft_model_metrics.raw_metrics.m_durations)
            draft_n = int(ext.draft_model_metrics.get_num_generated_tokens())
            target_step_ms = _decode_step_ms(ext.main_model_metrics.raw_metrics)
            if draft_us and draft_n:
                draft_ms = sum(draft_us[1:]) / 1000.0 / max(draft_n - 1, 1)
        else:  # prompt lookup reports no drafted count: steps without an n-gram match draft nothing
            target_step_ms = _decode_step_ms(raw_main)
        gamma = req.gamma
        if gamma is None and steps > 1 and drafted:  # confidence threshold: mean drafted per step
            gamma = drafted / (steps - 1)
        tps = metrics.tokens_per_step(n, steps)
        alpha = metrics.alpha_from_tokens_per_step(tps, gamma) if gamma else None
        # n-gram lookup in the prompt costs next to nothing next to a model step
        c = 0.0 if req.lane == "prompt-lookup" else metrics.cost_ratio(draft_ms, target_ms_per_token)
        theory = metrics.theoretical_speedup(alpha, gamma or 0, c)
        # Only a fixed draft length says how many tokens each step drafted. With a confidence threshold the
        # draft stops early when unsure, and prompt lookup drafts nothing without an n-gram match; GenAI reports
        # only their total drafted count, so a step with k-1 accepted tokens may have drafted k or k-1 tokens
        # and the share among steps that drafted at least k is unknowable: None.
        if req.lane == "speculative" and req.gamma:
            hits, per_position_steps = position_acceptance(acc, counts, req.gamma, req.max_new_tokens)
            per_position = [h / per_position_steps for h in hits] if per_position_steps else None
    return RunResult(
        lane=req.lane, draft=req.draft, prompt_tokens=len(ids), tokens=tokens, text=text, steps=steps,
        seconds=seconds,
        ttft_ms=metrics.ttft_ms(0.0, times[0]) if times else None,
        tpot_ms=metrics.tpot_ms(times, n),
        tokens_per_second=metrics.tokens_per_second(n, seconds),
        tokens_per_second_after_first=metrics.tokens_per_second_after_first(times, n),
        tokens_per_step=metrics.tokens_per_step(n, steps),
        accepted=accepted, drafted=drafted, acceptance_rate=metrics.acceptance_rate(accepted or 0, drafted or 0),
        gamma=gamma, alpha=alpha, draft_ms_per_token=draft_ms, target_ms_per_step=target_step_ms,
        target_ms_per_token=target_ms_per_token, c=c, theoretical_speedup=theory,
        cancelled=cancelled, sampled=req.do_sample,
        step_times=times, step_counts=counts, step_accepted=acc,
        per_position_acceptance=per_position, per_position_steps=per_position_steps,
        cached_tokens=cached_tokens, prefill_ms=prefill_ms, draft_prefill_ms=draft_prefill_ms)


def position_acceptance(step_accepted: list[int], step_counts: list[int], gamma: int,
                        max_new_tokens: int) -> tuple[list[int], int]:
    """(hits, steps): of `steps` drafting steps, hits[k-1] accepted their k-th draft token, k = 1..gamma.
    Drafting steps are all but the first (prefill) step, less those near the end that had room for fewer
    than gamma + 1 more tokens (gamma drafts and the target's own) before max_new_tokens: there the cut, not
    the target, decides how many drafts survive. One set of steps for every position keeps the shares
    non-increasing in k, and their sum is the mean number of accepted drafts per step."""
    hits, steps = [0] * gamma, 0
    done = step_counts[0] if step_counts else 0
    for accepted, count in zip(step_accepted[1:], step_counts[1:]):
        if max_new_tokens - done > gamma:
            steps += 1
            for k in range(1, gamma + 1):
                hits[k - 1] += int(accepted >= k)
        done += count
    return hits, steps


def _decode_step_ms(raw) -> float | None:
    """Mean duration of a model's steps after the first (prefill) one, in ms, from GenAI's raw metrics."""
    step_us = list(raw.m_durations)[1:]
    return metrics.mean(step_us) / 1000.0 if step_us else None


def _first(values) -> float | None:
    """The first of GenAI's raw durations in ms (its Python API gives them in microseconds), None if none."""
    values = list(values)
    return float(values[0]) / 1000.0 if values else None
