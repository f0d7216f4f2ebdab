"""The cache manifest records file sizes; a truncated or missing file is found and the folder rebuilt."""
from __future__ import annotations

import json

from demo.models import cache


def finished(tmp_path, key):
    tmp = tmp_path / ".tmp-model"
    tmp.mkdir()
    (tmp / "openvino_model.bin").write_bytes(b"w" * 1000)
    (tmp / "openvino_tokenizer.xml").write_text("<net/>")
    (tmp / cache.MANIFEST).write_text(json.dumps({"key": key}))
    final = tmp_path / "model"
    cache.replace_atomically(tmp, final)
    return final


def test_sizes_are_recorded_and_checked(tmp_path, capsys):
    final = finished(tmp_path, {"k": 1})
    assert cache.read_manifest(final)["files"] == {"openvino_model.bin": 1000, "openvino_tokenizer.xml": 6}
    assert cache.is_cached(final, {"k": 1}) and not cache.is_cached(final, {"k": 2})
    (final / "openvino_model.bin").write_bytes(b"w" * 10)
    assert cache.damage(final) == "openvino_model.bin has 10 bytes, the manifest says 1,000"
    assert not cache.is_cached(final, {"k": 1})
    assert "is damaged (openvino_model.bin has 10 bytes" in capsys.readouterr().err
    (final / "openvino_model.bin").write_bytes(b"w" * 1000)
    (final / "openvino_tokenizer.xml").unlink()
    assert cache.damage(final) == "openvino_tokenizer.xml is missing"


def test_a_cache_from_before_sizes_gets_them_on_first_match(tmp_path):
    folder = tmp_path / "old"
    folder.mkdir()
    (folder / "openvino_model.bin").write_bytes(b"w" * 5)
    (folder / cache.MANIFEST).write_text(json.dumps({"key": "k"}))
    assert cache.damage(folder) is None and cache.is_cached(folder, "k")
    assert cache.read_manifest(folder)["files"] == {"openvino_model.bin": 5}
