"""Deck-task pass rate and time of the agent, by agent kind and with/without the draft, in one process.

python -m demo.agent_bench --preset P [--tasks FILE.jsonl] [--half dev|test] [--agents code,tool]
    [--speculative on,off] [--shape parser|model] [--max-steps N] [--budget S] [--exact] [--no-search]
    [--smolagents-prompt] [--without LEVER,...|all] --out DIR [--json OUT]

Judged strictly against the task file (not against the agent's own reading of the request): the newest deck in
the run folder has exactly the task's number of slides, every title present and distinct, at least the task's
bullets on every slide, and one of its keywords somewhere (on topic). Tune on the dev half, report the test half.
A run that spends its time budget fails. With both draft settings the order alternates per task, and the report's
top level pairs them: time_ratio (mean over tasks of seconds without the draft / seconds with it) with a 95%
bootstrap interval over tasks, each lane's pass rate, decode tokens/s and the ratio over tasks whose outputs were
identical; every run has its breakdown (where the time went, demo/agent/timing.py).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path

from demo.agent import deck_shape, run as agent, slides
from demo.bench import stats
from demo.models import PrepareError, prepare
from demo.engine import DEFAULT_NUM_ASSISTANT_TOKENS, SETTLE_SECONDS, Engine, EngineError
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
    try:
        texts = slides.slide_texts(Path(files[0]))
    except slides.DeckError as exc:  # read in the jail: a deck that cannot be read fails the task
        return False, str(exc)
    found = deck_shape.problems(task_shape(task), texts)
    if found:
        return False, "; ".join(found)
    return True, f"{len(texts)} slides"


def run_one(engine: Engine, task: dict, out_dir: Path, kind: str, use_draft: bool, max_steps: int,
            search: bool, short_prompt: bool = True, shape_from: str = "parser",
            budget: float | None = agent.BUDGET_SECONDS, speedups: agent.Speedups = agent.Speedups(),
            draft_settings: dict | None = None) -> dict:
    result = None
    model = agent.make_model(engine, use_draft=use_draft)
    if draft_settings and hasattr(model, "draft_settings"):
        model.draft_settings = dict(draft_settings)
    for item in agent.run_agent(engine, task["task"], out_dir, use_draft=use_draft, max_steps=max_steps, model=model,
                                search=search, kind=kind, short_prompt=short_prompt, shape_from=shape_from,
                                budget=budget, speedups=speedups):
        if not isinstance(item, agent.TraceItem):
            result = item
    ok, why = judge(task, result.files)
    if result.budget_spent:  # a run that hangs a visitor fails, whatever it left behind
        ok, why = False, f"time budget of {budget:.0f} s spent ({why})"
    b = result.breakdown
    return {"task": task["task"], "index": task.get("index"), "split": task["split"], "agent": kind,
            "draft": use_draft, "success": ok, "verdict": why, "final_answer": result.final_answer,
            "errors": [t.text[:400] for t in result.trace if t.kind == "error"],
            "steps": result.steps, "seconds": round(result.seconds, 1), "tokens": result.tokens,
            "tokens_per_second": result.tokens_per_second,
            "decode_tokens_per_second": round(b["decode_tokens"] / b["decode_s"], 2) if b.get("decode_s") else None,
            "budget_spent": result.budget_spent, "loops": result.loops, "repairs": result.repairs,
            "breakdown": b, "calls": result.calls, "output_sha": output_sha(result.outputs),
            # other processes on the machine skew the timing: the 1-minute load average as the run ended
            "load_avg": round(os.getloadavg()[0], 2),
            "files": result.files}


def output_sha(outputs: list[str]) -> str:
    """One fingerprint of everything the model wrote in a run: equal fingerprints, identical runs."""
    return hashlib.sha256("\x00".join(outputs).encode()).hexdigest()[:16]


def paired(rows: list[dict]) -> dict:
    """The lanes on the same tasks: time_ratio = mean over tasks of seconds(off) / seconds(on) with its 95%
    bootstrap interval over tasks (demo.bench.stats), each lane's pass rate, median seconds and decode tokens/s,
    and the same ratio over the tasks whose two runs wrote identical outputs (speed, not a different path)."""
    on = {(r["agent"], r["index"]): r for r in rows if r["draft"]}
    off = {(r["agent"], r["index"]): r for r in rows if not r["draft"]}
    keys = [k for k in on if k in off]
    out: dict = {}
    for name, lane in (("draft", on), ("plain", off)):
        sel = list(lane.values())
        if sel:
            decode_s = sum(r["breakdown"].get("decode_s", 0) for r in sel)
            out[f"pass_rate_{name}"] = round(sum(r["success"] for r in sel) / len(sel), 3)
            out[f"median_seconds_{name}"] = round(statistics.median(r["seconds"] for r in sel), 1)
            out[f"decode_tokens_per_second_{name}"] = round(
                sum(r["breakdown"].get("decode_tokens", 0) for r in sel) / decode_s, 2) if decode_s else None
            out[f"breakdown_{name}"] = {k: round(sum(r["breakdown"].get(k, 0) for r in sel), 1)
                                        for k in (*agent.timing.CATEGORIES, "other_s", "prompt_tokens",
                                                  "cached_tokens", "decode_tokens")}
            out[f"loops_{name}"] = sum(r.get("loops", 0) for r in sel)
            out[f"budget_spent_{name}"] = sum(bool(r.get("budget_spent")) for r in sel)
    if not keys:
        return out
    ratios = [off[k]["seconds"] / on[k]["seconds"] for k in keys if on[k]["seconds"] > 0]
    ratio, ci = stats.mean_ci(ratios)
    same = [k for k in keys if on[k]["output_sha"] == off[k]["output_sha"]]
    same_ratios = [off[k]["seconds"] / on[k]["seconds"] for k in same if on[k]["seconds"] > 0]
    out.update({"paired_tasks": len(ratios), "time_ratio": round(ratio, 3) if ratio else None,
                "time_ratio_ci": [round(x, 3) for x in ci] if ci else None,
                "identical_tasks": len(same),
                "time_ratio_identical": round(sum(same_ratios) / len(same_ratios), 3) if same_ratios else None,
                "seconds_identical_draft": round(sum(on[k]["seconds"] for k in same), 1),
                "seconds_identical_plain": round(sum(off[k]["seconds"] for k in same), 1)})
    return out


def peak_rss_mb() -> dict:
    """Peak resident memory of this process (the engine and both lanes' pipelines), in MB. The confined processes
    are not added: a forked child's ru_maxrss counts the parent's pages it shared before exec."""
    return {"peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def summarize(rows: list[dict], drafts: list[bool] | None = None) -> list[dict]:
    """Pass rate, time, steps and tokens per half, agent kind and draft setting (in the order of `drafts`)."""
    out = []
    for half in dict.fromkeys(r.get("split", "dev") for r in rows):
        for kind in dict.fromkeys(r["agent"] for r in rows):
            for draft in drafts or dict.fromkeys(r["draft"] for r in rows):
                sel = [r for r in rows if r.get("split", "dev") == half and r["agent"] == kind and r["draft"] == draft]
                if sel:
                    ok = sum(r["success"] for r in sel)
                    out.append({"half": half, "agent": kind, "draft": draft, "success": ok, "runs": len(sel),
                                "pass_rate": round(ok / len(sel), 3),
                                "seconds": round(sum(r["seconds"] for r in sel), 1),
                                "steps": sum(r["steps"] for r in sel), "tokens": sum(r["tokens"] for r in sel)})
    return out


def report(about: dict, rows: list[dict], drafts: list[bool]) -> dict:
    """The JSON report: how it was measured, the paired figures, peak memory, the summary and every run."""
    return {**about, **paired(rows), **peak_rss_mb(), "summary": summarize(rows, drafts), "runs": rows}


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
    parser.add_argument("--budget", type=float, default=agent.BUDGET_SECONDS,
                        help="wall-clock seconds per agent run before it stops as a failure; 0: none "
                             f"(default {agent.BUDGET_SECONDS:.0f})")
    parser.add_argument("--settle", type=float, default=SETTLE_SECONDS,
                        help="untimed seconds before each run for the CPU to settle, as the race and demo.bench "
                             f"do (default {SETTLE_SECONDS:g})")
    parser.add_argument("--exact", action="store_true",
                        help="bit-identical lanes (the engine's exact numerics): both lanes write the same tokens, "
                             "so the time ratio measures the draft alone")
    parser.add_argument("--without", default="",
                        help="speed levers to turn off, to measure them: all or a comma list of " +
                             ", ".join(agent.LEVERS))
    parser.add_argument("--draft-name", help="the draft of the drafted lane (default: the preset's first)")
    parser.add_argument("--num-assistant-tokens", type=int, help="draft length of agent steps (default: the engine's)")
    parser.add_argument("--threshold", type=float, help="draft while the draft's confidence is above this, "
                                                         "instead of a fixed length")
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
        speedups = agent.speedups_without(args.without)
        draft_settings = {k: v for k, v in (("draft", args.draft_name),
                                            ("num_assistant_tokens", args.num_assistant_tokens),
                                            ("assistant_confidence_threshold", args.threshold)) if v is not None}
        engine = Engine(prepare.prepare_from_args(args), exact=args.exact)
        # start-up, as the app's: the pipelines load and compile before any task, untimed
        lanes = tuple("speculative" if d else "baseline" for d in drafts)
        engine.warm_up(lanes, log=lambda m: print(f"[agent-bench] {m}", file=sys.stderr, flush=True))
        if speedups.fixed_prompt and kinds == ["code"]:
            agent.prewarm(engine, lanes, not args.no_search,
                          log=lambda m: print(f"[agent-bench] {m}", file=sys.stderr, flush=True))
        # how the figures were measured travels with them
        about = {"command": "python -m demo.agent_bench " + " ".join(sys.argv[1:] if argv is None else argv),
                 "engine": engine.describe(), "drafts": list(engine.drafts),
                 "num_assistant_tokens": args.num_assistant_tokens or DEFAULT_NUM_ASSISTANT_TOKENS,
                 "draft_settings": draft_settings, "tasks": str(args.tasks), "half": args.half or "all",
                 "shape": args.shape, "max_steps": args.max_steps, "search": not args.no_search,
                 "budget_seconds": args.budget or None, "exact": args.exact, "settle_seconds": args.settle,
                 "levers": {k: getattr(speedups, k) for k in agent.LEVERS},
                 "order": "alternating per task" if len(drafts) > 1 else "one lane"}
        rows = []
        for n, task in enumerate(tasks):
            i = task["index"]
            for kind in kinds:
                # the lane that runs first alternates, so neither lane always finds the CPU fresh
                for use_draft in (drafts if n % 2 == 0 else drafts[::-1]):
                    folder = args.out / f"t{i}-{kind}-{'draft' if use_draft else 'plain'}"
                    if folder.exists() and any(folder.iterdir()):  # an old deck there would be judged instead
                        raise ValueError(f"{folder} already holds a run; use a new --out")
                    time.sleep(args.settle)  # a lane run straight after another is slower (request.SETTLE_SECONDS)
                    row = run_one(engine, task, folder, kind, use_draft, args.max_steps, not args.no_search,
                                  not args.smolagents_prompt, args.shape, args.budget or None, speedups,
                                  draft_settings)
                    rows.append(row)
                    if args.json_out:  # after every run, so a long benchmark that stops keeps what it measured
                        args.json_out.write_text(json.dumps(report(about, rows, drafts), indent=1))
                    b = row["breakdown"]
                    print(f"[agent-bench] task {i} ({task['split']}) {kind} draft={'on' if use_draft else 'off'}: "
                          f"{'ok' if row['success'] else 'FAIL'} ({row['verdict']}), {row['steps']} steps, "
                          f"{row['seconds']} s, {row['tokens']} tokens; prefill {b['prefill_s']} s "
                          f"({b['prompt_tokens']} prompt, {b['cached_tokens']} cached), decode {b['decode_s']} s, "
                          f"code {b['code_s']} s, shape {b['shape_s']} s, other {b['other_s']} s",
                          file=sys.stderr, flush=True)
    except (ValueError, OSError, PrepareError, EngineError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    summary = summarize(rows, drafts)
    top = paired(rows)
    if "time_ratio" in top:
        print(f"time ratio (without / with the draft, mean over {top['paired_tasks']} tasks): {top['time_ratio']} "
              f"{top['time_ratio_ci']}; pass {top['pass_rate_draft']:.0%} with, {top['pass_rate_plain']:.0%} "
              f"without; identical outputs on {top['identical_tasks']} tasks")
    for s in summary:
        print(f"{s['half']:<4} {s['agent']:<5} draft {'on ' if s['draft'] else 'off'}  pass {s['success']}/{s['runs']} "
              f"({s['pass_rate']:.0%})  {s['seconds']:>7.1f} s  {s['steps']} steps  {s['tokens']} tokens")
    return 0


if __name__ == "__main__":
    sys.exit(main())
