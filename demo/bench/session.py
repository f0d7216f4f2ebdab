"""A booth session against the real app over HTTP, watching its memory: 10 races, 3 agent runs, one Compare
and one agent run with every step allowed, one after another as visitors would; the app's RSS sampled every
half second, its peak (VmHWM) at the end.

python -m demo.bench.session [--preset P | --url URL --pid PID] [--races 10] [--agents 3] [--json OUT]
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import threading
import time
from pathlib import Path

from demo.bench.soak import AGENT_TASK, RACE_PROMPTS, endpoint_args, start_app
from demo.engine import memory
from demo.models import prepare

# a deck whose shape check is hard to pass, so the run goes on to its step limit (the long-context case)
LONG_TASK = ("Make a twelve-slide deck on the history of computing, one slide per decade from the 1900s to the "
             "2010s, each with a title, exactly five bullets and speaker notes, then check every slide")


class Sampler(threading.Thread):
    """The server's RSS every `every` seconds; the highest seen, per phase and overall."""

    def __init__(self, pid: int, every: float = 0.5):
        super().__init__(daemon=True)
        self.pid, self.every, self.peak, self.phase_peak = pid, every, 0, 0
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            rss = memory.rss_bytes(self.pid) or 0
            self.peak, self.phase_peak = max(self.peak, rss), max(self.phase_peak, rss)
            self.stop.wait(self.every)


def gb(n) -> float | None:
    return None if n is None else round(n / memory.GB, 2)


def main(argv: list[str] | None = None) -> int:
    from gradio_client import Client

    parser = argparse.ArgumentParser(prog="python -m demo.bench.session", description=__doc__.splitlines()[0])
    prepare.add_arguments(parser)
    parser.add_argument("--url", help="a running app (with --pid) instead of starting one")
    parser.add_argument("--pid", type=int)
    parser.add_argument("--races", type=int, default=10)
    parser.add_argument("--agents", type=int, default=3)
    parser.add_argument("--long-steps", type=int, default=10, help="the step limit of the last agent run")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--log", type=Path, default=Path("/tmp/specdemo-session.log"))
    args = parser.parse_args(argv)
    proc = None
    if args.url:
        url, pid = args.url, args.pid
    else:
        proc, url = start_app(args, args.log)
        pid = proc.pid
    sampler = Sampler(pid)
    sampler.start()
    client = Client(url, verbose=False)
    rows: list[dict] = []

    def phase(name: str, api: str, overrides: dict) -> None:
        sampler.phase_peak = 0
        t0 = time.monotonic()
        out = client.predict(*endpoint_args(client.config, api, overrides), api_name=f"/{api}")
        status = str(out[-1] if api == "race" else out[1])
        steps = re.search(r"(\d+) steps?", status)
        split = {f"{k}_gb": gb(v) for k, v in memory.breakdown(pid).items() if k != "rss"}
        rows.append({"phase": name, "seconds": round(time.monotonic() - t0, 1), "rss_gb": gb(memory.rss_bytes(pid)),
                     **split,
                     "phase_peak_gb": gb(sampler.phase_peak), "steps": int(steps.group(1)) if steps else None,
                     "problem": status[:200] if ("⚠️" in status if api == "race" else status.startswith("⚠️"))
                     else None})
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)

    rows.append({"phase": "started", "rss_gb": gb(memory.rss_bytes(pid))})
    try:
        for i in range(args.races):
            phase(f"race {i + 1}", "race", {"prompt": RACE_PROMPTS[i % len(RACE_PROMPTS)]})
        for i in range(args.agents):
            phase(f"agent {i + 1}", "agent", {"agent-task": AGENT_TASK})
        phase("compare", "agent_compare", {"agent-task": AGENT_TASK})
        phase("agent, every step allowed", "agent", {"agent-task": LONG_TASK, "agent-steps": args.long_steps})
    finally:
        sampler.stop.set()
        sampler.join()
        hwm = memory.peak_rss_bytes(pid)
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=60)
    out = {"peak_rss_gb_sampled": gb(sampler.peak), "peak_rss_gb_vmhwm": gb(hwm), "phases": rows,
           "command": "python -m demo.bench.session " + " ".join(argv if argv is not None else sys.argv[1:])}
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    print(json.dumps({k: v for k, v in out.items() if k != "phases"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
