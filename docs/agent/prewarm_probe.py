"""The first drafted agent steps after start-up, with or without the prewarm (docs/performance.md §19.5):
PYTHONPATH=. python docs/agent/prewarm_probe.py prewarm|noprewarm
Prints each step's seconds, tokens per target step, acceptance, cached tokens and the draft's prefill (ms)."""
import sys
import tempfile
import time
from pathlib import Path

from demo.models import prepare
from demo.engine import Engine
from demo.agent import run as agent, bench
from demo.agent.model import EngineModel
mode = sys.argv[1]
e = Engine(prepare.prepare(prepare.select_preset("qwen2.5-coder-1.5b")))
e.warm_up(("speculative", "baseline"))
if mode.startswith("prewarm"):
    agent.prewarm(e, ("speculative", "baseline"), True)
tasks = [t for t in bench.load_tasks(bench.DEFAULT_TASKS) if t["split"] == "test"]
tmp = Path(tempfile.mkdtemp())
for task in tasks[:3]:
    for rep in range(2 if task is tasks[0] else 1):
        shape = bench.task_shape(task)
        model = EngineModel(e, use_draft=True, max_new_tokens=300)
        a = agent.build_agent(model, out_dir=tmp, shape=shape, search=True)
        a.sandbox.cleanup()
        msgs = [{"role": "system", "content": a.system_prompt},
                {"role": "user", "content": "New task:\n" + agent.task_text(task["task"], shape)}]
        t = time.monotonic()
        r = e.generate(model._request(msgs, ["</code>"]))
        print(mode, task["index"], rep, len(r.tokens), round(time.monotonic() - t, 1), "tps/step", r.tokens_per_step,
              "acc", r.acceptance_rate, "cached", r.cached_tokens, "dpre", r.draft_prefill_ms, flush=True)
