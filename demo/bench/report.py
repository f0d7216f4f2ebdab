"""Plotly HTML report of a benchmark: tokens/s per lane, tokens per step, theory against measured."""
from __future__ import annotations

from collections import Counter
from pathlib import Path


def figure(report: dict):
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    lanes = report["lanes"]
    fig = make_subplots(rows=1, cols=3, subplot_titles=(
        "tokens/s per lane", "tokens per target step (decode steps)", "speedup: theory vs measured"))
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
    fig.add_trace(go.Bar(x=[lane["name"] for lane in spec], y=[lane["theoretical_speedup"] for lane in spec],
                         name="theory E/(g c + 1)"), row=1, col=3)
    fig.add_trace(go.Bar(x=[lane["name"] for lane in spec], y=[lane["speedup"] for lane in spec],
                         name="measured"), row=1, col=3)
    fig.update_layout(title=f"{report['preset']} on {report['device']}, {report['prompts']} prompts, "
                            f"{report['max_new_tokens']} new tokens, greedy", barmode="group", height=480)
    return fig


def write_html(report: dict, path: Path) -> None:
    figure(report).write_html(str(path), include_plotlyjs=True, full_html=True)
