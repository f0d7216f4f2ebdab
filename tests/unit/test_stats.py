"""The bench's statistics on data whose answer is known."""
from __future__ import annotations

import math
import random
import statistics

import pytest

from demo.bench import stats


def test_quantile_interpolates_like_numpy():
    xs = [1.0, 2.0, 3.0, 4.0]
    assert stats.quantile(xs, 0) == 1 and stats.quantile(xs, 1) == 4
    assert stats.quantile(xs, 0.5) == pytest.approx(2.5)
    assert stats.quantile(xs, 0.025) == pytest.approx(1.075)


def test_constant_data_has_a_zero_width_interval():
    mean, ci = stats.mean_ci([1.25] * 12)
    assert mean == pytest.approx(1.25) and ci == pytest.approx([1.25, 1.25])


def test_interval_is_reproducible_and_depends_on_the_seed():
    values = [0.9, 1.1, 1.3, 1.2, 0.8, 1.5, 1.0, 1.4]
    assert stats.mean_ci(values) == stats.mean_ci(values)
    assert stats.mean_ci(values, seed=1)[1] != stats.mean_ci(values, seed=2)[1]


def test_mean_interval_matches_the_normal_approximation():
    rng = random.Random(0)
    values = [rng.gauss(1.3, 0.2) for _ in range(200)]
    mean, (low, high) = stats.mean_ci(values)
    half = 1.96 * statistics.stdev(values) / math.sqrt(len(values))
    assert low < mean < high
    assert (high - low) / 2 == pytest.approx(half, rel=0.15)
    assert (low + high) / 2 == pytest.approx(mean, abs=0.2 * half)


def test_one_prompt_and_no_prompts():
    assert stats.mean_ci([2.0]) == (2.0, [2.0, 2.0])
    assert stats.mean_ci([]) == (None, None)
    assert stats.bootstrap_ci(0, lambda ix: 0.0) is None


def test_ratio_of_rates_is_the_aggregate_speedup():
    # lane: 100 tokens in 10 s and 50 in 2 s; baseline: 100 in 20 s and 50 in 5 s -> 150/12 over 150/25
    ratio, (low, high) = stats.ratio_of_rates_ci([100, 50], [10, 2], [100, 50], [20, 5])
    assert ratio == pytest.approx(25 / 12)
    # resamples hold only prompt 1 (2.0x), only prompt 2 (2.5x) or both
    assert 2.0 - 1e-9 <= low <= ratio <= high <= 2.5 + 1e-9


def test_ratio_of_rates_without_time_gives_none():
    assert stats.ratio_of_rates_ci([10], [0.0], [10], [1.0]) == (None, None)
    assert stats.ratio_of_rates_ci([], [], [], []) == (None, None)


def test_paired_comparison_decides_when_one_lane_is_always_faster():
    b = [10.0, 12.0, 8.0, 11.0, 9.0, 10.5]
    a = [x * 1.2 for x in b]
    out = stats.paired_comparison(a, b, "draft A", "draft B")
    assert out["ratio"] == pytest.approx(1.2) and out["ratio_ci"] == pytest.approx([1.2, 1.2])
    assert out["verdict"] == "draft A is faster" and out["prompts"] == 6 and out["a_faster_on"] == 6
    assert stats.paired_comparison(b, a, "draft B", "draft A")["verdict"] == "draft A is faster"


def test_paired_comparison_is_symmetric():
    rng = random.Random(3)
    a = [rng.uniform(8, 12) for _ in range(15)]
    b = [rng.uniform(8, 12) for _ in range(15)]
    ab, ba = stats.paired_comparison(a, b), stats.paired_comparison(b, a)
    assert ab["ratio"] == pytest.approx(1 / ba["ratio"])
    assert ab["ratio_ci"][0] == pytest.approx(1 / ba["ratio_ci"][1], rel=1e-6)  # up to interpolation


def test_paired_comparison_refuses_to_decide_on_noise():
    rng = random.Random(5)
    b = [rng.uniform(8, 12) for _ in range(20)]
    a = [x * (0.9 if i % 2 else 1 / 0.9) for i, x in enumerate(b)]  # as often 10% slower as 10% faster
    out = stats.paired_comparison(a, b, "A", "B")
    assert out["ratio_ci"][0] < 1 < out["ratio_ci"][1]
    assert out["verdict"] == "no decision at 95%"


def test_paired_comparison_skips_prompts_without_a_speed():
    out = stats.paired_comparison([2.0, None, 3.0], [1.0, 1.0, 0.0])
    assert out["prompts"] == 1 and out["ratio"] == pytest.approx(2.0)
    assert stats.paired_comparison([], [])["verdict"] == "no data"
