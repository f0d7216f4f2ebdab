"""New prompt tokens of each dev task's first agent step with and without the fixed prompt (docs/performance.md,
section 19): the real prompts through Qwen2.5's chat template and the engine's own cached-token derivation,
no model run.
usage: PYTHONPATH=. python docs/agent/first_step_tokens.py"""
import tempfile
from pathlib import Path

from transformers import AutoTokenizer
from smolagents.models import Model
from demo import metrics
from demo.agent import run as agent, bench
tok = AutoTokenizer.from_pretrained(str(Path.home()/".cache/specdemo/qwen2.5-coder-1.5b/tokenizer"))
m = Model(model_id="x"); tmp = Path(tempfile.mkdtemp())
tasks = [t for t in bench.load_tasks(bench.DEFAULT_TASKS) if t["split"] == "dev"]
def ids(system, user):
    return tok.apply_chat_template([{"role": "system", "content": system}, {"role": "user", "content": user}],
                                   add_generation_prompt=True, tokenize=True, return_dict=False)
for fixed in (False, True):
    sp = agent.Speedups(fixed_prompt=fixed)
    seen = []
    if fixed:
        a = agent.build_agent(m, out_dir=tmp, shape=None, speedups=sp, search=True); a.sandbox.cleanup()
        seen.append(ids(a.system_prompt, "New task:\n"))
    out = []
    for t in tasks:
        shape = bench.task_shape(t)
        shape = agent.deck_shape.parse_request(t["task"])
        a = agent.build_agent(m, out_dir=tmp, shape=shape, speedups=sp, search=True); a.sandbox.cleanup()
        p = ids(a.system_prompt, "New task:\n" + agent.task_text(t["task"], shape, sp))
        p = list(p["input_ids"]) if hasattr(p, "keys") else list(p)
        c = metrics.cached_prefix_tokens(p, seen)
        out.append((len(p), c, len(p) - c)); seen.append(p)
    print("fixed" if fixed else "per-task", out, "new total", sum(x[2] for x in out))
