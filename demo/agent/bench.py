"""Deck-task pass rate and time of the agent, by agent kind and with/without the draft, in one process.

python -m demo.agent_bench --preset P [--tasks FILE.jsonl] [--half dev|test] [--agents code,tool]
    [--speculative on,off] [--shape parser|model] [--max-steps N] [--no-search] [--smolagents-prompt]
    --out DIR [--json OUT]

Judged strictly against the task file (not against the agent's own reading of the request): the newest deck in
the run folder has exactly the task's number of slides, every title present and distinct, at least the task's
bullets on every slide, and one of its keywords somewhere (on topic). Tune on the dev half, report the test half.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from demo.agent import deck_shape, run as agent, slides
from demo.models import PrepareError, prepare
from demo.engine import DEFAULT_NUM_ASSISTANT_TOKENS, Engine, EngineError
from demo.prompt_sets import PROMPTS_DIR

DEFAULT_TASKS = PROMPTS_DIR / "deck_tasks.jsonl"
HALVES = ("dev", "test")


def load_tasks(path: Path) -> list[dict]:
    tasks = []
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                t = json.loads(line)
                tasks.append({"task": str(t["task"]), "slides": int(t.get("slides", 1)),
                              "bullets": int(t.get("bullets", 1)), "search": bool(t.get("search", False)),
                              "split": str(t.get("split", "dev")), "index": len(tasks) + 1,
                              "keywords": [str(k).lower() for k in t.get("keywords", [])]})
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"{path}:{i}: expected {{\"task\", \"slides\", \"bullets\", \"keywords\", "
                                 f"\"split\"}}") from exc
            if tasks[-1]["split"] not in HALVES:
                raise ValueError(f"{path}:{i}: split must be one of {', '.join(HALVES)}")
    if not tasks:
        raise ValueError(f"{path} holds no tasks")
    return tasks


def task_shape(task: dict) -> deck_shape.DeckShape:
    """The shape written in the task file (the judge never uses the agent's own reading of the request)."""
    return deck_shape.DeckShape(slides=task["slides"], bullets=task.get("bullets", 1),
                                topic=tuple(task["keywords"]), search=task.get("search", False), source="task file")


def judge(task: dict, files: list[str]) -> tuple[bool, str]:
    """Whether the run's newest deck is the deck the task asked for, and why not."""
    if not files:
        return False, "no deck"
    texts = slides.slide_texts(Path(files[0]))
    found = deck_shape.problems(task_shape(task), texts)
    if found:
        return False, "; ".join(found)
    return True, f"{len(texts)} slides"


def run_one(engine: Engine, task: dict, out_dir: Path, kind: str, use_draft: bool, max_steps: int,
            search: bool, short_prompt: bool = True, shape_from: str = "parser") -> dict:
    result = None
    for item in agent.run_agent(engine, task["task"], out_dir, use_draft=use_draft, max_steps=max_steps,
                                search=search, kind=kind, short_prompt=short_prompt, shape_from=shape_from):
        if not isinstance(item, agent.TraceItem):
            result = item
    ok, why = judge(task, result.files)
    return {"task": task["task"], "split": task["split"], "agent": kind, "draft": use_draft, "success": ok,
            "verdict": why, "final_answer": result.final_answer,
            "errors": [t.text[:400] for t in result.trace if t.kind == "error"],
            "steps": result.steps, "seconds": round(result.seconds, 1), "tokens": result.tokens,
            "tokens_per_second": result.tokens_per_second, "files": result.files}


def summarize(rows: list[dict]) -> list[dict]:
    """Pass rate, time, steps and tokens per half, agent kind and draft setting."""
    out = []
    for half in dict.fromkeys(r.get("split", "dev") for r in rows):
        for kind in dict.fromkeys(r["agent"] for r in rows):
            for draft in dict.fromkeys(r["draft"] for r in rows):
                sel = [r for r in rows if r.get("split", "dev") == half and r["agent"] == kind and r["draft"] == draft]
                if sel:
                    ok = sum(r["success"] for r in sel)
                    out.append({"half": half, "agent": kind, "draft": draft, "success": ok, "runs": len(sel),
                                "pass_rate": round(ok / len(sel), 3),
                                "seconds": round(sum(r["seconds"] for r in sel), 1),
                                "steps": sum(r["steps"] for r in sel), "tokens": sum(r["tokens"] for r in sel)})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo.agent_bench", description=__doc__.splitlines()[0])
    prepare.add_arguments(parser)
    parser.add_argument("--tasks", type=Path, default=DEFAULT_TASKS)
    parser.add_argument("--half", choices=HALVES, help="only the tasks of this half (default: all)")
    parser.add_argument("--shape", choices=agent.SHAPE_FROM, default="parser",
                        help="how the agent reads the asked deck shape from the request")
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
        tasks = [t for t in load_tasks(args.tasks) if args.half in (None, t["split"])]
        if not tasks:
            raise ValueError(f"{args.tasks} holds no {args.half} tasks")
        kinds = [k.strip() for k in args.agents.split(",") if k.strip()]
        drafts = [d.strip() == "on" for d in args.drafts.split(",") if d.strip() in ("on", "off")]
        if not kinds or any(k not in agent.AGENT_KINDS for k in kinds) or not drafts:
            raise ValueError(f"--agents takes {', '.join(agent.AGENT_KINDS)}; --speculative takes on, off")
        engine = Engine(prepare.prepare_from_args(args))
        # how the figures were measured travels with them
        about = {"command": "python -m demo.agent_bench " + " ".join(sys.argv[1:] if argv is None else argv),
                 "engine": engine.describe(), "drafts": list(engine.drafts),
                 "num_assistant_tokens": DEFAULT_NUM_ASSISTANT_TOKENS, "tasks": str(args.tasks), "half": args.half or "all",
                 "shape": args.shape, "max_steps": args.max_steps, "search": not args.no_search}
        rows = []
        for task in tasks:
            i = task["index"]
            for kind in kinds:
                for use_draft in drafts:
                    folder = args.out / f"t{i}-{kind}-{'draft' if use_draft else 'plain'}"
                    if folder.exists() and any(folder.iterdir()):  # an old deck there would be judged instead
                        raise ValueError(f"{folder} already holds a run; use a new --out")
                    row = run_one(engine, task, folder, kind, use_draft, args.max_steps, not args.no_search,
                                  not args.smolagents_prompt, args.shape)
                    rows.append(row)
                    if args.json_out:  # after every run, so a long benchmark that stops keeps what it measured
                        args.json_out.write_text(json.dumps({**about, "summary": summarize(rows), "runs": rows},
                                                            indent=1))
                    print(f"[agent-bench] task {i} ({task['split']}) {kind} draft={'on' if use_draft else 'off'}: "
                          f"{'ok' if row['success'] else 'FAIL'} ({row['verdict']}), {row['steps']} steps, "
                          f"{row['seconds']} s, {row['tokens']} tokens", file=sys.stderr, flush=True)
    except (ValueError, OSError, PrepareError, EngineError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    summary = summarize(rows)
    for s in summary:
        print(f"{s['half']:<4} {s['agent']:<5} draft {'on ' if s['draft'] else 'off'}  pass {s['success']}/{s['runs']} "
              f"({s['pass_rate']:.0%})  {s['seconds']:>7.1f} s  {s['steps']} steps  {s['tokens']} tokens")
    return 0


if __name__ == "__main__":
    sys.exit(main())
