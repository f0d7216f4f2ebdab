"""Benchmark the lanes on a prompt set in one process, interleaved prompt by prompt, greedy.

python -m demo.bench --preset P [--prompts FILE.jsonl] [--limit N] --max-new-tokens N
    --lanes baseline,speculative[:DRAFT][@K|@0.T],prompt-lookup[@K] [--num-assistant-tokens K] [--repeats R]
    [--compare A,B ...] [--baseline-backend paged|stateful] --json OUT [--html OUT.html]

Tune on a set's dev half (assets/prompts/*-dev.jsonl) and report on its test half (*-test.jsonl), once.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from demo.bench.run import parse_compare, parse_lanes, progress, run_bench, table
from demo.engine import (BASELINE_BACKENDS, DEFAULT_BASELINE_BACKEND, DEFAULT_PROPERTIES, SETTLE_SECONDS, Engine,
                         EngineError)
from demo.models import PrepareError, prepare
from demo.prompt_sets import PROMPTS_DIR, describe_set, load_prompts

DEFAULT_PROMPTS = PROMPTS_DIR / "code.jsonl"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo.bench", description=__doc__.splitlines()[0])
    prepare.add_arguments(parser)
    parser.add_argument("--prompts", type=Path, default=DEFAULT_PROMPTS,
                        help="JSON lines with a \"prompt\" field (default: the 8-prompt code smoke set, "
                             "assets/prompts/code.jsonl)")
    parser.add_argument("--limit", type=int, default=None, metavar="N", help="only the file's first N prompts")
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--lanes", default="baseline,speculative",
                        help="comma-separated: baseline, speculative[:DRAFT][@K draft tokens | @0.T confidence "
                             "threshold], prompt-lookup[@K]; each drafted lane loads its own pipeline (its own "
                             "copy of the target and prefix cache)")
    parser.add_argument("--compare", action="append", metavar="A,B",
                        help="paired comparison of two lanes' per-prompt speeds with a 95%% CI and a verdict "
                             "(repeatable; default: every pair of drafted lanes)")
    parser.add_argument("--num-assistant-tokens", type=int, default=None,
                        help="draft tokens per step (default: the app's default)")
    parser.add_argument("--confidence-threshold", type=float, default=None,
                        help="speculative lanes without their own @K or @0.T: draft while the draft is this "
                             "confident instead of a fixed number of tokens")
    parser.add_argument("--repeats", type=int, default=1,
                        help="run every prompt this many times, the lane order reversed on every other repeat; "
                             "later repeats find each prompt in the paged lanes' prefix cache")
    parser.add_argument("--settle", type=float, default=SETTLE_SECONDS,
                        help="untimed seconds before each run, so no lane pays for the one before (0: none)")
    parser.add_argument("--device", default="CPU")
    parser.add_argument("--properties", type=json.loads, default=None, metavar="JSON",
                        help=f"OpenVINO properties for every pipeline (default on CPU: {json.dumps(DEFAULT_PROPERTIES)}; "
                             "'{}' for the device's own defaults)")
    parser.add_argument("--exact", action="store_true",
                        help="bit-identical lanes: the target without dynamic activation quantization, whose "
                             "one-token steps round differently from drafted steps (CPU; ~17%% slower both sides)")
    parser.add_argument("--draft-properties", type=json.loads, default=None, metavar="JSON",
                        help="OpenVINO properties for the draft model only (default: the same as --properties)")
    parser.add_argument("--baseline-backend", choices=BASELINE_BACKENDS, default=DEFAULT_BASELINE_BACKEND,
                        help="paged: GenAI's default pipeline, the drafted lanes' backend and scheduler (default); "
                             "stateful: the SDPA backend, which caches no prompt prefix (comparison only)")
    parser.add_argument("--json", dest="json_out", type=Path, help="write the report here")
    parser.add_argument("--html", type=Path, help="write a plotly HTML report here")
    args = parser.parse_args(argv)
    try:
        lanes = parse_lanes(args.lanes)
        compare = parse_compare(args.compare, lanes)
        prompts = load_prompts(args.prompts)
        if args.max_new_tokens < 1 or args.repeats < 1:
            raise ValueError("--max-new-tokens and --repeats must be at least 1")
        if args.limit is not None:
            if args.limit < 1:
                raise ValueError("--limit takes a number of prompts >= 1")
            prompts = prompts[:args.limit]
        if not 0 <= args.settle <= 60:
            raise ValueError("--settle takes 0 to 60 seconds")
        ready = prepare.prepare_from_args(args)
        engine = Engine(ready, device=args.device, baseline_backend=args.baseline_backend, properties=args.properties,
                        draft_properties=args.draft_properties, exact=args.exact,
                        keep_pipelines=None)  # its lanes interleave prompt by prompt: every pipeline stays
        report = run_bench(engine, prompts, lanes, args.max_new_tokens, args.num_assistant_tokens, args.repeats,
                           args.confidence_threshold, args.settle, compare)
    except (ValueError, OSError, PrepareError, EngineError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    # every published figure names its prompt set and half, its baseline and the command that made it
    report["prompts_file"] = str(args.prompts)
    report["prompt_set"] = describe_set(args.prompts)
    report["limit"] = args.limit
    report["command"] = shlex.join(["python", "-m", "demo.bench", *(sys.argv[1:] if argv is None else argv)])
    print(table(report))
    if args.json_out:
        args.json_out.write_text(json.dumps(report, indent=1))
        progress(f"wrote {args.json_out}")
    if args.html:
        from demo.bench.report import write_html

        write_html(report, args.html)
        progress(f"wrote {args.html}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
