"""Run the lanes on a prompt set in one process, interleaved prompt by prompt, greedy, and summarize them
with 95% bootstrap intervals over prompts (stats.py)."""
from __future__ import annotations

import itertools
import sys
import time
from dataclasses import dataclass

from demo import metrics
from demo.bench import stats
from demo.engine import LANES, SETTLE_SECONDS, Engine, Request, RunResult

# The warm-up prompt is none of the set's: the paged lanes cache prompt prefixes, and warming up on the
# first prompt would hand that prompt a cached prefix in every lane.
WARM_UP_PROMPT = "Count from one to ten."


@dataclass
class LaneSpec:
    name: str  # as given: "speculative:qwen2.5-coder-0.5b@3"
    lane: str
    draft: str | None = None
    k: int | None = None  # draft tokens per step for this lane (@K), else --num-assistant-tokens
    threshold: float | None = None  # draft while this confident (@0.T) instead of k tokens


def parse_lanes(text: str) -> list[LaneSpec]:
    """`baseline,speculative[:DRAFT][@K|@0.T],prompt-lookup[@K]`: @K draft tokens per step, @0.T (a number
    between 0 and 1 with a point) a confidence threshold on the speculative lane."""
    out = []
    for item in filter(None, (x.strip() for x in text.split(","))):
        spec, _, tail = item.partition("@")
        lane, _, draft = spec.partition(":")
        if lane not in LANES:
            raise ValueError(f"unknown lane {lane!r}; use {', '.join(LANES)} (speculative:DRAFT for a named draft)")
        if draft and lane != "speculative":
            raise ValueError(f"only the speculative lane takes a draft name, got {item!r}")
        k = threshold = None
        if tail:
            if lane != "baseline" and tail.isdigit() and int(tail) >= 1:
                k = int(tail)
            elif lane == "speculative" and "." in tail and _number(tail) is not None and 0 < _number(tail) < 1:
                threshold = _number(tail)
            else:
                raise ValueError(f"@K takes a number of draft tokens >= 1 on a drafting lane, or @0.T a confidence "
                                 f"threshold between 0 and 1 on the speculative lane, got {item!r}")
        if any(s.name == item for s in out):
            raise ValueError(f"lane {item!r} is given twice")
        out.append(LaneSpec(item, lane, draft or None, k, threshold))
    if not out:
        raise ValueError("no lanes given")
    return out


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def parse_compare(items: list[str] | None, lanes: list[LaneSpec]) -> list[tuple[str, str]]:
    """--compare A,B pairs (lane names as given in --lanes); by default every pair of drafted lanes."""
    names = [s.name for s in lanes]
    if not items:
        return list(itertools.combinations([s.name for s in lanes if s.lane != "baseline"], 2))
    pairs = []
    for item in items:
        a, sep, b = item.partition(",")
        if not sep or a.strip() not in names or b.strip() not in names or a.strip() == b.strip():
            raise ValueError(f"--compare takes two different lane names from --lanes, as A,B; got {item!r} "
                             f"(lanes: {', '.join(names)})")
        pairs.append((a.strip(), b.strip()))
    return pairs


