"""python -m demo.soak on the tiny pair: a few runs from two clients with cancels, then the cache fault cases."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def soak(work, tmp_path, *flags):
    """On the tiny Qwen2 pair's transformers folders, so the fault cases have a source to rebuild from."""
    out = tmp_path / "soak.json"
    done = subprocess.run([sys.executable, "-m", "demo.soak", "--target", str(work / "qwen2-target"), "--draft",
                           f"qwen2-draft={work / 'qwen2-draft'}", "--cache-dir", str(work / "cache"), "--json",
                           str(out), *flags],
                          cwd=ROOT, capture_output=True, text=True, timeout=1800)
    assert out.exists(), done.stderr[-3000:]
    return done.returncode, json.loads(out.read_text()), done.stderr


def test_soak_drives_races_and_agent_runs_with_cancels(qwen2_pair, work, tmp_path):
    rc, report, log = soak(work, tmp_path, "--race", "5", "--agent", "2", "--clients", "2",
                           "--cancel-every", "3", "--max-new-tokens", "16", "--agent-steps", "2")
    assert rc == 0 and report["errors"] == [], log[-3000:]
    assert report["runs"] == 7 and sum(report["cancelled"].values()) == 2
    assert report["latency_seconds"]["race"]["n"] >= 3 and report["latency_seconds"]["race"]["p95"] > 0
    assert report["rss_mib"]["start"] > 0 and report["rss_mib"]["end"] > 0
    assert report["agent_stop_seconds_max"] is None or report["agent_stop_seconds_max"] < 2
    assert report["command"].startswith("python -m demo.soak --target")


@pytest.mark.slow
def test_soak_fault_cases_rebuild_a_damaged_or_interrupted_cache(qwen2_pair, work, tmp_path):
    rc, report, log = soak(work, tmp_path, "--race", "1", "--agent", "0", "--clients", "1",
                           "--cancel-every", "0", "--faults")
    cases = {f["case"]: f for f in report["faults"]}
    assert set(cases) == {"truncated openvino_model.bin", "missing openvino_tokenizer.xml",
                          "preparation killed mid-rebuild"}, report["faults"]
    assert all(f["ok"] for f in cases.values()), report["faults"]
    assert cases["truncated openvino_model.bin"]["named"]
    assert "rebuilt" in cases["missing openvino_tokenizer.xml"]["detail"]
    assert rc == 0, log[-3000:]
