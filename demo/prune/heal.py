"""Heal a cut draft by sequence-level distillation: fine-tune it on text that the target generated."""
from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path


def target_texts(engine, prompts: list[str], max_new_tokens: int, cache: Path) -> list[dict]:
    """{prompt, response} pairs from the target (greedy), cached in a JSON-lines file. With a draft the
    speculative lane writes them: the target still chooses every token, a third faster."""
    from demo.engine import Request

    done = {}
    if cache.exists():
        for line in cache.read_text().splitlines():
            row = json.loads(line)
            done[row["prompt"]] = row
    with open(cache, "a") as out:
        for i, prompt in enumerate(prompts, 1):
            if prompt in done:
                continue
            lane = "speculative" if engine.drafts else "baseline"
            res = engine.generate(Request(prompt, lane=lane, max_new_tokens=max_new_tokens))
            done[prompt] = {"prompt": prompt, "response": res.text}
            out.write(json.dumps(done[prompt]) + "\n")
            out.flush()
            print(f"[heal] target text {i}/{len(prompts)}", file=sys.stderr, flush=True)
    return [done[p] for p in prompts]


def encode_pairs(tokenizer, pairs: list[dict], max_length: int = 512):
    """Token ids and labels with the prompt masked out (-100), using the chat template."""
    examples = []
    for row in pairs:
        prompt = tokenizer.apply_chat_template([{"role": "user", "content": row["prompt"]}], tokenize=False,
                                               add_generation_prompt=True)
        p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        r_ids = tokenizer(row["response"], add_special_tokens=False)["input_ids"]
        ids = (p_ids + r_ids)[:max_length]
        labels = ([-100] * len(p_ids) + r_ids)[:max_length]
        examples.append((ids, labels))
    return examples


def trainable(model, part: str):
    """Parameters to train: 'all', or 'ffn' (the MLP blocks only)."""
    params = []
    for name, p in model.named_parameters():
        p.requires_grad = part == "all" or ".mlp." in name
        if p.requires_grad:
            params.append(p)
    return params


def mean_loss(model, examples) -> float:
    import torch

    model.eval()
    with torch.no_grad():
        losses = [float(model(input_ids=torch.tensor([ids]), labels=torch.tensor([lab])).loss)
                  for ids, lab in examples]
    return sum(losses) / len(losses)


def heal(model_dir: Path, out_dir: Path, examples, steps: int = 100, lr: float = 2e-5, part: str = "all",
         checkpoint_every: int = 20, device: str | None = None, log=None) -> dict:
    """Fine-tune, resuming from out_dir/checkpoint when present; returns losses before and after."""
    import torch
    from transformers import AutoModelForCausalLM

    log = log or (lambda m: print(f"[heal] {m}", file=sys.stderr, flush=True))
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    ckpt = out_dir / "checkpoint"
    start_step = 0
    src = ckpt if (ckpt / "state.json").exists() else model_dir
    model = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32).to(device)
    params = trainable(model, part)
    opt = torch.optim.AdamW(params, lr=lr)
    if src == ckpt:
        state = json.loads((ckpt / "state.json").read_text())
        start_step = state["step"]
        opt.load_state_dict(torch.load(ckpt / "optimizer.pt", map_location=device))
        log(f"resuming at step {start_step}")
    before = mean_loss(model, [(i, l) for i, l in examples[:8]]) if start_step == 0 else None
    model.train()
    t0 = time.monotonic()
    for step in range(start_step, steps):
        ids, labels = examples[step % len(examples)]
        loss = model(input_ids=torch.tensor([ids], device=device), labels=torch.tensor([labels], device=device)).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad()
        done = step + 1 - start_step
        eta = (time.monotonic() - t0) / done * (steps - step - 1)
        log(f"step {step + 1}/{steps} loss {float(loss):.3f} (ETA {eta:.0f} s)")
        if (step + 1) % checkpoint_every == 0 and step + 1 < steps:
            model.save_pretrained(ckpt)
            torch.save(opt.state_dict(), ckpt / "optimizer.pt")
            (ckpt / "state.json").write_text(json.dumps({"step": step + 1}))
    model.to("cpu")
    after = mean_loss(model, [(i, l) for i, l in examples[:8]])
    model.save_pretrained(out_dir)
    shutil.rmtree(ckpt, ignore_errors=True)  # model + optimizer state: several GB, only needed to resume
    return {"loss_before": before, "loss_after": after, "steps": steps, "part": part}
