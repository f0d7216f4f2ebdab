"""Why drafted output leaves the paged baseline's at the same token for every draft and k (docs/performance.md
14.4): four code dev prompts, 56 tokens, four lanes, the target's compile properties varied (the draft's kept).
Run from the repository root: python docs/identity/lanes_agree.py  (writes tokens.json in the current folder)"""
import json, sys, time
from demo import catalog
from demo.models import prepare
from demo.engine import Engine, Request
from demo.prompt_sets import load_prompts, PROMPTS_DIR

prompts = load_prompts(PROMPTS_DIR / "code-dev.jsonl")
pick = {23: 4, 18: 10, 8: 19, 4: 46}  # 1-based prompt -> first divergence seen in the dev bench
prepared = prepare.prepare(catalog.PRESETS["qwen2.5-coder-1.5b"], None)
T = "qwen2.5-coder-0.5b-int4-trimhead"
N = 56
base = {"INFERENCE_PRECISION_HINT": "f32", "KV_CACHE_PRECISION": "f32"}
variants = {
    "default": base,
    "kv_u8": {**base, "KV_CACHE_PRECISION": "u8"},
    "dq0": {**base, "DYNAMIC_QUANTIZATION_GROUP_SIZE": "0"},
}
out = {}
for vname, props in variants.items():
    eng = Engine(prepared, properties=props, draft_properties=base)
    for lane, kw in [("baseline", {}), ("speculative", {"draft": T}), ("prompt-lookup", {}),
                     ("speculative@1", {"draft": T, "num_assistant_tokens": 1})]:
        toks = []
        for i in pick:
            r = eng.generate(Request(prompts[i - 1], lane=lane.split("@")[0], max_new_tokens=N, **kw))
            toks.append(list(r.tokens))
        out[f"{vname}/{lane}"] = toks
        print(vname, lane, flush=True)
    del eng
json.dump(out, open("tokens.json", "w"))

def div(a, b):
    for j, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return j + 1
    return "-"
keys = list(out)
for ref in ("default/baseline", "default/speculative"):
    print("vs", ref)
    for k in keys:
        print(f"  {k:28s}", [div(a, b) for a, b in zip(out[k], out[ref])])
