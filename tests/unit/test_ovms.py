"""demo.ovms: the OVMS repository's structure, and a round trip of its servable name through our own /v1 model
listing (so a client's `model` is the same on both servers). OVMS itself is not installable from PyPI and was
not run here; the graph follows its exporter for the 2026.4 release (demo/models/ovms.py)."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from demo.catalog import Prepared
from demo.models import PrepareError, ovms

TEMPLATE = '{%- if tools %}<tools></tools> <tool_call>{"name": ...}</tool_call>{%- endif %}'


def fake_ir(folder: Path, n_ctx: int = 4096) -> Path:
    """A folder shaped like an OpenVINO IR export (the files OVMS reads); the weights are placeholders."""
    folder.mkdir(parents=True)
    for name in ("openvino_model.xml", "openvino_model.bin", "openvino_tokenizer.xml", "openvino_tokenizer.bin",
                 "openvino_detokenizer.xml", "openvino_detokenizer.bin"):
        (folder / name).write_text(f"{folder.name}/{name}")
    (folder / "config.json").write_text(json.dumps({"max_position_embeddings": n_ctx}))
    (folder / "generation_config.json").write_text(json.dumps({"eos_token_id": 2}))
    (folder / "chat_template.jinja").write_text(TEMPLATE)
    return folder


@pytest.fixture
def prepared(tmp_path) -> Prepared:
    return Prepared("tiny-preset", fake_ir(tmp_path / "cache" / "target"),
                    {"d1": fake_ir(tmp_path / "cache" / "d1"), "d2": fake_ir(tmp_path / "cache" / "d2")})


def options(graph: str) -> dict[str, str]:
    """The LLMCalculatorOptions fields of a graph.pbtxt as strings."""
    block = re.split(r"^\s*}\s*$", graph.split("mediapipe.LLMCalculatorOptions]: {", 1)[1], maxsplit=1, flags=re.M)[0]
    return {m[1]: m[2].strip().strip('"') for m in re.finditer(r"^\s*(\w+): (.+?),?$", block, re.M)}


def test_repository_layout_graph_and_config(prepared, tmp_path):
    out = tmp_path / "repo"
    folder = ovms.write_repository(prepared, out, draft="d2", num_assistant_tokens=4, cache_size=2)
    assert folder == out / "tiny-preset"
    config = json.loads((out / "config.json").read_text())
    assert config["model_config_list"] == [{"config": {"name": "tiny-preset", "base_path": "tiny-preset"}}]
    graph = (folder / "graph.pbtxt").read_text()
    assert graph.count("{") == graph.count("}")
    assert 'calculator: "HttpLLMCalculator"' in graph and "LLM_NODE_RESOURCES:llm" in graph
    opts = options(graph)
    assert opts["models_path"] == "./" and opts["draft_models_path"] == "./d2"
    assert opts["enable_prefix_caching"] == "true" and opts["cache_size"] == "2"
    assert opts["device"] == opts["draft_device"] == "CPU" and opts["tool_parser"] == "hermes3"
    assert json.loads(opts["plugin_config"].strip("'")) == {"INFERENCE_PRECISION_HINT": "f32",
                                                           "KV_CACHE_PRECISION": "f32"}
    # the files OVMS loads, for the target and, in the folder draft_models_path names, the draft
    for name in ("openvino_model.xml", "openvino_model.bin", "openvino_tokenizer.xml", "openvino_detokenizer.xml"):
        assert (folder / name).read_text() == f"target/{name}"
        assert (folder / "d2" / name).read_text() == f"d2/{name}"
    assert not (folder / "d1").exists()
    gen = json.loads((folder / "generation_config.json").read_text())
    assert gen == {"eos_token_id": 2, "num_assistant_tokens": 4}  # OVMS's default for requests without one
    # the cache is untouched: its generation_config.json was not linked and then edited
    assert json.loads((prepared.target / "generation_config.json").read_text()) == {"eos_token_id": 2}


def test_default_draft_and_rewrite_keep_other_servables(prepared, tmp_path):
    out = tmp_path / "repo"
    out.mkdir()
    other = {"config": {"name": "someone-else", "base_path": "elsewhere"}}
    (out / "config.json").write_text(json.dumps({"model_config_list": [other]}))
    ovms.write_repository(prepared, out)
    ovms.write_repository(prepared, out, num_assistant_tokens=2)  # again: replaced, not duplicated
    names = [m["config"]["name"] for m in json.loads((out / "config.json").read_text())["model_config_list"]]
    assert names == ["someone-else", "tiny-preset"]
    folder = out / "tiny-preset"
    assert options((folder / "graph.pbtxt").read_text())["draft_models_path"] == "./d1"  # the preset's first
    assert json.loads((folder / "generation_config.json").read_text())["num_assistant_tokens"] == 2
    assert not list(out.glob(".tmp-*"))


def test_without_a_draft_and_with_a_bad_one(tmp_path):
    alone = Prepared("solo", fake_ir(tmp_path / "solo"), {})
    folder = ovms.write_repository(alone, tmp_path / "repo")
    assert "draft_models_path" not in options((folder / "graph.pbtxt").read_text())
    assert "num_assistant_tokens" not in json.loads((folder / "generation_config.json").read_text())
    with pytest.raises(PrepareError, match="unknown draft"):
        ovms.write_repository(Prepared("p", alone.target, {"a": alone.target}), tmp_path / "r2", draft="b")


def test_cli_writes_the_repository(tmp_path, capsys):
    target, draft = fake_ir(tmp_path / "t"), fake_ir(tmp_path / "d")
    rc = ovms.main(["--target", str(target), "--draft", f"dd={draft}", "--cache-dir", str(tmp_path / "cache"),
                    "--out", str(tmp_path / "repo")])
    out = capsys.readouterr().out
    assert rc == 0 and "--config_path" in out and "/v3" in out
    assert options((tmp_path / "repo" / "custom-t" / "graph.pbtxt").read_text())["draft_models_path"] == "./dd"


def test_servable_name_round_trips_through_our_model_listing(prepared, tmp_path):
    """The name a client sends to OVMS is one our /v1 lists and accepts (a real Engine: nothing is loaded)."""
    from fastapi.testclient import TestClient

    from demo import server
    from demo.engine import Engine

    out = tmp_path / "repo"
    ovms.write_repository(prepared, out, draft="d1")
    (name,) = [m["config"]["name"] for m in json.loads((out / "config.json").read_text())["model_config_list"]]
    draft = options((out / name / "graph.pbtxt").read_text())["draft_models_path"].removeprefix("./")
    client = TestClient(server.create_app(Engine(prepared), api_key="k"))
    auth = {"Authorization": "Bearer k"}
    listed = client.get("/v1/models", headers=auth).json()["data"]
    target = next(m for m in listed if m["id"] == name)
    assert draft in target["drafts"] and target["max_model_len"] == 4096
    assert next(m for m in listed if m["id"] == draft)["parent"] == name
    assert client.get(f"/v1/models/{name}", headers=auth).json()["id"] == name
    # the name resolves (the error is about max_tokens, not the model); a name OVMS would not know does not
    body = {"model": name, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 0}
    bad = client.post("/v1/chat/completions", headers=auth, json=body)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "max_tokens"
    missing = client.post("/v1/chat/completions", headers=auth, json={**body, "model": "nope", "max_tokens": 5})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "model_not_found"
