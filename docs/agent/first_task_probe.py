"""The first deck task after start-up, three times (with, with, without the draft) after the bench's warm-up and
prewarm: is the first drafted run slow? PYTHONPATH=. python docs/agent/first_task_probe.py (docs §19.4b)."""
import json
import shutil
import sys
from pathlib import Path

from demo.models import prepare
from demo.engine import Engine
from demo.agent import run as agent
ready = prepare.prepare(prepare.select_preset("qwen2.5-coder-1.5b"))
e = Engine(ready)
e.warm_up()
if "noprewarm" not in sys.argv:
    agent.prewarm(e, ("speculative", "baseline"), True)
task = [json.loads(l) for l in open("assets/prompts/deck_tasks.jsonl") if '"test"' in l][0]["task"]
for i, draft in enumerate((True, True, False)):
    out = Path(f"/tmp/probe2-{i}"); shutil.rmtree(out, ignore_errors=True)
    res = None
    for item in agent.run_agent(e, task, out, use_draft=draft, search=False):
        res = item
    b = res.breakdown
    print(i, draft, round(res.seconds, 1), res.tokens, {k: b.get(k) for k in ("prefill_s", "decode_s")}, flush=True)
