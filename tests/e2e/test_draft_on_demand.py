"""A draft left for later (a first start prepares the default one only) is listed in the Race tab and
prepared on its first selection, with progress, then raced: the real page over HTTP on a tiny two-draft preset."""
from __future__ import annotations

import pytest
from helpers import free_port

from demo.catalog import ModelSpec, Preset
from demo.engine import Engine
from demo.models import prepare


@pytest.fixture(scope="module")
def page(work, qwen2_pair, tmp_path_factory):
    from demo.views import blocks

    preset = Preset("two-drafts", "two drafts", ModelSpec("t", str(work / "qwen2-target"), "int4"),
                    drafts=(ModelSpec("d-int8", str(work / "qwen2-draft"), "int8"),
                            ModelSpec("d-int4", str(work / "qwen2-draft"), "int4")))
    cache_dir = tmp_path_factory.mktemp("cache")
    ready = prepare.prepare(preset, cache_dir, drafts="default")
    later = prepare.OnDemand(preset, cache_dir, ready)
    engine = Engine(ready)
    demo = blocks.build(engine, later=later)
    port = free_port()
    blocks.launch(demo, port=port, prevent_thread_lock=True)
    yield f"http://127.0.0.1:{port}/", engine, later
    demo.close()


def test_a_pending_draft_is_listed_prepared_on_selection_and_raced(page):
    from gradio_client import Client

    url, engine, later = page
    client = Client(url, verbose=False)
    choices = next(c for c in client.config["components"] if c.get("props", {}).get("elem_id") == "draft")
    labels = [label for label, _ in choices["props"]["choices"]]
    assert "d-int4 (prepared on first selection)" in labels and engine.drafts == ["d-int8"]
    early = client.predict("Write a function", "d-int4", 3, False, 0.4, 16, False, "CPU", api_name="/race")
    assert "still being prepared" in early[-1]
    job = client.submit("d-int4", api_name="/prepare_draft")
    message, _ = job.result(timeout=600)
    assert "is ready" in message, message
    assert any("Preparing the draft d-int4" in str(out[0]) for out in job.outputs()[:-1])
    assert engine.drafts == ["d-int8", "d-int4"] and later.pending() == []
    out = client.predict("Write a function", "d-int4", 3, False, 0.4, 16, False, "CPU", api_name="/race")
    assert out[-1] == "" and "speedup" in out[3]
