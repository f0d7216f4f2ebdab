"""The benchmark CLI on the tiny pair: JSON schema, HTML report, bad input."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from demo.bench import run as bench

ROOT = Path(__file__).resolve().parents[2]

LANE_KEYS = {"name", "tokens_per_second", "speedup", "identical_to_baseline", "tokens_per_step",
             "acceptance_rate", "draft_ms_per_token", "target_ms_per_step", "ttft_ms", "per_prompt"}


def cli(*args):
    return subprocess.run([sys.executable, "-m", "demo.bench", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=900)


@pytest.fixture(scope="module")
def report(qwen2_pair, tmp_path_factory):
    d = tmp_path_factory.mktemp("bench")
    prompts = d / "p.jsonl"
    prompts.write_text('{"prompt": "Write a function that adds two numbers"}\n\n{"prompt": "Say hello"}\n')
    (draft, path), = qwen2_pair.drafts.items()
    out = cli("--target", str(qwen2_pair.target), "--draft", f"{draft}={path}", "--cache-dir", str(d),
              "--prompts", str(prompts), "--max-new-tokens", "24",
              "--lanes", f"baseline,speculative:{draft},prompt-lookup,speculative@1", "--num-assistant-tokens", "3",
              "--settle", "0.5", "--json", str(d / "out.json"), "--html", str(d / "out.html"))
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads((d / "out.json").read_text()), out, d


def test_schema(report):
    data, _, _ = report
    assert {"device", "preset", "max_new_tokens", "lanes"} <= set(data)
    assert data["max_new_tokens"] == 24 and data["device"].startswith("CPU") and data["settle_seconds"] == 0.5
    names = [lane["name"] for lane in data["lanes"]]
    assert names == ["baseline", "speculative:qwen2-draft", "prompt-lookup", "speculative@1"]
    for lane in data["lanes"]:
        assert LANE_KEYS <= set(lane)
        assert len(lane["per_prompt"]) == 2
        for p in lane["per_prompt"]:
            assert {"identical", "first_divergence"} <= set(p)
            assert p["tokens"] == 24
    base, spec, pl, one = data["lanes"]
    assert spec["gamma"] == 3 and one["gamma"] == 1 and one["tokens_per_step"] <= 2
    assert base["speedup"] == pytest.approx(1.0)
    assert base["tokens_per_step"] is None and base["acceptance_rate"] is None and base["draft_ms_per_token"] is None
    assert spec["speedup"] == pytest.approx(spec["tokens_per_second"] / base["tokens_per_second"])
    assert spec["identical_to_baseline"] == all(p["identical"] for p in spec["per_prompt"])
    assert 0 < spec["acceptance_rate"] <= 1 and spec["tokens_per_step"] > 1 and spec["draft_ms_per_token"] > 0
    assert pl["draft_ms_per_token"] is None and pl["tokens_per_step"] >= 1
    for p in spec["per_prompt"]:
        assert (p["first_divergence"] is None) == p["identical"]


def test_lane_order_rotates_after_the_baseline(report, qwen2_pair):
    _, out, _ = report
    (draft, _), = qwen2_pair.drafts.items()
    ran = {}
    for line in out.stderr.splitlines():  # "[bench] 3/8 prompt 1 prompt-lookup: 24 tokens, ..."
        if " prompt " in line and "tokens," in line:
            idx, name = line.split(" prompt ", 1)[1].split(": ", 1)[0].split(" ", 1)
            ran.setdefault(int(idx), []).append(name)
    spec = f"speculative:{draft}"
    assert ran[1] == ["baseline", spec, "prompt-lookup", "speculative@1"]
    assert ran[2] == ["baseline", "prompt-lookup", "speculative@1", spec]


def test_table_and_html(report):
    _, out, d = report
    assert "speculative:qwen2-draft" in out.stdout and "speedup" in out.stdout
    assert "[bench]" in out.stderr and "warm-up" in out.stderr
    html = (d / "out.html").read_text()
    assert "plotly" in html.lower() and "tokens per target step" in html


def test_lanes_with_k():
    lanes = bench.parse_lanes("baseline,speculative@3,speculative:d@5,prompt-lookup")
    assert [(s.lane, s.draft, s.k) for s in lanes] == [("baseline", None, None), ("speculative", None, 3),
                                                        ("speculative", "d", 5), ("prompt-lookup", None, None)]


@pytest.mark.parametrize("lanes,msg", [("baseline,turbo", "unknown lane 'turbo'"),
                                       ("baseline:x", "only the speculative lane takes a draft"),
                                       ("baseline@3", "@K takes"), ("speculative@x", "@K takes")])
def test_bad_lanes(lanes, msg):
    with pytest.raises(ValueError, match=msg):
        bench.parse_lanes(lanes)


def test_bad_settle():
    out = cli("--preset", "qwen2.5-coder-1.5b", "--settle", "-1")
    assert out.returncode == 2 and "--settle takes 0 to 60 seconds" in out.stderr


def test_bad_prompts_file(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "no prompt field"}\n')
    out = cli("--preset", "qwen2.5-coder-1.5b", "--prompts", str(bad))
    assert out.returncode == 2 and 'bad.jsonl:1: expected a JSON object with a "prompt" field' in out.stderr
