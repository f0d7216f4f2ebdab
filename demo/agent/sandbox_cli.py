"""python -m demo.sandbox: run a file of agent code exactly the way the Agent tab runs model-written code.

    python -m demo.sandbox --folder DIR [--json] [--render] [--raw] FILE.py
    python -m demo.sandbox --check [--json]

The same executor, jail, limits, import rules and tools, in a fresh confined process; the folder is laid out
as a run's (demo/agent/runfolder.py). --render then does what the Agent tab does with the folder: the newest
deck, the shape check's reading of it and the previews, all in the jail. --raw runs the file as plain Python
in the same jail with smolagents' layer off, to test the boundary as if that layer were walked around.
With --json the last line is {"ok", "output", "error", "confined", "files", "outline", "previews", "renderer"};
`files` are the regular files the code left, as the server copied them out.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from smolagents.default_tools import FinalAnswerTool
from smolagents.local_python_executor import InterpreterError

from demo.agent import jail, runfolder, slides
from demo.agent.run import AUTHORIZED_IMPORTS
from demo.agent.sandbox import CodeLimits, SandboxExecutor
from demo.agent.tools import SearchTool


def run_file(code: str, folder: Path, imports: list[str], limits: CodeLimits | None = None,
             tools: dict[str, Any] | None = None, raw: bool = False, render: bool = False) -> dict:
    """Run one code block in a fresh sandbox, as an agent step (then, with render, read and draw its deck as
    the Agent tab does); the CLI's JSON object."""
    executor = SandboxExecutor(folder, imports, limits)
    executor.send_tools(tools or {})
    try:
        out = executor.run(code, raw=raw)
        text = out.logs + ("" if out.output is None else str(out.output))
        result = {"ok": True, "output": text, "error": None}
    except InterpreterError as exc:
        result = {"ok": False, "output": executor.state["_print_outputs"], "error": str(exc)}
    finally:
        executor.cleanup()
    run = runfolder.RunFolder(folder)
    result.update(confined=jail.mechanism().confined, outline=None, previews=[], renderer=None,
                  files=sorted(str(p) for p in run.files.rglob("*") if p.is_file() and not p.is_symlink())
                  if run.files.is_dir() else [])
    saved = runfolder.decks(folder)
    if render and saved:
        try:
            result["outline"] = slides.slide_texts(saved[0], uid=run.tool_uid)
            pngs, result["renderer"] = slides.preview(saved[0], run.previews, uid=run.tool_uid)
            result["previews"] = [str(p) for p in pngs]
        except slides.DeckError as exc:
            result.update(ok=False, error=str(exc))
    return result


def report() -> dict:
    """What is confined on this machine, and why not where it is not (--check)."""
    found = jail.mechanism()
    group = jail.Cgroup.create(f"check-{os.getpid()}", 64, 256 << 20) if found.confined else None
    if group is not None:
        group.remove()
    _, version = jail.Cgroup._own()
    return {
        "confined": found.confined, "state": found.state, "detail": found.detail,
        "host_uid": ("a fresh unprivileged uid per run (setpriv)" if jail.is_root()
                     else f"the server's own uid {os.geteuid()} (not root)"),
        "run_limits": (f"cgroup {version}: at most {runfolder.RUN_PROCESSES} processes and "
                       f"{runfolder.RUN_MEMORY >> 20} MiB for all of a run's processes" if group is not None else
                       f"per process only (RLIMIT_NPROC {runfolder.RUN_PROCESSES} per jail, RLIMIT_AS): "
                       f"no writable cgroup here ({version})"),
        "run_folder": runfolder.folder_mechanism(),
        "renderer": slides.renderer_name() + (", confined" if found.confined else ""),
    }


def check(as_json: bool) -> int:
    found = report()
    if as_json:
        print(json.dumps(found))
    else:
        state = "confined" if found["confined"] else f"NOT confined ({found['state']})"
        print(f"agent code here: {state}: {found['detail']}")
        for key in ("host_uid", "run_limits", "run_folder", "renderer"):
            print(f"  {key.replace('_', ' ')}: {found[key]}")
    return 0 if found["confined"] else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo.sandbox",
                                     description="Run a file of agent code the way the Agent tab runs it.")
    parser.add_argument("file", type=Path, nargs="?", help="a file of agent code (Python, as the model writes it)")
    parser.add_argument("--folder", type=Path, help="the run folder: its work/ is the code's only writable place")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    parser.add_argument("--render", action="store_true",
                        help="then read the newest deck and draw its previews, as the Agent tab does")
    parser.add_argument("--raw", action="store_true", help="plain Python in the same jail, smolagents' layer off")
    parser.add_argument("--check", action="store_true", help="say what is confined on this machine, and why not")
    parser.add_argument(jail.UNCONFINED_FLAG, dest="allow_unconfined", action="store_true",
                        help="without bubblewrap installed, run the code unconfined (never when it is installed "
                             "but failing)")
    parser.add_argument("--step-seconds", type=float, default=CodeLimits.step_seconds,
                        help=f"the code's time limit (default {CodeLimits.step_seconds:.0f}, as an agent step)")
    args = parser.parse_args(argv)
    jail.allow_unconfined(args.allow_unconfined)
    if args.check:
        return check(args.json)
    if args.file is None or args.folder is None:
        parser.error("give FILE.py and --folder DIR (or --check)")
    try:
        code = args.file.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        print(f"error: cannot read {args.file}: {getattr(exc, 'strerror', None) or exc}", file=sys.stderr)
        return 2
    problem = jail.refusal(public=False)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        if args.json:
            print(json.dumps({"ok": False, "output": "", "error": problem, "confined": False, "files": [],
                              "outline": None, "previews": [], "renderer": None}))
        return 2
    if not jail.mechanism().confined:
        print(f"warning: {jail.notice(False)}", file=sys.stderr)
    tools = {"web_search": SearchTool(), "final_answer": FinalAnswerTool()}
    limits = CodeLimits(step_seconds=args.step_seconds)
    result = run_file(code, args.folder, AUTHORIZED_IMPORTS, limits, tools, raw=args.raw, render=args.render)
    if args.json:
        print(json.dumps(result))
    else:
        print(result["output"])
        if result["error"]:
            print(f"error: {result['error']}", file=sys.stderr)
        print(f"files: {', '.join(result['files']) or 'none'}", file=sys.stderr)
        if result["previews"]:
            print(f"previews ({result['renderer']}): {', '.join(result['previews'])}", file=sys.stderr)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
