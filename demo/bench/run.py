"""Run the lanes on a prompt set in one process, interleaved prompt by prompt, greedy, and summarize them."""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass

from demo import metrics
from demo.engine import LANES, SETTLE_SECONDS, Engine, Request, RunResult


@dataclass
class LaneSpec:
    name: str  # as given: "speculative:qwen2.5-coder-0.5b@3"
    lane: str
    draft: str | None = None
    k: int | None = None  # draft tokens per step for this lane (@K), else --num-assistant-tokens


def parse_lanes(text: str) -> list[LaneSpec]:
    out = []
    for item in filter(None, (x.strip() for x in text.split(","))):
        spec, _, k = item.partition("@")
        lane, _, draft = spec.partition(":")
        if lane not in LANES:
            raise ValueError(f"unknown lane {lane!r}; use {', '.join(LANES)} (speculative:DRAFT for a named draft)")
        if draft and lane != "speculative":
            raise ValueError(f"only the speculative lane takes a draft name, got {item!r}")
        if k and (lane == "baseline" or not k.isdigit() or int(k) < 1):
            raise ValueError(f"@K takes a number of draft tokens >= 1 on a drafting lane, got {item!r}")
        out.append(LaneSpec(item, lane, draft or None, int(k) if k else None))
    if not out:
        raise ValueError("no lanes given")
    return out


