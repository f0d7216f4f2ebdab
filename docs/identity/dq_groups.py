"""Does any DYNAMIC_QUANTIZATION_GROUP_SIZE make one-token and multi-token steps agree? 4 code dev prompts, 56 tokens."""
import json, sys, time
sys.path.insert(0, ".")  # run from the repository root
from demo import catalog
from demo.models import prepare
from demo.engine import Engine, Request
from demo.prompt_sets import load_prompts, PROMPTS_DIR

prompts = load_prompts(PROMPTS_DIR / "code-dev.jsonl")
pick = [23, 18, 8, 4]
prepared = prepare.prepare(catalog.PRESETS["qwen2.5-coder-1.5b"], None)
T = "qwen2.5-coder-0.5b-int4-trimhead"
N = 56
base = {"INFERENCE_PRECISION_HINT": "f32", "KV_CACHE_PRECISION": "f32"}
def div(a, b):
    for j, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return j + 1
    return "-"
for g in sys.argv[1:]:
    props = {**base, "DYNAMIC_QUANTIZATION_GROUP_SIZE": g}
    eng = Engine(prepared, properties=props, draft_properties=base)
    res = {}
    for lane, kw in [("baseline", {}), ("speculative", {"draft": T})]:
        toks, secs = [], 0.0
        for i in pick:
            t0 = time.monotonic()
            r = eng.generate(Request(prompts[i - 1], lane=lane, max_new_tokens=N, **kw))
            secs += time.monotonic() - t0
            toks.append(list(r.tokens))
        res[lane] = (toks, secs)
    print(json.dumps({"group": g, "divergence": [div(a, b) for a, b in zip(res["baseline"][0], res["speculative"][0])],
                      "baseline_s": round(res["baseline"][1], 1), "spec_s": round(res["speculative"][1], 1)}), flush=True)
    del eng
