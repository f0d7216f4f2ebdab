"""python -m demo.sandbox --folder DIR [--json] FILE.py: run a file of agent code exactly the way the Agent tab
runs model-written code: the same executor, confinement, import rules and tools, in a fresh confined process.
With --json the last line is {"ok": bool, "output": str, "error": str or null, "files": [paths in DIR]}."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from smolagents.default_tools import FinalAnswerTool
from smolagents.local_python_executor import InterpreterError

from demo.agent.run import AUTHORIZED_IMPORTS
from demo.agent.sandbox import CodeLimits, SandboxExecutor, mechanism, notice
from demo.agent.tools import SearchTool


def run_file(code: str, folder: Path, imports: list[str], limits: CodeLimits | None = None,
             tools: dict[str, Any] | None = None) -> dict:
    """Run one code block in a fresh sandbox, as an agent step; the CLI's JSON object."""
    executor = SandboxExecutor(folder, imports, limits)
    executor.send_tools(tools or {})
    try:
        out = executor(code)
        text = out.logs + ("" if out.output is None else str(out.output))
        result = {"ok": True, "output": text, "error": None}
    except InterpreterError as exc:
        result = {"ok": False, "output": executor.state["_print_outputs"], "error": str(exc)}
    finally:
        executor.cleanup()
    result["files"] = sorted(str(p) for p in Path(folder).rglob("*") if p.is_file())
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo.sandbox",
                                     description="Run a file of agent code the way the Agent tab runs it.")
    parser.add_argument("file", type=Path, help="a file of agent code (Python, as the model writes it)")
    parser.add_argument("--folder", type=Path, required=True, help="the run folder: the code's only writable place")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    parser.add_argument("--step-seconds", type=float, default=CodeLimits.step_seconds,
                        help=f"the code's time limit (default {CodeLimits.step_seconds:.0f}, as an agent step)")
    args = parser.parse_args(argv)
    try:
        code = args.file.read_text()
    except OSError as exc:
        print(f"error: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    found = mechanism()
    if not found.confined:
        print(f"warning: {notice(False)}", file=sys.stderr)
    args.folder.mkdir(parents=True, exist_ok=True)
    tools = {"web_search": SearchTool(), "final_answer": FinalAnswerTool()}
    limits = CodeLimits(step_seconds=args.step_seconds)
    result = run_file(code, args.folder, AUTHORIZED_IMPORTS, limits, tools)
    if args.json:
        print(json.dumps(result))
    else:
        print(result["output"])
        if result["error"]:
            print(f"error: {result['error']}", file=sys.stderr)
        print(f"files: {', '.join(result['files']) or 'none'}", file=sys.stderr)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