def progress(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def _sum(results: list[RunResult], attr: str) -> float:
    return sum(getattr(r, attr) or 0 for r in results)


def summarize_lane(spec: LaneSpec, runs: list[tuple[int, RunResult]], baseline: dict[int, RunResult] | None,
                   baseline_tps: float | None) -> dict:
    """One lane's JSON entry; `baseline` maps prompt index to the baseline run of that prompt."""
    results = [r for _, r in runs]
    n_tokens, seconds = sum(len(r.tokens) for r in results), _sum(results, "seconds")
    tps = metrics.tokens_per_second(n_tokens, seconds)
    per_prompt = []
    for idx, r in runs:
        base = baseline.get(idx) if baseline else None
        div = metrics.first_divergence(base.tokens, r.tokens) if base is not None else None
        per_prompt.append({
            "prompt_index": idx, "tokens": len(r.tokens), "seconds": round(r.seconds, 4),
            "tokens_per_second": r.tokens_per_second, "ttft_ms": r.ttft_ms, "steps": r.steps,
            "tokens_per_step": r.tokens_per_step, "accepted": r.accepted, "drafted": r.drafted,
            "acceptance_rate": r.acceptance_rate,
            "identical": (div is None) if base is not None else None, "first_divergence": div,
            "step_counts": r.step_counts,
        })
    is_spec = spec.lane != "baseline"
    steps = sum(r.steps - 1 for r in results if r.steps > 1)
    decode_tokens = sum(len(r.tokens) - 1 for r in results if r.steps > 1)
    accepted, drafted = _sum(results, "accepted"), _sum(results, "drafted")
    draft_ms = [r.draft_ms_per_token for r in results if r.draft_ms_per_token is not None]
    target_ms = [r.target_ms_per_step for r in results if r.target_ms_per_step is not None]
    tokens_step = decode_tokens / steps if is_spec and steps else None
    gamma = results[0].gamma if is_spec else None  # per lane: @K may differ between lanes
    target_tok_ms = results[-1].target_ms_per_token
    c = 0.0 if spec.lane == "prompt-lookup" else metrics.cost_ratio(metrics.mean(draft_ms), target_tok_ms)
    alpha = metrics.alpha_from_tokens_per_step(tokens_step, gamma) if tokens_step and gamma else None
    return {
        "name": spec.name, "lane": spec.lane, "draft": results[0].draft,
        "tokens_per_second": tps,
        "speedup": (tps / baseline_tps) if (tps and baseline_tps) else None,
        "identical_to_baseline": all(p["identical"] for p in per_prompt) if baseline else None,
        "tokens_per_step": tokens_step,
        "acceptance_rate": metrics.acceptance_rate(accepted, drafted) if is_spec and drafted else None,
        "draft_ms_per_token": metrics.mean(draft_ms),
        "target_ms_per_step": metrics.mean(target_ms),
        "ttft_ms": metrics.mean([r.ttft_ms for r in results if r.ttft_ms is not None]),
        "gamma": gamma, "alpha": alpha, "c": c,
        "theoretical_speedup": metrics.theoretical_speedup(alpha, gamma or 0, c) if is_spec else None,
        "generated_tokens": n_tokens, "seconds": seconds,
        "per_prompt": per_prompt,
    }


def run_bench(engine: Engine, prompts: list[str], lanes: list[LaneSpec], max_new_tokens: int,
              num_assistant_tokens: int | None = None, repeats: int = 1,
              confidence_threshold: float | None = None, settle: float = SETTLE_SECONDS) -> dict:
    """Warm each lane once, then run every prompt through every lane (interleaved), `repeats` times. The
    baseline runs first for each prompt; the other lanes' order rotates from prompt to prompt, because a
    pipeline run right after another one pays a warm-up (docs/performance.md, 8.3) and no lane should
    always be the one that pays it. Before each run the CPU gets `settle` untimed seconds."""
    def request(spec: LaneSpec, prompt: str, n: int) -> Request:
        return Request(prompt, lane=spec.lane, draft=spec.draft, max_new_tokens=n,
                       num_assistant_tokens=(spec.k or num_assistant_tokens) if spec.lane != "baseline" else None,
                       assistant_confidence_threshold=confidence_threshold if spec.lane == "speculative" else None)

    # The baseline goes first so that c is measured against this process's own target step cost.
    order = sorted(lanes, key=lambda s: s.lane != "baseline")
    for spec in order:
        progress(f"warm-up {spec.name}")
        engine.generate(request(spec, prompts[0], 8))
    runs: dict[str, list[tuple[int, RunResult]]] = {s.name: [] for s in order}
    total, done, t0 = len(prompts) * repeats * len(order), 0, time.monotonic()
    first = [s for s in order if s.lane == "baseline"]
    others = [s for s in order if s.lane != "baseline"]
    for rep in range(repeats):
        for idx, prompt in enumerate(prompts):
            shift = (rep * len(prompts) + idx) % max(len(others), 1)
            for spec in first + others[shift:] + others[:shift]:
                time.sleep(settle)
                r = engine.generate(request(spec, prompt, max_new_tokens))
                runs[spec.name].append((idx, r))
                done += 1
                eta = (time.monotonic() - t0) / done * (total - done)
                progress(f"{done}/{total} prompt {idx + 1} {spec.name}: {len(r.tokens)} tokens, "
                         f"{r.tokens_per_second or 0:.2f} tok/s (ETA {eta:.0f} s)")
    base_spec = next((s for s in order if s.lane == "baseline"), None)
    baseline = {idx: r for idx, r in runs[base_spec.name]} if base_spec else None  # last repeat per prompt
    base_entry = summarize_lane(base_spec, runs[base_spec.name], baseline, None) if base_spec else None
    base_tps = base_entry["tokens_per_second"] if base_entry else None
    entries = [summarize_lane(s, runs[s.name], baseline, base_tps) for s in order]
    return {
        "device": engine.device_name(), "preset": engine.prepared.preset, "max_new_tokens": max_new_tokens,
        "repeats": repeats, "prompts": len(prompts), "num_assistant_tokens": num_assistant_tokens,
        "confidence_threshold": confidence_threshold, "settle_seconds": settle,
        "settings": engine.settings(), "lanes": entries,
    }


def table(report: dict) -> str:
    w = max(32, *(len(lane["name"]) + 2 for lane in report["lanes"]))
    head = f"{'lane':<{w}} {'tok/s':>7} {'speedup':>8} {'tok/step':>9} {'accept':>7} {'draft ms':>9} " \
           f"{'target ms':>10} {'theory':>7}  identical"
    rows = [head, "-" * len(head)]

    def f(v, fmt):
        width = int(fmt.split(".")[0] or 0)
        return format(v, fmt) if isinstance(v, (int, float)) else "-".rjust(width)

    for lane in report["lanes"]:
        diverged = [str(p["prompt_index"] + 1) for p in lane["per_prompt"] if p["identical"] is False]
        ident = "-" if lane["identical_to_baseline"] is None else (
            "yes" if lane["identical_to_baseline"] else f"no (prompts {', '.join(diverged)})")
        rows.append(f"{lane['name']:<{w}} {f(lane['tokens_per_second'], '7.2f')} {f(lane['speedup'], '7.2f')}{'x' if lane['speedup'] else ' '} "
                    f"{f(lane['tokens_per_step'], '9.2f')} {f(lane['acceptance_rate'], '7.2f')} "
                    f"{f(lane['draft_ms_per_token'], '9.1f')} {f(lane['target_ms_per_step'], '10.1f')} "
                    f"{f(lane['theoretical_speedup'], '6.2f')}{'x' if lane['theoretical_speedup'] else ' '}  {ident}")
    return "\n".join(rows)
