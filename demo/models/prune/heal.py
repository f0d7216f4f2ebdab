"""Heal a cut draft: fine-tune it on text that the target generated (sequence-level distillation), optionally
with a KL term towards a teacher's logits (the uncut draft, or the target itself)."""
from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path


def target_texts(engine, prompts: list[str], max_new_tokens: int, cache: Path, batch: int = 48) -> list[dict]:
    """{prompt, response} pairs from the target (greedy), cached in a JSON-lines file. The prompts go to the
    target `batch` at a time (Engine.complete_many); each finished batch is cached, so a stopped run resumes."""
    done = {}
    if cache.exists():
        for line in cache.read_text().splitlines():
            row = json.loads(line)
            done[row["prompt"]] = row
    todo = list(dict.fromkeys(p for p in prompts if p not in done))
    with open(cache, "a") as out:
        for i in range(0, len(todo), batch):
            chunk = todo[i: i + batch]
            t0 = time.monotonic()
            for prompt, text in zip(chunk, engine.complete_many(chunk, max_new_tokens)):
                done[prompt] = {"prompt": prompt, "response": text}
                out.write(json.dumps(done[prompt]) + "\n")
            out.flush()
            print(f"[heal] target texts {i + len(chunk)}/{len(todo)} ({time.monotonic() - t0:.0f} s for {len(chunk)})",
                  file=sys.stderr, flush=True)
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
    """Parameters to train: 'all'; 'layers' (the decoder layers: embedding, head and final norm frozen, the
    parts a few thousand tokens would only blur); or 'ffn' (the MLP blocks only)."""
    params = []
    for name, p in model.named_parameters():
        p.requires_grad = (part == "all" or (part == "layers" and ".layers." in name)
                           or (part == "ffn" and ".mlp." in name))
        if p.requires_grad:
            params.append(p)
    return params


def step_loss(model, ids, labels, teacher=None, kl_weight: float = 0.0):
    """Cross-entropy on the target's tokens, blended with KL(teacher || model) over every position (the
    prompt too: the teacher's whole next-token distribution, not just the one token the target picked)."""
    import torch
    import torch.nn.functional as F

    logits = model(input_ids=ids).logits[0, :-1].float()
    targets = labels[0, 1:]
    ce = F.cross_entropy(logits, targets, ignore_index=-100)
    if teacher is None or kl_weight <= 0:
        return ce, {"ce": ce.item()}
    with torch.no_grad():
        t_logp = F.log_softmax(teacher(input_ids=ids).logits[0, :-1].float(), dim=-1)
    kl = F.kl_div(F.log_softmax(logits, dim=-1), t_logp, log_target=True, reduction="batchmean")
    return kl_weight * kl + (1 - kl_weight) * ce, {"ce": ce.item(), "kl": kl.item()}


def evaluate(model, examples) -> dict:
    """Mean cross-entropy on the labelled tokens, and greedy agreement: the share of them that the model's
    argmax predicts. Agreement with the target's own greedy text is what a draft's acceptance rate measures."""
    import torch

    model.eval()
    device = next(model.parameters()).device
    losses, hit, total = [], 0, 0
    with torch.no_grad():
        for ids, lab in examples:
            ids_t, lab_t = torch.tensor([ids], device=device), torch.tensor([lab], device=device)
            out = model(input_ids=ids_t, labels=lab_t)
            losses.append(float(out.loss))
            pred, want = out.logits[0, :-1].argmax(-1), lab_t[0, 1:]
            mask = want != -100
            hit += int((pred[mask] == want[mask]).sum())
            total += int(mask.sum())
    return {"loss": sum(losses) / len(losses), "agreement": hit / max(total, 1)}


def lr_at(step: int, steps: int, lr: float, warmup: int) -> float:
    """Linear warm-up, then linear decay to a tenth: Adam's first steps on batch-1 gradients are the noisiest."""
    if step < warmup:
        return lr * (step + 1) / warmup
    return lr * (1 - 0.9 * (step - warmup) / max(steps - warmup, 1))


