"""The functions behind the race view, on the tiny pair, without a browser."""
from __future__ import annotations

import time

import pytest

from demo.views import race
from demo.engine import Engine

PROMPT = "Write a function that adds two numbers"


@pytest.fixture(scope="module")
def finished(engine):
    settings = race.Settings(draft=engine.drafts[0], num_assistant_tokens=4, max_new_tokens=40, settle=0.5)
    states, statuses, stamps = [], [], []
    for lanes, done in race.run_race(engine, PROMPT, settings, drafted_first=False):
        states.append((lanes, done))
        statuses.append(tuple(lane.status for lane in lanes))  # lanes are updated in place: snapshot
        stamps.append(time.monotonic())
    settled = [t for s, t in zip(statuses, stamps) if s == ("done", "waiting for the CPU to settle")]
    started = [t for s, t in zip(statuses, stamps) if s == ("done", "running")]
    return settings, states, statuses, started[0] - settled[0]


def test_race_runs_lanes_one_after_the_other(finished):
    settings, states, statuses, pause = finished
    lanes, done = states[-1]
    assert done and [lane.status for lane in lanes] == ["done", "done"]
    base, spec = lanes
    assert base.text == base.result.text and spec.text == spec.result.text
    assert base.totals[-1] == len(base.result.tokens) == 40
    # while the baseline streamed, the drafted lane had not started
    assert ("running", "waiting") in statuses and ("done", "running") in statuses
    assert pause >= settings.settle  # the untimed pause between the lanes, shown as such
    assert any(acc for _, acc in spec.pieces) and any(not acc for _, acc in spec.pieces)
    assert not any(acc for _, acc in base.pieces)


def test_lanes_take_turns_going_first(engine):
    """The lane that runs first pays for what ran before it (a browser drawing the click): races alternate
    which lane goes first, each lane starts after the untimed pause, and the summary shows decode tokens/s."""
    settings = race.Settings(draft=engine.drafts[0], max_new_tokens=8, settle=0.1)
    firsts = []
    for _ in range(2):
        statuses = [tuple(lane.status for lane in lanes) for lanes, _ in race.run_race(engine, PROMPT, settings)]
        running = next(s for s in statuses if "running" in s)
        firsts.append("baseline" if running[0] == "running" else "drafted")
        assert statuses[0] in {("waiting for the CPU to settle", "waiting"), ("waiting", "waiting for the CPU to settle")}
    assert sorted(firsts) == ["baseline", "drafted"]
    lanes, _ = list(race.run_race(engine, PROMPT, settings, drafted_first=True))[-1]
    assert [lane.order for lane in lanes] == [2, 1] and "ran first" in race.lane_html(lanes[1])
    html = race.summary(lanes[0].result, lanes[1].result, engine, settings)
    assert "decode tokens/s" in html and "decoding alone" in html


def test_lane_html_marks_accepted_text_and_escapes(finished):
    _, states, _, _ = finished
    spec = states[-1][0][1]
    out = race.lane_html(spec, legend=True)
    assert out.count('<span class="acc">') == sum(1 for _, acc in spec.pieces if acc) + 1  # + the legend
    lane = race.Lane("x")
    lane.add("<b>&", "<b>", 0.1, 2)
    assert '<span class="acc">&lt;b&gt;</span>&amp;' in race.lane_html(lane)


def test_plot_has_a_trace_per_lane(finished):
    _, states, _, _ = finished
    fig = race.plot(states[-1][0])
    assert [t.name for t in fig.data] == ["baseline", "speculative (qwen2-draft)"]
    assert fig.data[0].y[-1] == 40


def test_summary_reports_speedup_theory_identity(engine, finished):
    settings, states, _, _ = finished
    base, spec = states[-1][0]
    html = race.summary(base.result, spec.result, engine, settings)
    measured = base.result.seconds / spec.result.seconds
    assert f"speedup {measured:.2f}×" in html
    assert "theoretical speedup" in html and "acceptance rate" in html and "tokens per step" in html
    assert ("identical token for token" in html) == (base.result.tokens == spec.result.tokens)
    assert engine.device in html and "qwen2-draft" in html


def test_summary_shows_acceptance_by_draft_position(engine, finished):
    settings, states, _, _ = finished
    base, spec = states[-1][0]
    shares = spec.result.per_position_acceptance
    assert len(shares) == settings.num_assistant_tokens == 4
    row = {label: value for label, _, value in race.metrics_rows(base.result, spec.result)}
    assert row["acceptance by draft position"] == " · ".join(f"{k}: {s * 100:.0f} %" for k, s in enumerate(shares, 1))
    assert "acceptance by draft position" in race.summary(base.result, spec.result, engine, settings)
    assert race.by_position(None) == "–"  # a confidence threshold does not say how many tokens a step drafted


def test_replay_starts_both_lanes_at_zero_and_ends_complete(finished):
    settings, states, _, _ = finished
    rec = race.RaceRecord(PROMPT, settings, states[-1][0])
    frames = list(race.replay_frames(rec, fps=50))
    first, last = frames[0], frames[-1]
    assert all(lane.totals[-1:] in ([], [1]) for lane in first)  # at t=0 at most the first token
    assert [lane.text for lane in last] == [lane.text for lane in rec.lanes]
    assert [lane.status for lane in last] == ["done", "done"]
    # both lanes advance in the same frames: the replay is simultaneous
    assert len(frames) >= 3


def test_how_it_works_plugs_in_numbers(finished):
    spec = finished[1][-1][0][1].result
    text = race.how_it_works(spec)
    assert f"γ = {spec.gamma:.0f}" in text and f"α = {spec.alpha:.2f}" in text


@pytest.mark.parametrize("prompt,draft,msg", [
    ("  ", None, "Type a prompt"),
    ("hi", "nope", "Unknown draft"),
    ("hi " * 9000, None, "exceeds the context of"),
])
def test_validate_bad_input(engine, prompt, draft, msg):
    settings = race.Settings(draft=draft or engine.drafts[0])
    assert msg in race.validate(engine, prompt, settings)


def test_failed_draft_is_reported_in_its_lane(qwen2_pair, tmp_path):
    from demo.catalog import Prepared

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "openvino_model.xml").write_text("<not a model/>")
    eng = Engine(Prepared("t", qwen2_pair.target, {"broken": broken}))
    lanes, done = list(race.run_race(eng, PROMPT, race.Settings(draft="broken", max_new_tokens=8)))[-1]
    assert done and lanes[0].status == "done"
    assert lanes[1].status == "failed" and "could not load the draft 'broken'" in lanes[1].error
    assert "could not load the draft" in race.lane_html(lanes[1])
