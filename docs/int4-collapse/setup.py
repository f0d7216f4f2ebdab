"""Step 0: the uncut draft as a float32 checkpoint, the cut (layers 8-13, as the angular analysis chose in
docs/performance.md s.13), and the target's greedy answers to the 8 code prompts (held-out eval text)."""
import json, sys, time
from pathlib import Path
sys.path.insert(0, "/work/main")
from demo import catalog
from demo.models import prepare
from demo.models.prune.cli import Workspace
from demo.models.prune.cut import cut_checkpoint
from demo.prompt_sets import PROMPTS_DIR, load_prompts

OUT = Path(__file__).resolve().parent  # results, eval texts and exports land beside the scripts
ws = Workspace(catalog.PRESETS["qwen2.5-coder-1.5b"], None, None, 6)
t0 = time.time()
hf = ws.hf_checkpoint()
print("hf", hf, time.time() - t0, flush=True)
if not (ws.cut / "config.json").exists():
    cut_checkpoint(hf, ws.cut, 8, 6)
print("cut", ws.cut, time.time() - t0, flush=True)
evalf = OUT / "eval-texts.jsonl"
if not evalf.exists():
    from demo.engine import Engine, Request
    prepared = prepare.prepare(ws.preset, None)
    eng = Engine(prepared)
    rows = []
    for p in load_prompts(PROMPTS_DIR / "code.jsonl"):
        r = eng.generate(Request(p, lane="speculative", max_new_tokens=96))
        rows.append({"prompt": p, "response": r.text})
        print("gen", len(rows), time.time() - t0, flush=True)
    evalf.write_text("".join(json.dumps(r) + "\n" for r in rows))
print("done", time.time() - t0)
