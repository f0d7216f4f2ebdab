"""Teacher-forced greedy agreement of OpenVINO IR drafts on the heal's held-out probe (the target's answers to
assets/prompts/code.jsonl, eval-texts.jsonl), the same measure heal.evaluate() gives for torch checkpoints.
usage: python docs/heal/ov_agree.py IR_NAME...   (folders of ~/.cache/specdemo/qwen2.5-coder-1.5b)"""
import json, sys
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import torch
from transformers import AutoTokenizer
from optimum.intel import OVModelForCausalLM
from demo.models.prune.heal import encode_pairs
C = Path.home() / ".cache/specdemo/qwen2.5-coder-1.5b"
P = C / "prune/qwen2.5-coder-0.5b"
tok = AutoTokenizer.from_pretrained(P / "hf")
EX = encode_pairs(tok, [json.loads(l) for l in (P / "eval-texts.jsonl").read_text().splitlines()])
for name in sys.argv[1:]:
    m = OVModelForCausalLM.from_pretrained(C / name, compile=True, ov_config={"INFERENCE_PRECISION_HINT": "f32"})
    hit = total = 0
    for ids, lab in EX:
        t = torch.tensor([ids])
        logits = torch.as_tensor(m(input_ids=t, attention_mask=torch.ones_like(t)).logits)
        pred, want = logits[0, :-1].argmax(-1), torch.tensor(lab[1:])
        k = want != -100
        hit += int((pred[k] == want[k]).sum()); total += int(k.sum())
    print(json.dumps({"ir": name, "agreement": round(hit / total, 4), "tokens": total}), flush=True)
