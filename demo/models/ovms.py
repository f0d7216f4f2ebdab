"""An OpenVINO Model Server (OVMS) model repository for a prepared preset: the way out of one laptop.

    python -m demo.ovms --preset qwen2.5-coder-1.5b --out ovms-repo
    docker run --rm -p 8000:8000 -v "$PWD/ovms-repo:/workspace:ro" openvino/model_server:latest \\
        --rest_port 8000 --config_path /workspace/config.json
    # clients change the base URL only: http://localhost:8000/v3 instead of http://127.0.0.1:7860/v1

The layout and graph follow OVMS's own exporter for the release that matches our OpenVINO 2026.4
(openvinotoolkit/model_server, branch main-2026.4, demos/common/export_models/export_model.py, text_generation
with --draft_source_model): config.json lists one servable; its folder holds the target IR, graph.pbtxt and the
draft IR in a subfolder that LLMCalculatorOptions.draft_models_path names. OVMS builds each request's
GenerationConfig on the target's generation_config.json and sets num_assistant_tokens to 5 only when neither it
nor assistant_confidence_threshold is set (src/llm/io_processing/base_generation_config_builder.cpp), so our
default goes into that file. The model files are hard links into the cache where the filesystem allows it
(no second copy), copies otherwise; generation_config.json is always a new file, so the cache is never touched.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

from demo.catalog import Prepared
from demo.engine.request import DEFAULT_NUM_ASSISTANT_TOKENS, DEFAULT_PROPERTIES
from demo.models import PrepareError

CONFIG = "config.json"
GRAPH = "graph.pbtxt"
GENERATION_CONFIG = "generation_config.json"
# OVMS's exporter default: the KV cache grows as needed (a size in GB reserves it up front, faster on a server).
DEFAULT_CACHE_SIZE_GB = 0
DEFAULT_MAX_NUM_SEQS = 256  # OVMS's default; speculative decoding pays most at low concurrency

GRAPH_TEMPLATE = """# OVMS_GRAPH_QUEUE_MAX_SIZE: AUTO
# written by python -m demo.ovms for preset {preset}: target {target}, draft {draft}
input_stream: "HTTP_REQUEST_PAYLOAD:input"
output_stream: "HTTP_RESPONSE_PAYLOAD:output"

