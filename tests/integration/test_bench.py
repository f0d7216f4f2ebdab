"""The benchmark CLI on the tiny pair: JSON schema, CIs, comparisons, baseline backends, HTML report, bad input."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from demo.bench import run as bench

ROOT = Path(__file__).resolve().parents[2]

LANE_KEYS = {"name", "tokens_per_second", "speedup", "identical_to_baseline", "tokens_per_step",
             "acceptance_rate", "draft_ms_per_token", "target_ms_per_step", "ttft_ms", "per_prompt",
             "speedup_ci", "mean_prompt_speedup", "mean_prompt_speedup_ci", "per_position_acceptance"}
VERDICTS = ("is faster", "no decision at 95%")


def cli(*args):
    return subprocess.run([sys.executable, "-m", "demo.bench", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=900)


def pair_args(pair, d: Path) -> list[str]:
    (draft, path), = pair.drafts.items()
    return ["--target", str(pair.target), "--draft", f"{draft}={path}", "--cache-dir", str(d)]


@pytest.fixture(scope="module")
def report(qwen2_pair, tmp_path_factory):
    d = tmp_path_factory.mktemp("bench")
    prompts = d / "p.jsonl"
    prompts.write_text('{"prompt": "Write a function that adds two numbers"}\n\n{"prompt": "Say hello"}\n')
    (draft, _), = qwen2_pair.drafts.items()
    out = cli(*pair_args(qwen2_pair, d), "--prompts", str(prompts), "--max-new-tokens", "24",
              "--lanes", f"baseline,speculative:{draft},prompt-lookup,speculative@1,speculative@0.5",
              "--num-assistant-tokens", "3", "--settle", "0.5", "--json", str(d / "out.json"),
              "--html", str(d / "out.html"))
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads((d / "out.json").read_text()), out, d


def test_schema(report):
    data, _, _ = report
    assert {"device", "preset", "max_new_tokens", "lanes"} <= set(data)
    assert data["max_new_tokens"] == 24 and data["device"].startswith("CPU") and data["settle_seconds"] == 0.5
    names = [lane["name"] for lane in data["lanes"]]
    assert names == ["baseline", "speculative:qwen2-draft", "prompt-lookup", "speculative@1", "speculative@0.5"]
    for lane in data["lanes"]:
        assert LANE_KEYS <= set(lane)
        assert len(lane["per_prompt"]) == 2
        for p in lane["per_prompt"]:
            assert {"identical", "first_divergence", "speedup"} <= set(p)
            assert p["tokens"] == 24
    base, spec, pl, one, conf = data["lanes"]
    assert spec["gamma"] == 3 and one["gamma"] == 1 and one["tokens_per_step"] <= 2
    assert base["speedup"] == pytest.approx(1.0)
    assert base["tokens_per_step"] is None and base["acceptance_rate"] is None and base["draft_ms_per_token"] is None
    assert spec["speedup"] == pytest.approx(spec["tokens_per_second"] / base["tokens_per_second"])
    assert spec["identical_to_baseline"] == all(p["identical"] for p in spec["per_prompt"])
    assert 0 < spec["acceptance_rate"] <= 1 and spec["tokens_per_step"] > 1 and spec["draft_ms_per_token"] > 0
    assert pl["draft_ms_per_token"] is None and pl["tokens_per_step"] >= 1
    for p in spec["per_prompt"]:
        assert (p["first_divergence"] is None) == p["identical"]
    assert conf["confidence_threshold"] == 0.5 and conf["k"] is None and conf["tokens_per_step"] >= 1


def test_settings_name_the_paged_baseline_and_the_prompts(report):
    data, _, _ = report
    settings = data["settings"]
    assert settings["baseline_backend"] == "paged"  # the default: GenAI's own pipeline for a CPU
    assert settings["scheduler"]["enable_prefix_caching"] is True
    assert data["prompt_set"] == {"file": "p.jsonl", "set": "p", "half": None}
    assert data["command"].startswith("python -m demo.bench ") and "--lanes" in data["command"]
    assert data["ci"]["level"] == 0.95


def test_intervals_and_per_prompt_speedups(report):
    data, _, _ = report
    base, spec, pl, one, conf = data["lanes"]
    assert base["speedup_ci"] == pytest.approx([1, 1]) and base["mean_prompt_speedup"] == pytest.approx(1)
    for lane in (spec, pl, one, conf):
        low, high = lane["speedup_ci"]
        assert low <= lane["speedup"] + 1e-9 and lane["speedup"] <= high + 1e-9
        ratios = [p["speedup"] for p in lane["per_prompt"]]
        for p, b in zip(lane["per_prompt"], base["per_prompt"]):
            assert p["speedup"] == pytest.approx(p["tokens_per_second"] / b["tokens_per_second"])
        assert lane["mean_prompt_speedup"] == pytest.approx(sum(ratios) / len(ratios))
        low, high = lane["mean_prompt_speedup_ci"]
        assert min(ratios) - 1e-9 <= low <= lane["mean_prompt_speedup"] <= high <= max(ratios) + 1e-9


def test_per_position_acceptance(report):
    data, _, _ = report
    base, spec, pl, one, conf = data["lanes"]
    assert base["per_position_acceptance"] is None
    assert pl["per_position_acceptance"] is None and conf["per_position_acceptance"] is None  # not knowable
    assert len(spec["per_position_acceptance"]) == 3 and len(one["per_position_acceptance"]) == 1
    assert all(0 <= x <= 1 for x in spec["per_position_acceptance"] + one["per_position_acceptance"])
    for p in spec["per_prompt"]:
        assert len(p["per_position_acceptance"]) == 3


def test_every_pair_of_drafted_lanes_is_compared(report):
    data, out, _ = report
    pairs = [(c["a"], c["b"]) for c in data["comparisons"]]
    drafted = ["speculative:qwen2-draft", "prompt-lookup", "speculative@1", "speculative@0.5"]
    assert pairs == [(a, b) for i, a in enumerate(drafted) for b in drafted[i + 1:]]
    by_name = {lane["name"]: lane for lane in data["lanes"]}
    for c in data["comparisons"]:
        assert c["prompts"] == 2 and c["ratio_ci"][0] <= c["ratio"] <= c["ratio_ci"][1]
        ratios = [pa["tokens_per_second"] / pb["tokens_per_second"]
                  for pa, pb in zip(by_name[c["a"]]["per_prompt"], by_name[c["b"]]["per_prompt"])]
        assert c["ratio"] == pytest.approx((ratios[0] * ratios[1]) ** 0.5)  # geometric mean
        assert c["verdict"].endswith(VERDICTS)
        assert f"{c['a']} vs {c['b']}: speed ratio" in out.stdout


@pytest.fixture(scope="module")
def stateful(qwen2_pair, tmp_path_factory):
    d = tmp_path_factory.mktemp("bench-stateful")
    prompts = d / "p.jsonl"
    prompts.write_text('{"prompt": "Say hello"}\n{"prompt": "Write a haiku"}\n{"prompt": "Count to three"}\n')
    out = cli(*pair_args(qwen2_pair, d), "--prompts", str(prompts), "--limit", "2", "--max-new-tokens", "12",
              "--lanes", "baseline,speculative@2,speculative@3", "--compare", "speculative@3,speculative@2",
              "--baseline-backend", "stateful", "--repeats", "2", "--settle", "0", "--json", str(d / "out.json"))
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads((d / "out.json").read_text()), out


def test_stateful_baseline_repeats_limit_and_compare(stateful):
    data, out = stateful
    assert data["settings"]["baseline_backend"] == "stateful" and data["prompts"] == 2 and data["limit"] == 2
    for lane in data["lanes"]:
        assert [p["runs"] for p in lane["per_prompt"]] == [2, 2]
        assert [p["tokens"] for p in lane["per_prompt"]] == [24, 24]  # totals over the two repeats
        assert all(len(p["repeat_tokens_per_second"]) == 2 for p in lane["per_prompt"])
        assert lane["speedup_ci"] is not None
    assert [(c["a"], c["b"]) for c in data["comparisons"]] == [("speculative@3", "speculative@2")]
    assert "baseline: the stateful backend; 2 prompts from p.jsonl, 2 repeat(s)" in out.stdout


def test_lane_order_reverses_on_odd_repeats(stateful):
    _, out = stateful
    ran = [line.split(" prompt ", 1)[1].split(": ", 1)[0] for line in out.stderr.splitlines()
           if " prompt " in line and "tokens," in line]
    assert ran == ["1 baseline", "1 speculative@2", "1 speculative@3",
                   "2 baseline", "2 speculative@3", "2 speculative@2",
                   "1 speculative@3", "1 speculative@2", "1 baseline",  # repeat 2: the same rotation, reversed
                   "2 speculative@2", "2 speculative@3", "2 baseline"]


def test_lane_order_rotates_after_the_baseline(report, qwen2_pair):
    _, out, _ = report
    (draft, _), = qwen2_pair.drafts.items()
    ran = {}
    for line in out.stderr.splitlines():  # "[bench] 3/8 prompt 1 prompt-lookup: 24 tokens, ..."
        if " prompt " in line and "tokens," in line:
            idx, name = line.split(" prompt ", 1)[1].split(": ", 1)[0].split(" ", 1)
            ran.setdefault(int(idx), []).append(name)
    spec = f"speculative:{draft}"
    assert ran[1] == ["baseline", spec, "prompt-lookup", "speculative@1", "speculative@0.5"]
    assert ran[2] == ["baseline", "prompt-lookup", "speculative@1", "speculative@0.5", spec]


def test_table_and_html(report):
    _, out, d = report
    assert "speculative:qwen2-draft" in out.stdout and "mean speedup [95% CI]" in out.stdout
    spec_row = next(line for line in out.stdout.splitlines() if line.startswith("speculative:qwen2-draft"))
    assert spec_row.count("[") == 2  # both speedups carry their interval
    assert "[bench]" in out.stderr and "warm-up" in out.stderr
    html = (d / "out.html").read_text()
    assert "plotly" in html.lower() and "tokens per target step" in html and "acceptance by draft position" in html


def test_a_published_run_as_the_pruning_tabs_table(report, tmp_path):
    from demo.bench.report import draft_reports, drafts_markdown

    data, _, d = report
    (tmp_path / "drafts-dev-code.json").write_text(json.dumps(data))
    (tmp_path / "drafts-other.json").write_text(json.dumps({**data, "preset": "another"}))
    (tmp_path / "drafts-broken.json").write_text("{")
    (found,) = draft_reports(data["preset"], tmp_path)
    text = drafts_markdown(found)
    drafted = [lane for lane in data["lanes"] if lane["lane"] == "speculative"]
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| draft")]
    assert len(rows) == len(drafted)  # prompt lookup has no draft model: not a row
    for lane, row in zip(drafted, rows):
        low, high = lane["mean_prompt_speedup_ci"]
        assert f"{lane['mean_prompt_speedup']:.2f}× [{low:.2f}, {high:.2f}]" in row
        assert row.endswith(f"| {lane['identical_prompts']}/2 |")
    assert all(f"{c['a']} vs {c['b']}" in text for c in data["comparisons"]) and "drafts-dev-code.json" in text


def test_lanes_with_k():
    lanes = bench.parse_lanes("baseline,speculative@3,speculative:d@5,prompt-lookup,speculative:d@0.4")
    assert [(s.lane, s.draft, s.k, s.threshold) for s in lanes] == [
        ("baseline", None, None, None), ("speculative", None, 3, None), ("speculative", "d", 5, None),
        ("prompt-lookup", None, None, None), ("speculative", "d", None, 0.4)]


@pytest.mark.parametrize("lanes,msg", [("baseline,turbo", "unknown lane 'turbo'"),
                                       ("baseline:x", "only the speculative lane takes a draft"),
                                       ("baseline@3", "@K takes"), ("speculative@x", "@K takes"),
                                       ("speculative@0", "@K takes"), ("speculative@1.5", "@K takes"),
                                       ("prompt-lookup@0.5", "@K takes"),
                                       ("baseline,speculative@3,speculative@3", "given twice")])
def test_bad_lanes(lanes, msg):
    with pytest.raises(ValueError, match=msg):
        bench.parse_lanes(lanes)


def test_compare_pairs():
    lanes = bench.parse_lanes("baseline,speculative@2,speculative@3,prompt-lookup")
    assert bench.parse_compare(None, lanes) == [("speculative@2", "speculative@3"), ("speculative@2", "prompt-lookup"),
                                                ("speculative@3", "prompt-lookup")]
    assert bench.parse_compare(["speculative@3, baseline"], lanes) == [("speculative@3", "baseline")]
    for bad in ("speculative@3", "speculative@3,speculative@9", "speculative@3,speculative@3"):
        with pytest.raises(ValueError, match="--compare takes two different lane names"):
            bench.parse_compare([bad], lanes)


def test_bad_baseline_backend_and_limit():
    out = cli("--preset", "qwen2.5-coder-1.5b", "--baseline-backend", "cb")
    assert out.returncode == 2 and "invalid choice: 'cb'" in out.stderr
    out = cli("--preset", "qwen2.5-coder-1.5b", "--limit", "0")
    assert out.returncode == 2 and "--limit takes a number of prompts >= 1" in out.stderr


def test_bad_settle():
    out = cli("--preset", "qwen2.5-coder-1.5b", "--settle", "-1")
    assert out.returncode == 2 and "--settle takes 0 to 60 seconds" in out.stderr


def test_bad_prompts_file(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "no prompt field"}\n')
    out = cli("--preset", "qwen2.5-coder-1.5b", "--prompts", str(bad))
    assert out.returncode == 2 and 'bad.jsonl:1: expected a JSON object with a "prompt" field' in out.stderr
