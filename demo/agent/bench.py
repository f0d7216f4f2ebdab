"""Deck-task success rate and time of the agent, by agent kind and with/without the draft, in one process.

python -m demo.agent_bench --preset P [--tasks FILE.jsonl] [--agents code,tool] [--speculative on,off]
    [--max-steps N] [--no-search] [--smolagents-prompt] --out DIR [--json OUT]

A task succeeds when its run folder holds a deck with at least the task's number of slides, every slide
titled, and one of the task's keywords somewhere in the deck (on topic).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from demo.agent import run as agent, slides
from demo.models import PrepareError, prepare
from demo.engine import Engine, EngineError
from demo.prompt_sets import PROMPTS_DIR

DEFAULT_TASKS = PROMPTS_DIR / "deck_tasks.jsonl"


def load_tasks(path: Path) -> list[dict]:
    tasks = []
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                t = json.loads(line)
                tasks.append({"task": str(t["task"]), "slides": int(t.get("slides", 1)),
                              "keywords": [str(k).lower() for k in t.get("keywords", [])]})
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"{path}:{i}: expected {{\"task\", \"slides\", \"keywords\"}}") from exc
    if not tasks:
        raise ValueError(f"{path} holds no tasks")
    return tasks


def judge(task: dict, files: list[str]) -> tuple[bool, str]:
    """Whether the run produced the deck the task asked for, and why not."""
    if not files:
        return False, "no deck"
    texts = slides.slide_texts(Path(files[0]))
    if len(texts) < task["slides"]:
        return False, f"{len(texts)} slides, asked for {task['slides']}"
    if any(not title.strip() for title, _ in texts):
        return False, "a slide without a title"
    words = " ".join(f"{t} {' '.join(b)}" for t, b in texts).lower()
    if task["keywords"] and not any(k in words for k in task["keywords"]):
        return False, "off topic"
    return True, f"{len(texts)} slides"


def run_one(engine: Engine, task: dict, out_dir: Path, kind: str, use_draft: bool, max_steps: int,
            search: bool, short_prompt: bool = True) -> dict:
    result = None
    for item in agent.run_agent(engine, task["task"], out_dir, use_draft=use_draft, max_steps=max_steps,
                                search=search, kind=kind, short_prompt=short_prompt):
        if not isinstance(item, agent.TraceItem):
            result = item
    ok, why = judge(task, result.files)
    return {"task": task["task"], "agent": kind, "draft": use_draft, "success": ok, "verdict": why,
            "steps": result.steps, "seconds": round(result.seconds, 1), "tokens": result.tokens,
            "tokens_per_second": result.tokens_per_second, "files": result.files}


def summarize(rows: list[dict]) -> list[dict]:
    out = []
    for kind in dict.fromkeys(r["agent"] for r in rows):
        for draft in dict.fromkeys(r["draft"] for r in rows):
            sel = [r for r in rows if r["agent"] == kind and r["draft"] == draft]
            if sel:
                out.append({"agent": kind, "draft": draft, "success": sum(r["success"] for r in sel), "runs": len(sel),
                            "seconds": round(sum(r["seconds"] for r in sel), 1),
                            "steps": sum(r["steps"] for r in sel), "tokens": sum(r["tokens"] for r in sel)})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo.agent_bench", description=__doc__.splitlines()[0])
    prepare.add_arguments(parser)
    parser.add_argument("--tasks", type=Path, default=DEFAULT_TASKS)
    parser.add_argument("--agents", default=agent.DEFAULT_KIND, help="comma list of: " + ", ".join(agent.AGENT_KINDS))
    parser.add_argument("--speculative", dest="drafts", default="on",
                        help="comma list: on (target + draft), off (target alone)")
    parser.add_argument("--max-steps", type=int, default=agent.MAX_STEPS)
    parser.add_argument("--no-search", action="store_true")
    parser.add_argument("--smolagents-prompt", action="store_true",
                        help="smolagents' own long system prompt instead of the short one (to compare)")
    parser.add_argument("--out", type=Path, required=True, help="run folders go here")
    parser.add_argument("--json", dest="json_out", type=Path)
    args = parser.parse_args(argv)
    try:
        tasks = load_tasks(args.tasks)
        kinds = [k.strip() for k in args.agents.split(",") if k.strip()]
        drafts = [d.strip() == "on" for d in args.drafts.split(",") if d.strip() in ("on", "off")]
        if not kinds or any(k not in agent.AGENT_KINDS for k in kinds) or not drafts:
            raise ValueError(f"--agents takes {', '.join(agent.AGENT_KINDS)}; --speculative takes on, off")
        engine = Engine(prepare.prepare_from_args(args))
        rows = []
        for i, task in enumerate(tasks, 1):
            for kind in kinds:
                for use_draft in drafts:
                    folder = args.out / f"t{i}-{kind}-{'draft' if use_draft else 'plain'}"
                    row = run_one(engine, task, folder, kind, use_draft, args.max_steps, not args.no_search,
                                  not args.smolagents_prompt)
                    rows.append(row)
                    print(f"[agent-bench] task {i} {kind} draft={'on' if use_draft else 'off'}: "
                          f"{'ok' if row['success'] else 'FAIL'} ({row['verdict']}), {row['steps']} steps, "
                          f"{row['seconds']} s, {row['tokens']} tokens", file=sys.stderr, flush=True)
    except (ValueError, OSError, PrepareError, EngineError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    summary = summarize(rows)
    for s in summary:
        print(f"{s['agent']:<5} draft {'on ' if s['draft'] else 'off'}  success {s['success']}/{s['runs']}  "
              f"{s['seconds']:>7.1f} s  {s['steps']} steps  {s['tokens']} tokens")
    if args.json_out:
        args.json_out.write_text(json.dumps({"summary": summary, "runs": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
