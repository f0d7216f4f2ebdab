"""Plotly HTML report of a benchmark: tokens/s per lane, tokens per step, speedup with its 95% CI against
theory, and acceptance by draft position."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[2] / "docs" / "results"  # the published runs (docs/performance.md)


def _error_bars(lanes: list[dict], value: str, ci: str) -> dict:
    up = [(lane[ci][1] - lane[value]) if lane.get(ci) and lane[value] is not None else 0 for lane in lanes]
    down = [(lane[value] - lane[ci][0]) if lane.get(ci) and lane[value] is not None else 0 for lane in lanes]
    return {"type": "data", "symmetric": False, "array": up, "arrayminus": down}


def figure(report: dict):
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    lanes = report["lanes"]
    fig = make_subplots(rows=1, cols=4, subplot_titles=(
        "tokens/s per lane", "tokens per target step (decode steps)", "speedup (95% CI) vs theory",
        "acceptance by draft position"))
    fig.add_trace(go.Bar(x=[lane["name"] for lane in lanes], y=[lane["tokens_per_second"] for lane in lanes],
                         text=[f"{lane['speedup']:.2f}x" if lane["speedup"] else "" for lane in lanes],
                         name="tokens/s", showlegend=False), row=1, col=1)
    for lane in lanes:
        if lane["lane"] == "baseline":
            continue
        counts = Counter(c for p in lane["per_prompt"] for c in p["step_counts"][1:])
        xs = sorted(counts)
        fig.add_trace(go.Bar(x=xs, y=[counts[x] for x in xs], name=lane["name"]), row=1, col=2)
    spec = [lane for lane in lanes if lane["lane"] != "baseline"]
    names = [lane["name"] for lane in spec]
    fig.add_trace(go.Bar(x=names, y=[lane["theoretical_speedup"] for lane in spec],
                         name="theory E/(g c + 1)"), row=1, col=3)
    fig.add_trace(go.Bar(x=names, y=[lane["speedup"] for lane in spec], name="measured (aggregate tok/s)",
                         error_y=_error_bars(spec, "speedup", "speedup_ci")), row=1, col=3)
    fig.add_trace(go.Bar(x=names, y=[lane.get("mean_prompt_speedup") for lane in spec],
                         name="measured (mean per prompt)",
                         error_y=_error_bars(spec, "mean_prompt_speedup", "mean_prompt_speedup_ci")), row=1, col=3)
    for lane in spec:
        pos = lane.get("per_position_acceptance")
        if pos:
            fig.add_trace(go.Scatter(x=list(range(1, len(pos) + 1)), y=pos, mode="lines+markers",
                                     name=f"{lane['name']} by position"), row=1, col=4)
    fig.update_xaxes(title_text="draft position k", dtick=1, row=1, col=4)
    fig.update_yaxes(range=[0, 1.02], row=1, col=4)
    prompts = report.get("prompt_set") or {}
    fig.update_layout(title=f"{report['preset']} on {report['device']}, {report['prompts']} prompts "
                            f"({prompts.get('file', '?')}, {prompts.get('half') or 'no half'}), "
                            f"{report['max_new_tokens']} new tokens, greedy, baseline "
                            f"{report.get('settings', {}).get('baseline_backend', '?')}",
                      barmode="group", height=480)
    return fig


def write_html(report: dict, path: Path) -> None:
    figure(report).write_html(str(path), include_plotlyjs=True, full_html=True)


def draft_reports(preset: str, folder: Path = RESULTS) -> list[dict]:
    """The published bench runs that compare a preset's drafts (folder/drafts-*.json), test halves first."""
    found = []
    for path in sorted(folder.glob("drafts-*.json")):
        try:
            report = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if report.get("preset") == preset:
            found.append({**report, "file": path.name})
    return sorted(found, key=lambda r: ((r.get("prompt_set") or {}).get("half") != "test", r["file"]))


def drafts_markdown(report: dict) -> str:
    """One bench run as a Markdown table of its drafted lanes and paired verdicts, with what it ran on."""
    prompts, settings = report.get("prompt_set") or {}, report.get("settings") or {}
    lines = [f"**{prompts.get('set', '?')} prompts, {prompts.get('half', '?')} half** ({report['prompts']} prompts, "
             f"{report['max_new_tokens']} new tokens, baseline: {settings.get('baseline_backend', '?')} backend)",
             "", "| draft | k | mean speedup [95% CI] | draft ms/token | tokens/step | identical to baseline |",
             "|---|---|---|---|---|---|"]
    for lane in report["lanes"]:
        if lane["lane"] != "speculative":
            continue
        ci = lane.get("mean_prompt_speedup_ci")
        speed = f"{lane['mean_prompt_speedup']:.2f}× [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "–"
        lines.append(f"| {lane['draft']} | {lane.get('k') or lane.get('confidence_threshold')} | {speed} | "
                     f"{_f(lane.get('draft_ms_per_token'), '.1f')} | {_f(lane.get('tokens_per_step'), '.2f')} | "
                     f"{lane.get('identical_prompts', '–')}/{len(lane['per_prompt'])} |")
    for c in report.get("comparisons", []):
        if c.get("ratio") is not None:
            lines.append(f"\n{c['a']} vs {c['b']}: per-prompt speed ratio {c['ratio']:.3f} "
                         f"[{c['ratio_ci'][0]:.3f}, {c['ratio_ci'][1]:.3f}]: {c['verdict']}")
    lines.append(f"\n`{report.get('command', '')}` ({report['file']})" if report.get("file") else "")
    return "\n".join(lines)


def _f(value, fmt: str) -> str:
    return format(value, fmt) if isinstance(value, (int, float)) else "–"