def heal(model_dir: Path, out_dir: Path, examples, steps: int = 100, lr: float = 2e-5, part: str = "all",
         checkpoint_every: int = 20, device: str | None = None, log=None, teacher_dir: Path | None = None,
         kl_weight: float = 0.0, eval_examples=None, warmup: int | None = None, batch: int = 1,
         lora: dict | None = None, eval_every: int = 10) -> dict:
    """Fine-tune, resuming from out_dir/checkpoint when present; returns loss and agreement before and
    after (on eval_examples, held out, when given; else on the first training examples). A step is one
    optimizer update over `batch` examples (gradients accumulated).

    lora={"rank", "alpha", "targets"} trains a LoRA adapter on those linear layers instead (part is then
    unused): its fp16 A and B go to out_dir/delta (demo.models.prune.delta), the merged model to out_dir.

    Every `eval_every` steps the probe's agreement joins `curve`, with the tokens trained on so far: the
    healing curve. Evaluation draws no random numbers, so it leaves the trained weights unchanged."""
    import torch
    from transformers import AutoModelForCausalLM

    from demo.models.prune import delta

    log = log or (lambda m: print(f"[heal] {m}", file=sys.stderr, flush=True))
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    warmup = max(1, steps // 10) if warmup is None else max(1, warmup)
    probe = eval_examples or examples[:8]
    lora = {**lora, "targets": list(lora["targets"])} if lora else None  # as state.json holds it
    ckpt = out_dir / "checkpoint"
    start_step = 0
    state = json.loads((ckpt / "state.json").read_text()) if (ckpt / "state.json").exists() else None
    resume = state is not None and state.get("lora") == lora  # never resume a LoRA run from a full one or back
    model = AutoModelForCausalLM.from_pretrained(ckpt if resume and not lora else model_dir, dtype=torch.float32)
    if lora:
        torch.manual_seed(0)  # LoRA's A starts random: the recipe's command re-creates the same adapter
        model = delta.add_lora(model, lora["rank"], lora["alpha"], lora["targets"])
        if resume and model.load_state_dict(torch.load(ckpt / "lora.pt"), strict=False).unexpected_keys:
            raise ValueError(f"{ckpt / 'lora.pt'} does not match the LoRA layers: delete {ckpt} and start again")
    model.to(device)
    teacher = None
    if teacher_dir is not None and kl_weight > 0:
        teacher = AutoModelForCausalLM.from_pretrained(teacher_dir, dtype=torch.float32).to(device).eval()
        if teacher.config.vocab_size != model.config.vocab_size:
            raise ValueError(f"teacher vocabulary {teacher.config.vocab_size} != draft {model.config.vocab_size}")
    params = [p for p in model.parameters() if p.requires_grad] if lora else trainable(model, part)
    opt = torch.optim.AdamW(params, lr=lr)
    before, curve = None, []
    if resume:
        start_step, before, curve = state["step"], state.get("before"), state.get("curve", [])
        opt.load_state_dict(torch.load(ckpt / "optimizer.pt", map_location=device))
        log(f"resuming at step {start_step}")
    else:
        before = evaluate(model.cpu(), probe)
        model.to(device)
        log(f"before: loss {before['loss']:.3f}, greedy agreement {before['agreement']:.3f}")
        curve = [{"step": 0, "tokens": 0, **before}]
    model.train()
    t0 = time.monotonic()
    for step in range(start_step, steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, steps, lr, warmup)
        parts = {}
        for j in range(batch):
            ids, labels = examples[(step * batch + j) % len(examples)]
            loss, one = step_loss(model, torch.tensor([ids], device=device), torch.tensor([labels], device=device),
                                  teacher, kl_weight)
            (loss / batch).backward()
            parts = {k: parts.get(k, 0.0) + v / batch for k, v in one.items()}
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad()
        done = step + 1 - start_step
        eta = (time.monotonic() - t0) / done * (steps - step - 1)
        detail = " ".join(f"{k} {v:.3f}" for k, v in parts.items())
        log(f"step {step + 1}/{steps} {detail} (ETA {eta:.0f} s)")
        if eval_every and (step + 1) % eval_every == 0 and step + 1 < steps:
            curve.append({"step": step + 1, "tokens": tokens_seen(examples, batch, step + 1), **evaluate(model, probe)})
            log(f"step {step + 1}: held-out greedy agreement {curve[-1]['agreement']:.3f}")
            model.train()
        if (step + 1) % checkpoint_every == 0 and step + 1 < steps:
            ckpt.mkdir(parents=True, exist_ok=True)
            if lora:
                torch.save({k: v for k, v in model.state_dict().items() if "lora_" in k}, ckpt / "lora.pt")
            else:
                model.save_pretrained(ckpt)
            torch.save(opt.state_dict(), ckpt / "optimizer.pt")
            (ckpt / "state.json").write_text(json.dumps({"step": step + 1, "before": before, "lora": lora,
                                                         "curve": curve}))
    model.to("cpu")
    if lora:
        adapter = delta.save_adapter(model, out_dir / "delta")
        lora = {**lora, "dtype": "float16", "adapter_bytes": adapter.stat().st_size}
        model = model.merge_and_unload()
    after = evaluate(model, probe)
    log(f"after: loss {after['loss']:.3f}, greedy agreement {after['agreement']:.3f}")
    curve.append({"step": steps, "tokens": tokens_seen(examples, batch, steps), **after})
    model.save_pretrained(out_dir)
    shutil.rmtree(ckpt, ignore_errors=True)  # model + optimizer state: several GB, only needed to resume
    if not lora:
        shutil.rmtree(out_dir / "delta", ignore_errors=True)  # an earlier LoRA run's delta no longer matches
    return {"loss_before": before["loss"], "loss_after": after["loss"], "agreement_before": before["agreement"],
            "agreement_after": after["agreement"], "held_out": bool(eval_examples), "steps": steps,
            "part": "lora" if lora else part, "lr": lr, "batch": batch,
            "teacher": str(teacher_dir) if teacher is not None else None, "kl_weight": kl_weight, "lora": lora,
            "curve": curve}


def tokens_seen(examples, batch: int, steps: int) -> int:
    """Tokens the first `steps` steps trained on (every position counts: the KL term covers the prompt too)."""
    return sum(len(examples[i % len(examples)][0]) for i in range(steps * batch))
