"""Unhealed block-size sweep: held-out greedy agreement of the 0.5B draft with n = 4, 6, 8 layers cut by angular distance."""
import json, sys
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from demo.models.prune.cut import cut_layers
from demo.models.prune.heal import encode_pairs, evaluate

P = Path.home() / ".cache/specdemo/qwen2.5-coder-1.5b/prune/qwen2.5-coder-0.5b"
tok = AutoTokenizer.from_pretrained(P / "hf")
ex = encode_pairs(tok, [json.loads(l) for l in (P / "eval-texts.jsonl").read_text().splitlines()])
an = json.loads((P / "analysis.json").read_text())
torch.set_num_threads(1)
for n in (0, 4, 6, 8):
    model = AutoModelForCausalLM.from_pretrained(P / "hf", dtype=torch.float32)
    start = None
    if n:
        v = an["distances"][str(n)]; start = min(range(len(v)), key=v.__getitem__)
        model = cut_layers(model, start, n)
    r = evaluate(model, ex)
    print(json.dumps({"n": n, "start": start, "distance": an["distances"][str(n)][start] if n else 0.0, **r}), flush=True)
