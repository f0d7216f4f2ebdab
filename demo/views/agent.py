"""The Agent tab: task, trace streaming step by step, deck download and preview, with/without draft."""
from __future__ import annotations

import html
import tempfile
import threading
import time
from pathlib import Path

import gradio as gr

from demo.agent import run as agent, slides
from demo.engine import Engine, EngineError

RUNS = Path(tempfile.gettempdir()) / "specdemo-agent-runs"


def trace_html(items: list[agent.TraceItem]) -> str:
    parts = []
    for it in items:
        body = html.escape(it.text[:4000])
        tag = f"<pre>{body}</pre>" if it.kind in ("code", "observation", "error") else f"<p>{body}</p>"
        parts.append(f'<div class="trace-{it.kind}"><b>step {it.step} · {it.kind}</b>{tag}</div>')
    return "".join(parts) or "<p>The trace appears here step by step.</p>"


def result_md(res: agent.AgentResult) -> str:
    speed = f"{res.tokens_per_second:.2f} tokens/s" if res.tokens_per_second else "–"
    mode = "target + draft" if res.speculative else "target alone"
    steps = f"{res.steps} step{'' if res.steps == 1 else 's'}"
    lines = [f"**{mode}**: {steps}, {res.seconds:.1f} s total, {res.tokens} tokens generated, {speed}"]
    if res.reached_max_steps:
        lines.append("⚠️ reached the step limit; showing what was produced")
    lines.append(f"**final answer:** {res.final_answer or '–'}")
    return "\n\n".join(lines)


def new_run_dir() -> Path:
    return RUNS / f"{time.strftime('%Y%m%d-%H%M%S')}-{time.monotonic_ns() % 1_000_000}"


def build(engine: Engine) -> None:
    """Lay out the tab inside the current gr.Tab and wire it."""
    with gr.Row():
        task = gr.Textbox(label="Task", lines=2, elem_id="agent-task", scale=4, value=agent.EXAMPLE_TASKS[0])
        with gr.Column(scale=1, min_width=160):
            run = gr.Button("Run agent", variant="primary", elem_id="agent-run")
            stop = gr.Button("Stop", elem_id="agent-stop")
            compare = gr.Button("Compare with/without draft", elem_id="agent-compare")
    gr.Examples(agent.EXAMPLE_TASKS, inputs=task)
    with gr.Row():
        use_draft = gr.Checkbox(bool(engine.drafts), label="use the draft model (speculative decoding)",
                                interactive=bool(engine.drafts))
        search = gr.Checkbox(True, label="allow web search")
        steps = gr.Slider(2, 10, value=agent.MAX_STEPS, step=1, label="max steps")
        kind = gr.Radio([("CodeAgent: writes Python", "code"), ("ToolCallingAgent: JSON tool calls", "tool")],
                        value=agent.DEFAULT_KIND, label="agent", elem_id="agent-kind")
    status = gr.Markdown(elem_id="agent-status")
    with gr.Row():
        trace = gr.HTML(elem_id="agent-trace")
        with gr.Column():
            deck = gr.File(label="deck (.pptx)", elem_id="agent-deck")
            gallery = gr.Gallery(label="slides", elem_id="agent-preview", columns=2, height=420)
            renderer = gr.Markdown()

    def one_run(text, draft_on, allow_search, max_steps, agent_kind, stop_event):
        out_dir = new_run_dir()
        items, result = [], None
        for item in agent.run_agent(engine, text, out_dir, use_draft=draft_on, max_steps=int(max_steps),
                                    search=allow_search, stop=stop_event, kind=agent_kind or agent.DEFAULT_KIND):
            if isinstance(item, agent.TraceItem):
                items.append(item)
                yield items, None
            else:
                result = item
        yield items, result

    def preview(result):
        if not result or not result.files:
            return None, [], ""
        pngs, how = slides.preview(Path(result.files[0]), Path(result.files[0]).parent / "preview")
        return result.files[0], [str(p) for p in pngs], f"preview: {how}"

    def on_run(text, draft_on, allow_search, max_steps, agent_kind):
        stop_event = threading.Event()
        try:
            result = None
            for items, result in one_run(text, draft_on, allow_search, max_steps, agent_kind, stop_event):
                yield trace_html(items), "running…", None, [], ""
            f, pngs, how = preview(result)
            yield trace_html(items), result_md(result), f, pngs, how
        except EngineError as exc:
            yield gr.update(), f"⚠️ {exc}", None, [], ""
        finally:
            stop_event.set()

    def on_compare(text, allow_search, max_steps, agent_kind):
        results = []
        try:
            for draft_on in (False, True):
                stop_event = threading.Event()
                result = None
                for items, result in one_run(text, draft_on, allow_search, max_steps, agent_kind, stop_event):
                    yield trace_html(items), f"running {'with' if draft_on else 'without'} the draft…", None, [], ""
                results.append(result)
            plain, fast = results
            ratio = plain.seconds / fast.seconds if fast.seconds else None
            md = (f"{result_md(plain)}\n\n{result_md(fast)}\n\n**speedup of the whole agent run: "
                  f"{ratio:.2f}×** (generation: {fast.tokens_per_second or 0:.2f} vs "
                  f"{plain.tokens_per_second or 0:.2f} tokens/s)")
            f, pngs, how = preview(fast)
            yield trace_html(items), md, f, pngs, how
        except EngineError as exc:
            yield gr.update(), f"⚠️ {exc}", None, [], ""

    outs = [trace, status, deck, gallery, renderer]
    ev = run.click(on_run, [task, use_draft, search, steps, kind], outs, concurrency_id="models", concurrency_limit=1,
                   api_name="agent")
    ev2 = compare.click(on_compare, [task, search, steps, kind], outs, concurrency_id="models", concurrency_limit=1,
                        api_name="agent_compare")
    stop.click(None, None, None, cancels=[ev, ev2])
