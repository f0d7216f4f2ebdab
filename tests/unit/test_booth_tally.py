"""The attract loop's pure parts: the playlist and the tally since start."""
from __future__ import annotations

from types import SimpleNamespace

from demo import booth
from demo.prompt_sets import load_records


def result(seconds: float, tokens: int, cancelled: bool = False):
    return SimpleNamespace(seconds=seconds, tokens=[0] * tokens, cancelled=cancelled,
                           tokens_per_second=tokens / seconds)


def test_playlist_goes_round_code_and_chat():
    kinds = [r["kind"] for r in load_records(booth.PROMPTS)]
    assert {"code", "chat"} <= set(kinds) and len(kinds) >= 6
    p = booth.Playlist(["a", "b"])
    assert [p.next() for _ in range(5)] == ["a", "b", "a", "b", "a"]


def test_tally_counts_finished_races_only():
    t = booth.Tally()
    assert t.summary()["races"] == 0 and t.summary()["median_speedup"] is None
    assert t.add(result(10, 100), result(8, 100), loop=True) == 1.25
    assert t.add(result(10, 100), result(12.5, 100)) == 0.8
    assert t.add(result(10, 100), result(5, 100)) == 2.0
    assert t.add(result(10, 100), result(3, 40, cancelled=True)) is None  # stopped: not a race
    assert t.add(None, result(3, 40)) is None
    s = t.summary()
    assert s["races"] == 3 and s["by_loop"] == 1
    assert s["median_speedup"] == 1.25 and (s["min_speedup"], s["max_speedup"]) == (0.8, 2.0)
    assert s["tokens"] == 600
    # saved: the baseline's time for the drafted lane's tokens minus the drafted lane's: 2 - 2.5 + 5 s
    assert abs(s["seconds_saved"] - 4.5) < 1e-9


def test_seconds_saved_scales_to_the_drafted_lanes_tokens():
    assert booth.seconds_saved(10.0, 50, 4.0) == 1.0
    assert booth.seconds_saved(None, 50, 4.0) is None
