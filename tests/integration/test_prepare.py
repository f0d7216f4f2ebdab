"""Model preparation: the tiny pairs go through the same export path as the real presets."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import tiny
from demo import catalog
from demo.models import PrepareError, cache, convert, prepare
from demo.catalog import GGUFSource, ModelSpec, Prepared, Preset

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "demo.prepare", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now: connections are refused at once
    return port


@pytest.mark.parametrize("pair", ["qwen2_pair", "qwen3_pair"])
def test_tiny_pair_exports_and_runs_speculative(pair, request):
    import openvino_genai as g

    ready: Prepared = request.getfixturevalue(pair)
    (draft,) = ready.drafts.values()
    for name in convert.TOKENIZER_FILES:
        assert (ready.target / name).read_bytes() == (draft / name).read_bytes(), name
    # int4 target really is compressed: its weights file is smaller than the int8 draft's
    assert (ready.target / "openvino_model.bin").stat().st_size < (draft / "openvino_model.bin").stat().st_size
    pipe = g.LLMPipeline(str(ready.target), "CPU", draft_model=g.draft_model(str(draft), "CPU"))
    res = pipe.generate(["def add(a, b):"], g.GenerationConfig(max_new_tokens=12, num_assistant_tokens=3))
    assert res.extended_perf_metrics.get_num_generated_tokens() == 12
    assert len(res.texts[0]) > 0


def test_cache_is_reused(qwen2_pair, work):
    manifest = qwen2_pair.target / cache.MANIFEST
    before = manifest.stat().st_mtime_ns
    t0 = time.monotonic()
    again = prepare.prepare(prepare.custom_preset(str(work / "qwen2-target"), [f"qwen2-draft={work / 'qwen2-draft'}"]),
                            work / "cache")
    assert time.monotonic() - t0 < 10
    assert again.target == qwen2_pair.target and again.drafts == qwen2_pair.drafts
    assert manifest.stat().st_mtime_ns == before


def test_failed_conversion_keeps_previous_cache(tmp_path, tokenizer_dir):
    import openvino_genai as g

    src = tiny.build_tiny(tmp_path / "model", tokenizer_dir, "qwen2", layers=2, seed=3)
    preset = prepare.custom_preset(str(src), [])
    good = prepare.prepare(preset, tmp_path / "cache").target
    manifest = json.loads((good / cache.MANIFEST).read_text())
    # The source changes (so the cache key changes) and the new conversion fails half way.
    weights = src / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(PrepareError, match="conversion of model failed"):
        prepare.prepare(preset, tmp_path / "cache")
    assert json.loads((good / cache.MANIFEST).read_text()) == manifest
    assert not [p for p in good.parent.iterdir() if p.name.startswith((".tmp-", ".old-", ".work-"))]
    g.LLMPipeline(str(good), "CPU").generate("hi", max_new_tokens=2)


def make_part_package(root: Path, name: str, payload: bytes) -> None:
    pkg = root / name.replace("-", "_")
    (pkg / "data").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "data" / "part01.bin").write_bytes(payload)


def test_checksum_mismatch_removes_file(tmp_path, monkeypatch):
    make_part_package(tmp_path / "site", "specdemo-fake-part1", b"not the real weights")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    src = GGUFSource(("specdemo-fake-part1",), "1.0", "fake.gguf", 20, "0" * 64)
    with pytest.raises(PrepareError, match="checksum mismatch for fake.gguf.*removed the bad file"):
        convert.assemble_gguf(src, tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []


def test_matching_checksum_assembles_parts_in_order(tmp_path, monkeypatch):
    import hashlib

    make_part_package(tmp_path / "site", "specdemo-ok-part1", b"abc")
    make_part_package(tmp_path / "site", "specdemo-ok-part2", b"def")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    src = GGUFSource(("specdemo-ok-part1", "specdemo-ok-part2"), "1.0", "ok.gguf", 6,
                     hashlib.sha256(b"abcdef").hexdigest())
    assert convert.assemble_gguf(src, tmp_path / "out").read_bytes() == b"abcdef"


def test_missing_part_package_is_named_with_pip_command(tmp_path):
    src = GGUFSource(("specdemo-absent-part1", "specdemo-absent-part2"), "9.9", "x.gguf", 1, "0" * 64)
    preset = Preset("fake", "fake", ModelSpec("x", src, "int4"))
    with pytest.raises(PrepareError) as err:
        prepare.prepare(preset, tmp_path)
    msg = str(err.value)
    assert "specdemo-absent-part1, specdemo-absent-part2" in msg
    assert "pip install specdemo-absent-part1==9.9 specdemo-absent-part2==9.9" in msg


def test_too_little_disk_says_how_much(tmp_path):
    with pytest.raises(PrepareError, match=r"need about \d+\.\d GiB free, have"):
        cache.check_disk(tmp_path, 1 << 60, "model")


def test_default_preset_is_offline_when_hub_unreachable(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # empty HF cache
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    t0 = time.monotonic()
    name, why = catalog.choose_default(timeout=3)
    assert name == catalog.OFFLINE_PRESET
    assert "unreachable" in why and "127.0.0.1" in why
    assert time.monotonic() - t0 < 5


def test_cli_hub_preset_unreachable_is_one_clear_line(tmp_path):
    env = {"HF_ENDPOINT": f"http://127.0.0.1:{closed_port()}", "HF_HOME": str(tmp_path / "hf"),
           "HF_HUB_ETAG_TIMEOUT": "2", "HF_HUB_DOWNLOAD_TIMEOUT": "2"}
    out = run_cli("--preset", "qwen3-8b", "--cache-dir", str(tmp_path / "c"), env=env, timeout=120)
    assert out.returncode == 2
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "OpenVINO/Qwen3-8B-int4-ov" in errors[0] and "unreachable" in errors[0]


def test_cli_unknown_preset(tmp_path):
    out = run_cli("--preset", "nope", "--cache-dir", str(tmp_path))
    assert out.returncode == 2
    assert "unknown preset 'nope'" in out.stderr and "qwen2.5-coder-1.5b" in out.stderr


def test_cli_bad_draft_flag(tmp_path):
    out = run_cli("--target", str(tmp_path), "--draft", "nodir", "--cache-dir", str(tmp_path))
    assert out.returncode == 2 and "NAME=DIR_OR_HUB_ID" in out.stderr


def test_cli_custom_ir_folders_used_as_they_are(qwen2_pair, tmp_path):
    (draft,) = qwen2_pair.drafts.values()
    out = run_cli("--target", str(qwen2_pair.target), "--draft", f"mine={draft}", "--cache-dir", str(tmp_path),
                  "--json")
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["target"] == str(qwen2_pair.target) and got["drafts"] == {"mine": str(draft)}


def test_real_offline_pair(tmp_path):
    """The real Qwen2.5-Coder pair from the PyPI GGUF parts; minutes on the first run, then cached."""
    out = run_cli("--preset", "qwen2.5-coder-1.5b", "--json", timeout=1500)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["preset"] == "qwen2.5-coder-1.5b"
    target, draft = Path(got["target"]), Path(got["drafts"]["qwen2.5-coder-0.5b"])
    for name in convert.TOKENIZER_FILES:
        assert (target / name).read_bytes() == (draft / name).read_bytes()
    assert 0.6e9 < (target / "openvino_model.bin").stat().st_size < 1.3e9  # int4 weights, int8 embeddings
    # the default draft is int4 down to its vocabulary head: under 0.6x the int8 draft's weights
    int4_draft = Path(got["drafts"]["qwen2.5-coder-0.5b-int4"]) / "openvino_model.bin"
    assert int4_draft.stat().st_size < 0.6 * (draft / "openvino_model.bin").stat().st_size
    t0 = time.monotonic()
    again = run_cli("--preset", "qwen2.5-coder-1.5b", "--json")
    assert json.loads(again.stdout.strip().splitlines()[-1]) == got
    assert time.monotonic() - t0 < 30


def test_first_start_prepares_the_default_draft_only(qwen2_pair, work, tmp_path):
    """A first start builds the target and the default draft; another draft is built on its first selection
    (OnDemand) and found in the cache from then on."""
    preset = Preset("two-drafts", "two drafts", ModelSpec("t", str(work / "qwen2-target"), "int4"),
                    drafts=(ModelSpec("d-int8", str(work / "qwen2-draft"), "int8"),
                            ModelSpec("d-int4", str(work / "qwen2-draft"), "int4")))
    cache_dir = tmp_path / "cache"
    ready = prepare.prepare(preset, cache_dir, drafts="default")
    assert list(ready.drafts) == ["d-int8"]
    assert sorted(p.name for p in (cache_dir / "two-drafts").iterdir() if cache.is_ir_folder(p)) == ["d-int8", "t"]
    later = prepare.OnDemand(preset, cache_dir, ready)
    assert later.pending() == ["d-int4"]
    path = later.prepare("d-int4")
    assert cache.is_ir_folder(path) and ready.drafts["d-int4"] == path and later.pending() == []
    again = prepare.prepare(preset, cache_dir, drafts="default")  # a restart: both found, nothing built
    assert list(again.drafts) == ["d-int8", "d-int4"]
    with pytest.raises(PrepareError, match="no draft 'nope'"):
        prepare.prepare(preset, cache_dir, drafts=["nope"])


def test_default_draft_brings_what_it_is_made_from():
    offline = catalog.PRESETS[catalog.OFFLINE_PRESET]
    default = prepare.wanted_drafts(offline, "default")
    assert default == {offline.default_draft, offline.drafts[0].trim_head_of}
    assert prepare.wanted_drafts(offline, "all") == {d.name for d in offline.drafts}
