"""What holds the engine's memory: one engine, both lanes warmed, then one long prompt after another through
each lane, the process's RSS after each (docs/performance.md, section 20).

python -m demo.bench.memory --preset P [--tokens 1000,3000,6000,8000] [--new-tokens 32] [--unbounded]
    [--batch-tokens N] [--json OUT]

--unbounded builds the pipelines with GenAI's own LLMPipeline scheduler (KV cache growing as needed, no batch
cap), keeps every pipeline and maps the weights once per pipeline: the engine before issue 25, for comparison.
Prompts are Python standard library source, different for every prompt and lane, so no prompt finds another's
prefix in the cache.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from demo.engine import Engine, EngineError, Request, memory
from demo.models import PrepareError, prepare

# GenAI's LLMPipeline default (utils::get_latency_oriented_scheduler_config): what the app used before issue 25
GENAI_DEFAULT = {"enable_prefix_caching": True, "cache_size": 0, "num_kv_blocks": 0,
                 "max_num_batched_tokens": 2**64 - 1, "dynamic_split_fuse": True}


def source_text(n_chars: int, offset: int) -> str:
    """n_chars of standard library source, starting at a different file for each offset."""
    import sysconfig

    files = sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))
    out, i = [], offset * 7
    while sum(map(len, out)) < n_chars:
        out.append(files[i % len(files)].read_text(errors="replace"))
        i += 1
    return "".join(out)[:n_chars]


def prompt_of(engine: Engine, tokens: int, offset: int) -> str:
    """A prompt of about `tokens` tokens (chat template included)."""
    tok = engine.tokenizer()
    text = source_text(tokens * 5, offset)
    ids = tok.encode(text, add_special_tokens=False).input_ids.data[0].tolist()
    body = tok.decode(ids[:max(tokens - 40, 1)])
    return "Summarize what this code does:\n" + body


def gb(n: int | None) -> float | None:
    return None if n is None else round(n / memory.GB, 2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo.bench.memory", description=__doc__.splitlines()[0])
    prepare.add_arguments(parser)
    parser.add_argument("--tokens", default="1000,3000,6000,8000", help="prompt lengths in tokens, in order")
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--unbounded", action="store_true", help="GenAI's default scheduler, every pipeline kept")
    parser.add_argument("--batch-tokens", type=int, help="max_num_batched_tokens instead of the engine's")
    parser.add_argument("--json", type=Path, help="write the rows here")
    args = parser.parse_args(argv)
    try:
        ready = prepare.prepare_from_args(args)
    except PrepareError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.unbounded:
        engine = Engine(ready, keep_pipelines=None, max_context=10**6, share_weights=False)
        engine.scheduler = {**GENAI_DEFAULT}
    else:
        engine = Engine(ready)
    if args.batch_tokens:
        engine.scheduler["max_num_batched_tokens"] = args.batch_tokens
    rows = [{"step": "start", "rss_gb": gb(memory.rss_bytes())}]

    def note(step: str, **extra) -> None:
        split = {f"{k}_gb": gb(v) for k, v in memory.breakdown().items() if k != "rss"}
        rows.append({"step": step, "rss_gb": gb(memory.rss_bytes()), "peak_gb": gb(memory.peak_rss_bytes()), **split,
                     **extra})
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)

    engine.warm_up()
    note("both lanes warmed")
    for i, n in enumerate(int(x) for x in args.tokens.split(",")):
        for j, lane in enumerate(("baseline", "speculative")):
            req = Request(prompt_of(engine, n, 2 * i + j), lane=lane, max_new_tokens=args.new_tokens)
            t0 = time.monotonic()
            try:
                res = engine.generate(req)
                note(f"{n} tokens, {lane}", prompt_tokens=res.prompt_tokens, ttft_ms=round(res.ttft_ms or 0),
                     seconds=round(time.monotonic() - t0, 1))
            except EngineError as exc:
                note(f"{n} tokens, {lane}", error=str(exc))
    out = {"preset": ready.preset, "scheduler": "GenAI default" if args.unbounded else "bounded",
           "settings": engine.settings(), "rows": rows,
           "command": "python -m demo.bench.memory " + " ".join(argv if argv is not None else sys.argv[1:])}
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, default=str))
    print(json.dumps({"peak_gb": rows[-1].get("peak_gb"), "last_rss_gb": rows[-1]["rss_gb"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
