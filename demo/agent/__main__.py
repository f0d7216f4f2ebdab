"""A smolagents CodeAgent on the local engine: web search and python-pptx slide decks.

python -m demo.agent --preset P --task TEXT --out DIR [--no-draft] [--max-steps N] [--budget S] [--exact] --json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from demo.agent.run import AGENT_KINDS, BUDGET_SECONDS, DEFAULT_KIND, MAX_STEPS, TraceItem, run_agent
from demo.engine import Engine, EngineError
from demo.models import PrepareError, prepare


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo.agent", description=__doc__.splitlines()[0])
    prepare.add_arguments(parser)
    parser.add_argument("--task", required=True)
    parser.add_argument("--out", required=True, type=Path, help="run folder; the deck is written here")
    parser.add_argument("--no-draft", action="store_true", help="run the target alone")
    parser.add_argument("--max-steps", type=int, default=MAX_STEPS)
    parser.add_argument("--budget", type=float, default=BUDGET_SECONDS,
                        help="wall-clock seconds before the run stops as a failure; 0: none "
                             f"(default {BUDGET_SECONDS:.0f})")
    parser.add_argument("--exact", action="store_true",
                        help="bit-identical lanes: the target without dynamic activation quantization (CPU)")
    parser.add_argument("--no-search", action="store_true", help="do not offer the web search tool")
    parser.add_argument("--agent", choices=AGENT_KINDS, default=DEFAULT_KIND,
                        help="smolagents CodeAgent (code) or ToolCallingAgent with a python_interpreter tool (tool)")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = parser.parse_args(argv)
    try:
        engine = Engine(prepare.prepare_from_args(args), exact=args.exact)
        result = None
        for item in run_agent(engine, args.task, args.out, use_draft=not args.no_draft, max_steps=args.max_steps,
                              search=not args.no_search, kind=args.agent, budget=args.budget or None):
            if isinstance(item, TraceItem):
                print(f"[step {item.step}] {item.kind}: {item.text[:2000]}", file=sys.stderr, flush=True)
            else:
                result = item
    except (PrepareError, EngineError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result.to_json()))
    else:
        print(f"final answer: {result.final_answer}\nfiles: {', '.join(result.files) or 'none'}\n"
              f"seconds: {result.seconds:.1f}; breakdown: {result.breakdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
