"""The Pruning tab: the angular-distance heatmap, the block removed, the heal, and every draft measured."""
from __future__ import annotations

import json

import gradio as gr

from demo import catalog
from demo import limits as caps
from demo.engine import Engine, EngineError, Request

PROMPT = "Write a Python function that returns the n-th Fibonacci number using memoization."


def analyses(engine: Engine) -> list[dict]:
    """This machine's pruning runs (in the model cache), then the preset's shipped deltas not run here."""
    root = catalog.cache_root() / engine.prepared.preset / "prune"
    out = []
    for f in sorted(root.glob("*/analysis.json")):
        data = json.loads(f.read_text())
        data["draft"] = f.parent.name
        heal = f.parent / f"healed-{data['n']}l" / "heal.json"
        data["heal"] = json.loads(heal.read_text()) if heal.exists() else None
        out.append(data)
    return out + [a for a in shipped(engine.prepared.preset) if (a["draft"], a["n"]) not in
                  {(o["draft"], o["n"]) for o in out}]


def shipped(preset_name: str) -> list[dict]:
    """The analysis and heal of each delta the preset ships (assets/drafts/<name>/analysis.json, recipe.json)."""
    from demo.models.prune import delta

    preset = catalog.PRESETS.get(preset_name)
    folders = {d.source.folder for d in (preset.drafts if preset else ()) if isinstance(d.source, catalog.DeltaSource)}
    out = []
    for folder in sorted(folders):
        path = delta.folder_path(folder)
        try:
            data = json.loads((path / "analysis.json").read_text())
            recipe = json.loads((path / delta.RECIPE).read_text())
        except (OSError, ValueError):
            continue
        heal = recipe.get("heal", {})  # "teacher" holds a cache path on the machine that healed: name its kind
        heal = {**heal, "lora": recipe.get("lora"), "teacher": heal.get("teacher_kind")}
        out.append({**data, "draft": recipe["base"]["draft"], "heal": heal, "shipped": str(folder)})
    return out


def compare_rows(engine: Engine, prompt: str, max_new_tokens: int = 96, limits: caps.Limits = caps.LOCAL) -> str:
    """Baseline and every draft on one prompt: the numbers that decide whether pruning pays."""
    problem = caps.text_problem(prompt, limits)
    if problem:
        return f"⚠️ {problem}"
    try:
        base = engine.generate(Request(prompt, max_new_tokens=max_new_tokens))
    except EngineError as exc:
        return f"⚠️ {exc}"
    rows = ["| lane | tokens/s | speedup | draft ms/token | tokens/step | identical |", "|---|---|---|---|---|---|",
            f"| baseline | {base.tokens_per_second:.2f} | 1.00× | – | 1 | – |"]
    for name in engine.drafts:
        try:
            r = engine.generate(Request(prompt, lane="speculative", draft=name, max_new_tokens=max_new_tokens))
        except EngineError as exc:
            rows.append(f"| {name} | failed: {exc} | | | | |")
            continue
        rows.append(f"| {name} | {r.tokens_per_second:.2f} | {base.seconds / r.seconds:.2f}× | "
                    f"{r.draft_ms_per_token or 0:.1f} | {r.tokens_per_step or 1:.2f} | "
                    f"{'yes' if r.tokens == base.tokens else 'no'} |")
    return "\n".join(rows)


def build(engine: Engine, limits: caps.Limits = caps.LOCAL) -> None:
    from demo.bench.report import draft_reports, drafts_markdown
    from demo.models.prune.cli import curve_figure, heatmap

    found = analyses(engine)
    if not found:
        gr.Markdown("No pruning analysis for this preset yet. Run `python -m demo.prune run` (see the README) "
                    "to analyse, cut, heal and export a pruned draft; it then appears here and in the draft list.")
    for a in found:
        gr.Markdown(f"**{a['draft']}**: {a['layers']} layers; removing layers {a['start']}–{a['start'] + a['n'] - 1} "
                    f"({a['n']} layers, {a['variant']} choice) changes the residual stream by an angular distance "
                    f"of {a['distance']:.3f}.")
        h = a.get("heal")
        if h and h.get("agreement_before") is not None:
            kind = {"draft": "the uncut draft", "target": "the target"}.get(h.get("teacher_kind"))
            teacher = f"KL towards {kind or h['teacher']}" if h.get("teacher") else "target text only"
            lora = h.get("lora")  # a LoRA heal ships as a delta of adapter_bytes
            if lora:
                teacher += f", LoRA rank {lora['rank']}, a {lora['adapter_bytes'] / 2**20:.1f} MiB delta"
            where = f" Shipped as the delta in `{a['shipped']}`." if a.get("shipped") else ""
            gr.Markdown(f"Healed ({h['steps']} steps, {teacher}): greedy agreement with the target's held-out answers "
                        f"{h['agreement_before']:.3f} → {h['agreement_after']:.3f} (what the acceptance rate measures)."
                        + where)
            if len(h.get("curve") or []) > 2:
                gr.Plot(curve_figure(h), elem_id=f"prune-curve-{a['draft']}")
        gr.Plot(heatmap(a), elem_id=f"prune-heatmap-{a['draft']}")
    reports = draft_reports(engine.prepared.preset)
    if reports:
        gr.Markdown("### Every draft, measured\nFrom `python -m demo.bench` runs over whole prompt sets "
                    "(mean of per-prompt speedups over the baseline, 95% bootstrap CIs; docs/performance.md). "
                    "Figures from one machine: rerun the command to measure yours.")
        for report in reports:
            gr.Markdown(drafts_markdown(report))
    prompt = gr.Textbox(PROMPT, label="Prompt for the draft comparison")
    go = gr.Button("Compare all drafts on this prompt", elem_id="prune-compare")
    table = gr.Markdown(elem_id="prune-table")
    go.click(lambda p: compare_rows(engine, p, limits=limits), [prompt], [table], concurrency_id="models", concurrency_limit=1,
             api_name="prune_compare")
