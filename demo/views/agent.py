"""The Agent tab: task, trace streaming step by step, deck download and preview, with/without draft."""
from __future__ import annotations

import html
import queue
import tempfile
import threading
import time
from pathlib import Path

import gradio as gr

from demo import limits as caps
from demo.agent import deck_shape, run as agent, sandbox, slides
from demo.engine import Engine, EngineError

RUNS = Path(tempfile.gettempdir()) / "specdemo-agent-runs"
# The Stop event of the run in progress, per browser session: Stop sets it, which kills the confined process
# and cancels the generation at once (Gradio's own cancel waits for the running step to return).
_active: dict[str, threading.Event] = {}


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
    if res.shape is not None and res.shape.deck and res.files:
        lines.append(deck_shape.verdict(res.shape, slides.slide_texts(Path(res.files[0]))))
    return "\n\n".join(lines)


def stopped_md(res: agent.AgentResult | None) -> str:
    """After Stop: the result so far, or only that, when the run was still reading its prompt."""
    return "⏹ stopped" + (f"\n\n{result_md(res)}" if res is not None else "")


def new_run_dir() -> Path:
    return RUNS / f"{time.strftime('%Y%m%d-%H%M%S')}-{time.monotonic_ns() % 1_000_000}"


def slide_gallery() -> gr.Gallery:
    """Whole slides in slide order, full width so they read at a booth: "contain" keeps every edge (the default
    "cover" crops each preview to its middle); the height grows with the deck instead of scrolling."""
    return gr.Gallery(label="slides", elem_id="agent-preview", columns=2, height="auto", object_fit="contain",
                      allow_preview=True, preview=False, buttons=["fullscreen", "download"])


def build(engine: Engine, limits: caps.Limits = caps.LOCAL, make_model=None) -> None:
    """Lay out the tab inside the current gr.Tab and wire it. make_model(use_draft) -> a smolagents Model
    replaces the engine-backed one (tests script the model's replies; the rest is the real path)."""
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
        steps = gr.Slider(2, limits.agent_steps, value=min(agent.MAX_STEPS, limits.agent_steps), step=1,
                          label="max steps", elem_id="agent-steps")
        kind = gr.Radio([("CodeAgent: writes Python", "code"), ("ToolCallingAgent: JSON tool calls", "tool")],
                        value=agent.DEFAULT_KIND, label="agent", elem_id="agent-kind")
    gr.Markdown(sandbox.notice(limits.public), elem_id="agent-sandbox")
    status = gr.Markdown(elem_id="agent-status")
    with gr.Row():
        trace = gr.HTML(elem_id="agent-trace")
        with gr.Column():
            deck = gr.File(label="deck (.pptx)", elem_id="agent-deck")
            renderer = gr.Markdown(elem_id="agent-renderer")
    gallery = slide_gallery()

    def one_run(text, draft_on, allow_search, max_steps, agent_kind, stop_event):
        problem = caps.text_problem(text, limits, "task")
        if problem:
            raise EngineError(problem)
        out_dir = new_run_dir()
        model = make_model(draft_on) if make_model else None
        feed: queue.Queue = queue.Queue()

        def drive():  # its own thread, so Stop answers at once even while the model reads a long prompt
            try:
                for item in agent.run_agent(engine, text, out_dir, use_draft=draft_on,
                                            max_steps=min(int(max_steps), limits.agent_steps), search=allow_search,
                                            stop=stop_event, kind=agent_kind or agent.DEFAULT_KIND, model=model,
                                            public=limits.public):
                    feed.put(item)
            except Exception as exc:  # EngineError: shown by the caller
                feed.put(exc)
            finally:
                feed.put(None)

        threading.Thread(target=drive, name="agent-run", daemon=True).start()
        items, result = [], None
        while True:
            try:
                item = feed.get(timeout=0.1)
            except queue.Empty:
                # Stop killed the confined process and cancelled generation; a prefill in progress cannot be
                # interrupted (GenAI), so the run finishes it in the background, holding the engine's lock
                if stop_event.is_set():
                    break
                continue
            if item is None:
                break
            if isinstance(item, Exception):
                raise item
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

    def on_run(text, draft_on, allow_search, max_steps, agent_kind, request: gr.Request):
        stop_event = _active[request.session_hash] = threading.Event()
        try:
            result = None
            for items, result in one_run(text, draft_on, allow_search, max_steps, agent_kind, stop_event):
                yield trace_html(items), "running…", None, [], ""
            if stop_event.is_set():  # no slide rendering (seconds of LibreOffice) after Stop; the file is offered
                yield trace_html(items), stopped_md(result), (result.files or [None])[0] if result else None, [], ""
                return
            f, pngs, how = preview(result)
            yield trace_html(items), result_md(result), f, pngs, how
        except EngineError as exc:
            yield gr.update(), f"⚠️ {exc}", None, [], ""
        finally:
            stop_event.set()
            if _active.get(request.session_hash) is stop_event:
                del _active[request.session_hash]

    def on_compare(text, allow_search, max_steps, agent_kind, request: gr.Request):
        results = []
        stop_event = _active[request.session_hash] = threading.Event()
        try:
            for draft_on in (False, True):
                result = None
                for items, result in one_run(text, draft_on, allow_search, max_steps, agent_kind, stop_event):
                    yield trace_html(items), f"running {'with' if draft_on else 'without'} the draft…", None, [], ""
                results.append(result)
                if stop_event.is_set():
                    yield trace_html(items), stopped_md(result), None, [], ""
                    return
            plain, fast = results
            ratio = plain.seconds / fast.seconds if fast.seconds else None
            md = (f"{result_md(plain)}\n\n{result_md(fast)}\n\n**speedup of the whole agent run: "
                  f"{ratio:.2f}×** (generation: {fast.tokens_per_second or 0:.2f} vs "
                  f"{plain.tokens_per_second or 0:.2f} tokens/s)")
            f, pngs, how = preview(fast)
            yield trace_html(items), md, f, pngs, how
        except EngineError as exc:
            yield gr.update(), f"⚠️ {exc}", None, [], ""
        finally:
            stop_event.set()
            if _active.get(request.session_hash) is stop_event:
                del _active[request.session_hash]

    def on_stop(request: gr.Request):
        running = _active.get(request.session_hash)
        if running is None:
            return gr.update()
        running.set()
        return "⏹ stopped"

    outs = [trace, status, deck, gallery, renderer]
    ev = run.click(on_run, [task, use_draft, search, steps, kind], outs, concurrency_id="models", concurrency_limit=1,
                   api_name="agent")
    ev2 = compare.click(on_compare, [task, search, steps, kind], outs, concurrency_id="models", concurrency_limit=1,
                        api_name="agent_compare")
    # not queued behind the run it stops; Gradio's cancel then drops the run's remaining updates
    stop.click(on_stop, None, status, cancels=[ev, ev2], queue=False, api_name="agent_stop")
