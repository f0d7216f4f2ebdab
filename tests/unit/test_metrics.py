"""Metric functions against hand-computed values."""
import math

import pytest

from demo import metrics as m


def test_times():
    assert m.ttft_ms(1.0, 1.25) == pytest.approx(250.0)
    assert m.tpot_ms([1.0, 1.5, 2.0], 5) == pytest.approx(250.0)  # 1 s over 4 tokens after the first
    assert m.tpot_ms([1.0], 1) is None
    assert m.tokens_per_second(10, 2.0) == 5.0 and m.tokens_per_second(3, 0) is None
    assert m.tokens_per_second_after_first([0.5, 1.5], 11) == pytest.approx(10.0)


def test_steps_and_acceptance():
    assert m.tokens_per_step(13, 4) == pytest.approx(4.0)  # prefill step + 3 steps of 4 tokens
    assert m.tokens_per_step(5, 1) is None
    assert m.acceptance_rate(6, 8) == 0.75 and m.acceptance_rate(0, 0) is None
    assert m.cost_ratio(40.0, 120.0) == pytest.approx(1 / 3) and m.cost_ratio(None, 1.0) is None


def test_expected_tokens_and_inverse():
    assert m.expected_tokens_per_step(0.0, 5) == 1.0
    assert m.expected_tokens_per_step(1.0, 5) == 6.0
    assert m.expected_tokens_per_step(0.5, 2) == pytest.approx(1.75)  # 1 + 0.5 + 0.25
    for alpha in (0.1, 0.5, 0.8, 0.95):
        e = m.expected_tokens_per_step(alpha, 4)
        assert m.alpha_from_tokens_per_step(e, 4) == pytest.approx(alpha, abs=1e-9)
    assert m.alpha_from_tokens_per_step(7.0, 5) == 1.0 and m.alpha_from_tokens_per_step(0.9, 5) == 0.0


def test_theoretical_speedup():
    # a = 0.8, g = 4: E = (1 - 0.8^5) / 0.2 = 3.3616; c = 0.1 -> 3.3616 / 1.4
    assert m.theoretical_speedup(0.8, 4, 0.1) == pytest.approx((1 - 0.8 ** 5) / 0.2 / 1.4)
    assert m.theoretical_speedup(None, 4, 0.1) is None and m.theoretical_speedup(0.5, 4, None) is None
    assert m.theoretical_speedup(1.0, 3, 0.0) == 4.0


def test_speedup_and_divergence():
    assert m.speedup(2.0, 3.0) == 1.5 and m.speedup(0, 3.0) is None
    assert m.first_divergence([1, 2, 3], [1, 2, 3]) is None
    assert m.first_divergence([1, 2, 3], [1, 9, 3]) == 1
    assert m.first_divergence([1, 2], [1, 2, 3]) == 2
    assert m.mean([]) is None and math.isclose(m.mean([1, 2]), 1.5)