node: {{
  name: "LLMExecutor"
  calculator: "HttpLLMCalculator"
  input_stream: "LOOPBACK:loopback"
  input_stream: "HTTP_REQUEST_PAYLOAD:input"
  input_side_packet: "LLM_NODE_RESOURCES:llm"
  input_side_packet: "LLM_NODE_EXECUTION_CONTEXTS:llm_ctx"
  output_stream: "LOOPBACK:loopback"
  output_stream: "HTTP_RESPONSE_PAYLOAD:output"
  input_stream_info: {{
    tag_index: 'LOOPBACK:0',
    back_edge: true
  }}
  node_options: {{
      [type.googleapis.com / mediapipe.LLMCalculatorOptions]: {{
          models_path: "./",
          plugin_config: '{plugin_config}',
          enable_prefix_caching: {prefix_caching},
          cache_size: {cache_size},
          max_num_seqs: {max_num_seqs},
          device: "{device}",{draft_options}{parsers}
      }}
  }}
  input_stream_handler {{
    input_stream_handler: "SyncSetInputStreamHandler",
    options {{
      [mediapipe.SyncSetInputStreamHandlerOptions.ext] {{
        sync_set {{
          tag_index: "LOOPBACK:0"
        }}
      }}
    }}
  }}
}}
"""


def _link_tree(src: Path, dst: Path, skip: set[str] = frozenset()) -> None:
    """dst mirrors src's files as hard links (copies across filesystems); subfolders are left out. A file that
    is a symlink (a Hugging Face cache snapshot: relative links into ../../blobs) is linked by its target, since
    a hard link to the symlink itself would dangle in the repository (and in a container that mounts it)."""
    dst.mkdir(parents=True, exist_ok=True)
    for f in sorted(src.iterdir()):
        if f.is_file() and f.name not in skip:
            real = f.resolve()
            try:
                os.link(real, dst / f.name)
            except OSError:
                shutil.copy2(real, dst / f.name)


def tool_parser(target: Path) -> str | None:
    """OVMS's parser for the model's tool-call format: Qwen2.5 and Qwen3 write <tool_call>{json}</tool_call>,
    the Hermes format (OVMS's agentic demos serve Qwen3 with --tool_parser hermes3)."""
    for name in ("chat_template.jinja", "tokenizer_config.json"):
        try:
            if "<tool_call>" in (target / name).read_text(errors="replace"):
                return "hermes3"
        except OSError:
            continue
    return None


def graph(prepared: Prepared, draft: str | None, device: str = "CPU", cache_size: int = DEFAULT_CACHE_SIZE_GB,
          prefix_caching: bool = True, max_num_seqs: int = DEFAULT_MAX_NUM_SEQS) -> str:
    """graph.pbtxt for the target, with the draft's folder as draft_models_path."""
    # the engine's CPU settings: f32 compute and KV cache, the fastest measured and the only ones under which
    # greedy speculative output matched the baseline (demo/engine/request.py)
    plugin = DEFAULT_PROPERTIES if device == "CPU" else {}
    draft_options = ""
    if draft:
        draft_options = (f"\n          # speculative decoding: the draft lives in this folder\n"
                         f"          draft_models_path: \"./{draft}\",\n"
                         f"          draft_device: \"{device}\",\n"
                         f"          draft_eagle3_mode: false,")
    parsers = ""
    tp = tool_parser(prepared.target)
    if tp:
        parsers += f"\n          tool_parser: \"{tp}\","
    if prepared.thinking:
        parsers += "\n          reasoning_parser: \"qwen3\","
    return GRAPH_TEMPLATE.format(preset=prepared.preset, target=prepared.target_label, draft=draft or "none",
                                 plugin_config=json.dumps(plugin), prefix_caching=str(prefix_caching).lower(),
                                 cache_size=int(cache_size), max_num_seqs=int(max_num_seqs), device=device,
                                 draft_options=draft_options, parsers=parsers)


def add_servable(config_path: Path, name: str, base_path: str) -> None:
    """Add or update one servable in config.json, keeping the others (as OVMS's add_servable_to_config does)."""
    try:
        config = json.loads(config_path.read_text())
    except (OSError, ValueError):
        config = {}
    models = config.setdefault("model_config_list", [])  # OVMS 2026 finds graph.pbtxt in base_path itself
    for entry in models:
        if entry.get("config", {}).get("name") == name:
            entry["config"]["base_path"] = base_path
            break
    else:
        models.append({"config": {"name": name, "base_path": base_path}})
    config_path.write_text(json.dumps(config, indent=4) + "\n")


def write_repository(prepared: Prepared, out: Path, draft: str | None = None,
                     num_assistant_tokens: int = DEFAULT_NUM_ASSISTANT_TOKENS, device: str = "CPU",
                     cache_size: int = DEFAULT_CACHE_SIZE_GB, prefix_caching: bool = True) -> Path:
    """Write (or replace) the preset's servable under `out`; returns its folder. The servable's name is the
    preset's, which is also the model id this app's /v1 lists, so a client's `model` works on both servers."""
    if draft is None and prepared.drafts:
        draft = next(iter(prepared.drafts))
    if draft is not None and draft not in prepared.drafts:
        raise PrepareError(f"unknown draft {draft!r}; this preset has: {', '.join(prepared.drafts) or 'none'}")
    if num_assistant_tokens < 1:
        raise PrepareError("num_assistant_tokens must be at least 1")
    out = Path(out)
    name = prepared.preset
    final = out / name
    tmp = out / f".tmp-{name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        _link_tree(prepared.target, tmp, skip={GENERATION_CONFIG})
        gen = {}
        try:
            gen = json.loads((prepared.target / GENERATION_CONFIG).read_text())
        except (OSError, ValueError):
            pass
        if draft:
            gen["num_assistant_tokens"] = num_assistant_tokens
            _link_tree(prepared.drafts[draft], tmp / draft)
        (tmp / GENERATION_CONFIG).write_text(json.dumps(gen, indent=2) + "\n")
        (tmp / GRAPH).write_text(graph(prepared, draft, device, cache_size, prefix_caching))
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    add_servable(out / CONFIG, name, name)
    return final


def main(argv: list[str] | None = None) -> int:
    from demo.models import prepare

    parser = argparse.ArgumentParser(prog="python -m demo.ovms",
                                     description="Write an OpenVINO Model Server repository for a preset.")
    prepare.add_arguments(parser)
    parser.add_argument("--out", required=True, help="repository folder (config.json and one servable folder)")
    parser.add_argument("--use-draft", metavar="NAME", help="the draft to serve with (default: the preset's first)")
    parser.add_argument("--num-assistant-tokens", type=int, default=DEFAULT_NUM_ASSISTANT_TOKENS,
                        help=f"default draft length when a request gives none (default {DEFAULT_NUM_ASSISTANT_TOKENS})")
    parser.add_argument("--device", default="CPU", help="OVMS device for target and draft (default CPU)")
    parser.add_argument("--cache-size", type=int, default=DEFAULT_CACHE_SIZE_GB,
                        help="KV cache in GB; 0 grows it as needed (default 0)")
    parser.add_argument("--no-prefix-caching", action="store_true", help="turn off OVMS's prompt prefix cache")
    args = parser.parse_args(argv)
    try:
        ready = prepare.prepare_from_args(args)
        folder = write_repository(ready, Path(args.out), args.use_draft, args.num_assistant_tokens, args.device,
                                  args.cache_size, not args.no_prefix_caching)
    except PrepareError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out).resolve()
    print(f"wrote {folder} and {out / CONFIG}")
    print(f"serve: docker run --rm -p 8000:8000 -v \"{out}:/workspace:ro\" openvino/model_server:latest "
          f"--rest_port 8000 --config_path /workspace/{CONFIG}")
    print(f"   or: ovms --rest_port 8000 --config_path {out / CONFIG}")
    print(f"client: base_url=\"http://localhost:8000/v3\", model=\"{ready.preset}\"")
    return 0
