"""A short KL healing run through demo.models.prune.heal.heal (the project's own load/train/save path).
steps=0 gives the 'zero-step healed' checkpoint: same load and save_pretrained, no optimizer step.
usage: python heal_short.py OUT STEPS [LR] [BATCH]"""
import json, sys, inspect
from pathlib import Path
sys.path.insert(0, "/work/main")
from transformers import AutoTokenizer
from demo.models.prune.heal import heal, encode_pairs
from demo.prompt_sets import PROMPTS_DIR, load_prompts

P = Path.home() / ".cache/specdemo/qwen2.5-coder-1.5b/prune/qwen2.5-coder-0.5b"
out, steps = Path(sys.argv[1]), int(sys.argv[2])
lr = float(sys.argv[3]) if len(sys.argv) > 3 else 1e-5
batch = int(sys.argv[4]) if len(sys.argv) > 4 else 2
tok = AutoTokenizer.from_pretrained(P / "hf")
# KL needs no target text: heal.jsonl prompts paired with chunks of Python stdlib sources (CE weight 0.1 on them)
import json as _j, textwrap, argparse, functools, collections, pathlib, shutil, csv, statistics
mods = [_j, textwrap, argparse, functools, collections, pathlib, shutil, csv, statistics]
chunks = []
for m in mods:
    src = inspect.getsource(m)
    chunks += [src[i:i + 900] for i in range(2000, min(len(src), 2000 + 900 * 2), 900)]
prompts = load_prompts(PROMPTS_DIR / "heal.jsonl")
pairs = [{"prompt": p, "response": c} for p, c in zip(prompts, chunks)]
held = [json.loads(l) for l in (Path(__file__).parent / "eval-texts.jsonl").read_text().splitlines()]
ex = encode_pairs(tok, pairs, max_length=320)
print(len(ex), "train examples,", sum(len(i) for i, _ in ex), "tokens", flush=True)
stats = heal(P / "cut-6l", out, ex, steps=steps, lr=lr, part="layers", teacher_dir=P / "hf", kl_weight=0.9,
             eval_examples=encode_pairs(tok, held), batch=batch)
(out / "heal.json").write_text(json.dumps(stats, indent=1))
print(stats)