def progress(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def _sum(results: list[RunResult], attr: str) -> float:
    return sum(getattr(r, attr) or 0 for r in results)


Runs = list[tuple[int, int, RunResult]]  # (repeat, prompt index, result)


def _pooled(runs: Runs) -> dict[int, tuple[int, float]]:
    """Prompt index -> (tokens, seconds) summed over the repeats."""
    out: dict[int, tuple[int, float]] = {}
    for _, idx, r in runs:
        tokens, seconds = out.get(idx, (0, 0.0))
        out[idx] = (tokens + len(r.tokens), seconds + r.seconds)
    return out


def _position_acceptance(results: list[RunResult]) -> list[float | None] | None:
    """Per-position acceptance pooled over runs: accepted k-th drafts over the steps that count at k."""
    if not results or any(r.per_position_steps is None for r in results):  # not knowable for this lane
        return None
    counted = [r for r in results if r.per_position_steps]
    if not counted:
        return None
    steps = sum(r.per_position_steps for r in counted)
    return [sum(r.per_position_acceptance[k] * r.per_position_steps for r in counted) / steps
            for k in range(len(counted[0].per_position_acceptance))]


def summarize_lane(spec: LaneSpec, runs: Runs, baseline: dict[tuple[int, int], RunResult] | None,
                   baseline_pooled: dict[int, tuple[int, float]] | None, baseline_tps: float | None) -> dict:
    """One lane's JSON entry. `baseline` maps (repeat, prompt index) to the baseline run it is checked against;
    `baseline_pooled` gives the baseline's tokens and seconds per prompt, summed over the repeats."""
    results = [r for _, _, r in runs]
    n_tokens, seconds = sum(len(r.tokens) for r in results), _sum(results, "seconds")
    tps = metrics.tokens_per_second(n_tokens, seconds)
    pooled = _pooled(runs)
    per_prompt = []
    for idx in sorted(pooled):
        mine = [(rep, r) for rep, i, r in runs if i == idx]
        rs = [r for _, r in mine]
        divs = [metrics.first_divergence(baseline[(rep, idx)].tokens, r.tokens)
                for rep, r in mine if baseline and (rep, idx) in baseline]
        tokens, secs = pooled[idx]
        prompt_tps = metrics.tokens_per_second(tokens, secs)
        base = baseline_pooled.get(idx) if baseline_pooled else None
        base_tps = metrics.tokens_per_second(*base) if base else None
        accepted, drafted = _sum(rs, "accepted"), _sum(rs, "drafted")
        decode_steps = sum(r.steps - 1 for r in rs if r.steps > 1)
        per_prompt.append({
            "prompt_index": idx, "runs": len(rs), "tokens": tokens, "seconds": round(secs, 4),
            "tokens_per_second": prompt_tps,
            "speedup": prompt_tps / base_tps if prompt_tps and base_tps else None,
            "ttft_ms": metrics.mean([r.ttft_ms for r in rs if r.ttft_ms is not None]),
            "steps": sum(r.steps for r in rs),
            "tokens_per_step": sum(len(r.tokens) - 1 for r in rs if r.steps > 1) / decode_steps
            if decode_steps else None,
            "accepted": accepted if spec.lane != "baseline" else None,
            "drafted": drafted if spec.lane != "baseline" and drafted else None,
            "acceptance_rate": metrics.acceptance_rate(accepted, drafted) if drafted else None,
            "per_position_acceptance": _position_acceptance(rs),
            "identical": all(d is None for d in divs) if divs else None,
            "first_divergence": min((d for d in divs if d is not None), default=None),
            "step_counts": rs[0].step_counts,  # the first run's
            "repeat_tokens_per_second": [r.tokens_per_second for r in rs],
        })
    is_spec = spec.lane != "baseline"
    steps = sum(r.steps - 1 for r in results if r.steps > 1)
    decode_tokens = sum(len(r.tokens) - 1 for r in results if r.steps > 1)
    accepted, drafted = _sum(results, "accepted"), _sum(results, "drafted")
    draft_ms = [r.draft_ms_per_token for r in results if r.draft_ms_per_token is not None]
    target_ms = [r.target_ms_per_step for r in results if r.target_ms_per_step is not None]
    tokens_step = decode_tokens / steps if is_spec and steps else None
    gamma = results[0].gamma if is_spec and spec.threshold is None else None  # per lane: @K may differ
    if is_spec and gamma is None:  # confidence threshold: mean drafted tokens per step
        gamma = drafted / steps if drafted and steps else None
    target_tok_ms = results[-1].target_ms_per_token
    c = 0.0 if spec.lane == "prompt-lookup" else metrics.cost_ratio(metrics.mean(draft_ms), target_tok_ms)
    alpha = metrics.alpha_from_tokens_per_step(tokens_step, gamma) if tokens_step and gamma else None
    speedup = speedup_ci = mean_speedup = mean_speedup_ci = None
    if baseline_pooled:
        common = [i for i in sorted(pooled) if i in baseline_pooled]
        _, speedup_ci = stats.ratio_of_rates_ci([pooled[i][0] for i in common], [pooled[i][1] for i in common],
                                                [baseline_pooled[i][0] for i in common],
                                                [baseline_pooled[i][1] for i in common])
        ratios = [p["speedup"] for p in per_prompt if p["speedup"] is not None]
        mean_speedup, mean_speedup_ci = stats.mean_ci(ratios)
        speedup = (tps / baseline_tps) if (tps and baseline_tps) else None
    identical = [p["identical"] for p in per_prompt if p["identical"] is not None]
    return {
        "name": spec.name, "lane": spec.lane, "draft": results[0].draft,
        "k": results[0].gamma if is_spec and spec.threshold is None else None,
        "confidence_threshold": spec.threshold if spec.lane == "speculative" else None,
        "tokens_per_second": tps,
        "speedup": speedup, "speedup_ci": speedup_ci,
        "mean_prompt_speedup": mean_speedup, "mean_prompt_speedup_ci": mean_speedup_ci,
        "identical_to_baseline": all(identical) if identical else None,
        "identical_prompts": sum(identical) if identical else None,
        "tokens_per_step": tokens_step,
        "acceptance_rate": metrics.acceptance_rate(accepted, drafted) if is_spec and drafted else None,
        "per_position_acceptance": _position_acceptance(results) if is_spec else None,
        "draft_ms_per_token": metrics.mean(draft_ms),
        "target_ms_per_step": metrics.mean(target_ms),
        "ttft_ms": metrics.mean([r.ttft_ms for r in results if r.ttft_ms is not None]),
        "gamma": gamma, "alpha": alpha, "c": c,
        "theoretical_speedup": metrics.theoretical_speedup(alpha, gamma or 0, c) if is_spec else None,
        "generated_tokens": n_tokens, "seconds": seconds,
        "per_prompt": per_prompt,
    }


def lane_order(first: list[LaneSpec], others: list[LaneSpec], rep: int, idx: int, n_prompts: int) -> list[LaneSpec]:
    """The order of the lanes for one prompt in one repeat: the baseline first and the drafted lanes rotating
    from prompt to prompt, because a pipeline run right after another one pays a warm-up
    (docs/performance.md, 8.3) and no lane should always be the one that pays it; every odd repeat runs the
    whole order backwards, so the baseline is not always first either."""
    shift = (rep * n_prompts + idx) % max(len(others), 1)
    order = first + others[shift:] + others[:shift]
    return order[::-1] if rep % 2 else order


def run_bench(engine: Engine, prompts: list[str], lanes: list[LaneSpec], max_new_tokens: int,
              num_assistant_tokens: int | None = None, repeats: int = 1,
              confidence_threshold: float | None = None, settle: float = SETTLE_SECONDS,
              compare: list[tuple[str, str]] | None = None) -> dict:
    """Warm each lane once, then run every prompt through every lane (interleaved, see lane_order),
    `repeats` times. Before each run the CPU gets `settle` untimed seconds."""
    def request(spec: LaneSpec, prompt: str, n: int) -> Request:
        if spec.lane == "baseline":
            return Request(prompt, max_new_tokens=n)
        threshold = spec.threshold
        if threshold is None and spec.k is None and spec.lane == "speculative":
            threshold = confidence_threshold
        # Its own pipeline per lane: lanes sharing one (same draft, other k) would find each prompt in its
        # prefix cache and skip the prefill that the baseline pays (about 14 ms a prompt token on 2 cores).
        return Request(prompt, lane=spec.lane, draft=spec.draft, max_new_tokens=n,
                       num_assistant_tokens=spec.k or num_assistant_tokens, assistant_confidence_threshold=threshold,
                       pipeline_instance=spec.name)

    # The baseline goes first so that c is measured against this process's own target step cost.
    order = sorted(lanes, key=lambda s: s.lane != "baseline")
    for spec in order:
        progress(f"warm-up {spec.name}")
        engine.generate(request(spec, WARM_UP_PROMPT, 8))
    runs: dict[str, Runs] = {s.name: [] for s in order}
    total, done, t0 = len(prompts) * repeats * len(order), 0, time.monotonic()
    first = [s for s in order if s.lane == "baseline"]
    others = [s for s in order if s.lane != "baseline"]
    for rep in range(repeats):
        for idx, prompt in enumerate(prompts):
            for spec in lane_order(first, others, rep, idx, len(prompts)):
                time.sleep(settle)
                r = engine.generate(request(spec, prompt, max_new_tokens))
                runs[spec.name].append((rep, idx, r))
                done += 1
                eta = (time.monotonic() - t0) / done * (total - done)
                progress(f"{done}/{total} prompt {idx + 1} {spec.name}: {len(r.tokens)} tokens, "
                         f"{r.tokens_per_second or 0:.2f} tok/s (ETA {eta:.0f} s)")
    base_spec = first[0] if first else None
    baseline = {(rep, idx): r for rep, idx, r in runs[base_spec.name]} if base_spec else None
    base_pooled = _pooled(runs[base_spec.name]) if base_spec else None
    base_tps = metrics.tokens_per_second(sum(t for t, _ in base_pooled.values()),
                                         sum(s for _, s in base_pooled.values())) if base_pooled else None
    entries = [summarize_lane(s, runs[s.name], baseline, base_pooled, base_tps) for s in order]
    by_name = {e["name"]: e for e in entries}
    comparisons = []
    for a, b in compare if compare is not None else parse_compare(None, lanes):
        pa = {p["prompt_index"]: p["tokens_per_second"] for p in by_name[a]["per_prompt"]}
        pb = {p["prompt_index"]: p["tokens_per_second"] for p in by_name[b]["per_prompt"]}
        common = sorted(set(pa) & set(pb))
        comparisons.append(stats.paired_comparison([pa[i] for i in common], [pb[i] for i in common], a, b))
    return {
        "device": engine.device_name(), "preset": engine.prepared.preset, "max_new_tokens": max_new_tokens,
        "repeats": repeats, "prompts": len(prompts), "num_assistant_tokens": num_assistant_tokens,
        "confidence_threshold": confidence_threshold, "settle_seconds": settle,
        "ci": {"level": stats.LEVEL, "method": "percentile bootstrap over prompts", "resamples": stats.RESAMPLES,
               "seed": stats.SEED},
        "settings": engine.settings(), "lanes": entries, "comparisons": comparisons,
    }


def _f(v, fmt: str) -> str:
    width = int(fmt.split(".")[0] or 0)
    return format(v, fmt) if isinstance(v, (int, float)) else "-".rjust(width)


def _ci(value, ci) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}x" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")


