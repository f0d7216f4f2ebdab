"""A shipped draft delta is checked before use: its recipe, the adapter's presence and SHA-256, the base GGUF."""
from __future__ import annotations

import hashlib
import json

import pytest

from demo.models import PrepareError
from demo.models.prune import delta

CMD = "python -m demo.prune run --lora 8"


def shipped(folder):
    folder.mkdir()
    (folder / delta.ADAPTER).write_bytes(bytes(range(256)) * 8)
    return delta.write_recipe(folder, name="d-pruned-2l", base={"draft": "d", "gguf_sha256": "a" * 64},
                              cut={"start": 1, "n": 2}, lora={"rank": 8, "alpha": 16}, command=CMD, heal={})


def test_recipe_records_the_adapter_sha256_and_loads_back(tmp_path):
    recipe = shipped(tmp_path / "d")
    assert recipe["adapter_sha256"] == hashlib.sha256(bytes(range(256)) * 8).hexdigest()
    assert recipe["adapter_bytes"] == 2048 and recipe["command"] == CMD
    assert delta.load_recipe(tmp_path / "d") == json.loads((tmp_path / "d" / delta.RECIPE).read_text())


def test_a_changed_byte_or_a_missing_file_is_named(tmp_path):
    shipped(tmp_path / "d")
    adapter = tmp_path / "d" / delta.ADAPTER
    data = bytearray(adapter.read_bytes())
    data[100] ^= 1
    adapter.write_bytes(bytes(data))
    with pytest.raises(PrepareError, match=r"SHA-256 mismatch for .*adapter.safetensors.*re-create it with `python"):
        delta.load_recipe(tmp_path / "d")
    adapter.unlink()
    with pytest.raises(PrepareError, match="adapter.safetensors is missing"):
        delta.load_recipe(tmp_path / "d")
    with pytest.raises(PrepareError, match="has no readable recipe.json"):
        delta.load_recipe(tmp_path / "nowhere")
    (tmp_path / "d" / delta.RECIPE).write_text("{}")
    with pytest.raises(PrepareError, match="is not a draft delta recipe"):
        delta.load_recipe(tmp_path / "d")


def test_a_different_base_gguf_is_refused(tmp_path):
    recipe = shipped(tmp_path / "d")
    delta.check_base(recipe, "a" * 64)
    delta.check_base(recipe, None)  # a folder source: nothing recorded to compare
    with pytest.raises(PrepareError, match="trained on the GGUF with sha256 aaaa"):
        delta.check_base(recipe, "b" * 64)


def test_relative_folders_are_read_from_the_repository():
    assert delta.folder_path("assets/drafts/x") == delta.REPO / "assets" / "drafts" / "x"
    assert (delta.REPO / "demo" / "catalog.py").is_file()
