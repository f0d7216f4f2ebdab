"""Where an agent run's time goes (demo/agent/timing.py), the loop guard, derived prefix-cache hits and the
paired agent-bench figures: pure functions, no OpenVINO."""
from __future__ import annotations

import pytest

from demo import metrics
from demo.agent import bench, model, timing


class Clock:
    """A clock the test moves by hand, so the ledger's arithmetic is checked exactly."""

    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_nested_categories_never_count_a_second_twice():
    clock = Clock()
    ledger = timing.Ledger(clock)
    with ledger.timed("code_s"):
        clock.now += 2.0
        with ledger.timed("search_s"):  # a search made by the model's code
            clock.now += 3.0
        clock.now += 1.0
    with ledger.timed("shape_s"):  # the shape reader's own model call belongs to the shape check
        clock.now += 0.5
        ledger.model_call(timing.ModelCall(0, "baseline", 100, 0, 20, prefill_s=0.2, decode_s=0.3))
    ledger.model_call(timing.ModelCall(1, "speculative", 900, 640, 200, prefill_s=1.5, decode_s=8.0))
    clock.now += 10.0
    b = ledger.breakdown()
    assert (b["code_s"], b["search_s"], b["shape_s"], b["prefill_s"], b["decode_s"]) == (3.0, 3.0, 0.5, 1.5, 8.0)
    assert b["other_s"] == pytest.approx(16.5 - 3.0 - 3.0 - 0.5 - 1.5 - 8.0)
    assert sum(b[k] for k in (*timing.CATEGORIES, "other_s")) == pytest.approx(16.5)
    assert (b["prompt_tokens"], b["cached_tokens"], b["decode_tokens"], b["model_calls"]) == (1000, 640, 220, 2)


def test_step_line_names_tokens_cache_and_speed():
    ledger = timing.Ledger(Clock())
    ledger.model_call(timing.ModelCall(2, "speculative", 1234, 1100, 120, prefill_s=0.4, decode_s=6.0,
                                       tokens_per_step=2.5, acceptance=0.61))
    line = ledger.step_line(2)
    assert "prompt 1,234 tokens, 1,100 from cache: prefill 0.4 s" in line
    assert "wrote 120 tokens in 6.0 s (20.0/s, 2.50 per step, 61% of drafts accepted)" in line


def test_cached_prefix_tokens_follows_whole_blocks():
    earlier = [list(range(100))]
    # shares 70 tokens with a 100-token sequence: two whole 32-token blocks
    assert metrics.cached_prefix_tokens(list(range(70)) + [-1] * 30, earlier) == 64
    # covers the earlier sequence entirely: its last, partial block is cached too; the last prompt token never is
    assert metrics.cached_prefix_tokens(list(range(100)) + [7, 8], earlier) == 100
    assert metrics.cached_prefix_tokens(list(range(100)), earlier) == 99
    assert metrics.cached_prefix_tokens([5, 6, 7], []) == 0


def test_repetition_inside_one_line_is_a_loop():
    # the held-out four-slide task: one list literal repeating three short strings until the token cap
    line = 'slides = [("Qwen3", ["Fast", "Open", "Small", ' + '"Fast", "Open", "Small", ' * 6
    assert "\n" not in line and model.is_looping(line)
    # an unrolled deck repeats its structure with new text: not a loop
    deck = "".join(f'    ("Title {i}", ["Point {i}a", "Point {i}b"]),\n' for i in range(6))
    assert not model.is_looping(deck)
    assert not model.is_looping("# " + "-" * 200 + "\n" + " " * 64)  # layout is not a loop
    assert model.is_looping('print("same line again")\n' * 8)  # the whole-line rule still holds


def row(index, draft, seconds, success=True, sha="a", decode_s=5.0, decode_tokens=100):
    return {"agent": "code", "index": index, "draft": draft, "seconds": seconds, "success": success,
            "output_sha": sha, "loops": 0, "budget_spent": False,
            "breakdown": {"decode_s": decode_s, "decode_tokens": decode_tokens}}


def test_paired_figures_over_tasks():
    rows = [row(1, True, 10.0), row(1, False, 12.0), row(2, False, 30.0, sha="x"), row(2, True, 20.0, sha="y"),
            row(3, True, 8.0, success=False), row(3, False, 8.0)]
    p = bench.paired(rows)
    assert p["paired_tasks"] == 3 and p["time_ratio"] == pytest.approx((1.2 + 1.5 + 1.0) / 3, abs=1e-3)
    low, high = p["time_ratio_ci"]
    assert 1.0 <= low <= p["time_ratio"] <= high <= 1.5
    assert (p["pass_rate_draft"], p["pass_rate_plain"]) == (pytest.approx(0.667, abs=1e-3), 1.0)
    # tasks 1 and 3 wrote identical outputs both ways: their ratio measures the draft alone
    assert p["identical_tasks"] == 2 and p["time_ratio_identical"] == pytest.approx(1.1)
    assert p["decode_tokens_per_second_draft"] == 20.0 and p["median_seconds_draft"] == 10.0