def table(report: dict) -> str:
    w = max(24, *(len(lane["name"]) + 2 for lane in report["lanes"]))
    head = (f"{'lane':<{w}} {'tok/s':>7} {'speedup [95% CI]':>21} {'mean speedup [95% CI]':>22} {'tok/step':>8} "
            f"{'accept':>6}  {'accept by position':<19} {'draft ms':>8} {'target ms':>9} {'theory':>6}  identical")
    rows = [head, "-" * len(head)]
    for lane in report["lanes"]:
        n = len(lane["per_prompt"])
        diverged = [str(p["prompt_index"] + 1) for p in lane["per_prompt"] if p["identical"] is False]
        ident = "-" if lane["identical_to_baseline"] is None else (
            f"{n}/{n}" if lane["identical_to_baseline"] else
            f"{lane['identical_prompts']}/{n} (differ: {', '.join(diverged)})")
        pos = lane.get("per_position_acceptance")
        pos_text = "/".join("-" if p is None else f"{p:.2f}" for p in pos) if pos else "-"
        theory = lane["theoretical_speedup"]
        rows.append(f"{lane['name']:<{w}} {_f(lane['tokens_per_second'], '7.2f')} "
                    f"{_ci(lane['speedup'], lane['speedup_ci']):>21} "
                    f"{_ci(lane['mean_prompt_speedup'], lane['mean_prompt_speedup_ci']):>22} "
                    f"{_f(lane['tokens_per_step'], '8.2f')} {_f(lane['acceptance_rate'], '6.2f')}  {pos_text:<19} "
                    f"{_f(lane['draft_ms_per_token'], '8.1f')} {_f(lane['target_ms_per_step'], '9.1f')} "
                    f"{_f(theory, '5.2f')}{'x' if theory else ' '}  {ident}")
    for c in report.get("comparisons", []):
        ratio = "-" if c["ratio"] is None else f"{c['ratio']:.3f}x [{c['ratio_ci'][0]:.3f}, {c['ratio_ci'][1]:.3f}]"
        rows.append(f"{c['a']} vs {c['b']}: speed ratio {ratio} over {c['prompts']} prompts: {c['verdict']}")
    settings, prompts = report.get("settings", {}), report.get("prompt_set") or {}
    half = f", {prompts['half']} half" if prompts.get("half") in ("dev", "test") else (
        ", smoke set" if prompts.get("half") == "smoke" else "")
    exact = " (exact: no dynamic activation quantization on the target)" if settings.get("exact") else ""
    rows.append(f"baseline: the {settings.get('baseline_backend', '?')} backend{exact}; {report['prompts']} prompts from "
                f"{prompts.get('file', '?')}{half}, {report['repeats']} repeat(s), {report['max_new_tokens']} new "
                f"tokens; speedup = aggregate tok/s ratio, mean speedup = mean of per-prompt ratios, 95% CIs by "
                f"bootstrap over prompts")
    return "\n".join(rows)
