"""The Agent tab: task, trace streaming step by step, deck download and preview, with/without draft."""
from __future__ import annotations

import html
import queue
import sys
import threading
import time
from pathlib import Path

import gradio as gr

from demo import limits as caps
from demo.agent import deck_shape, model as agent_model, run as agent, runfolder, sandbox, slides, timing
from demo.engine import Engine, EngineError

RUNS = runfolder.RUNS
# Run folders per browser session, removed when the session ends (blocks.py: demo.unload); older ones go by TTL.
_runs: dict[str, list[Path]] = {}
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


def total_seconds(res: agent.AgentResult) -> float:
    """The run and its slide previews, as the visitor waited for them."""
    return res.seconds + res.breakdown.get("render_s", 0.0)


def breakdown_md(res: agent.AgentResult) -> str:
    """Where the run's time went, in one line, biggest first."""
    b = res.breakdown
    if not b:
        return ""
    parts = [(b.get(k, 0.0), timing.LABELS[k]) for k in (*timing.CATEGORIES, "other_s")]
    rate = f"; decode {b['decode_tokens'] / b['decode_s']:.1f} tokens/s" if b.get("decode_s") else ""
    return ("where the time went: " + ", ".join(f"{label} {s:.1f} s" for s, label in sorted(parts, reverse=True)
                                                 if s >= 0.05) +
            f" (prompt {b.get('prompt_tokens', 0):,} tokens, {b.get('cached_tokens', 0):,} from the prefix cache; "
            f"{b.get('decode_tokens', 0):,} written{rate})")


def breakdown_figure(results: list[agent.AgentResult]):
    """Both runs as stacked bars (plotly): where the time went, with and without the draft."""
    import plotly.graph_objects as go

    names = ["with the draft" if r.speculative else "target alone" for r in results]
    fig = go.Figure()
    for key in (*timing.CATEGORIES, "other_s"):
        values = [max(r.breakdown.get(key, 0.0), 0.0) for r in results]
        fig.add_bar(name=timing.LABELS[key], y=names, x=values, orientation="h",
                    hovertemplate="%{x:.1f} s<extra>" + timing.LABELS[key] + "</extra>")
    for name, r in zip(names, results):
        fig.add_annotation(x=total_seconds(r), y=name, text=f" {total_seconds(r):.1f} s", showarrow=False,
                           xanchor="left")
    fig.update_layout(barmode="stack", height=240, margin=dict(l=10, r=40, t=30, b=10),
                      title="where the time went (seconds)", legend=dict(orientation="h", y=-0.25))
    return fig


def result_md(res: agent.AgentResult) -> str:
    speed = f"{res.tokens_per_second:.2f} tokens/s" if res.tokens_per_second else "–"
    mode = "target + draft" if res.speculative else "target alone"
    steps = f"{res.steps} step{'' if res.steps == 1 else 's'}"
    lines = [f"**{mode}**: {steps}, {total_seconds(res):.1f} s total, {res.tokens} tokens generated, {speed}"]
    if res.budget_spent:
        lines.append(f"⏱ stopped: the run used its {res.budget_seconds:.0f} s time budget")
    if res.reached_max_steps:
        lines.append("⚠️ reached the step limit; showing what was produced")
    if res.breakdown:
        lines.append(breakdown_md(res))
    lines.append(f"**final answer:** {res.final_answer or '–'}")
    if res.shape is not None and res.shape.deck and res.files:
        try:
            lines.append(deck_shape.verdict(res.shape, slides.slide_texts(Path(res.files[0]))))
        except slides.DeckError as exc:
            lines.append(f"⚠️ {exc}")
    return "\n\n".join(lines)


def compare_md(plain: agent.AgentResult, fast: agent.AgentResult, exact: bool = False) -> str:
    """Both runs, the speedup of the whole run, and decode speed per lane: the ratio says little when the two runs
    took different paths, so it also says whether they wrote the same text."""
    ratio = total_seconds(plain) / total_seconds(fast) if total_seconds(fast) else 0.0

    def rate(r):
        b = r.breakdown
        return b["decode_tokens"] / b["decode_s"] if b.get("decode_s") else 0.0

    same = plain.outputs == fast.outputs
    how = ("the two runs wrote identical text, so the ratio measures the draft alone" if same else
           "the two runs wrote different text (different steps or tokens), so the ratio also measures the path" +
           ("" if exact else "; start the app with --exact for bit-identical lanes"))
    return (f"{result_md(plain)}\n\n{result_md(fast)}\n\n**speedup of the whole agent run: {ratio:.2f}×** "
            f"(decode: {rate(fast):.1f} vs {rate(plain):.1f} tokens/s; {how})")


def stopped_md(res: agent.AgentResult | None) -> str:
    """After Stop: the result so far, or only that, when the run was still reading its prompt."""
    return "⏹ stopped" + (f"\n\n{result_md(res)}" if res is not None else "")


def new_run_dir(session: str | None = None) -> Path:
    """A fresh run folder; old ones are swept first (TTL, then the disk cap), never this session's."""
    mine = _runs.setdefault(session or "", [])
    runfolder.sweep(RUNS, keep={p.resolve() for p in mine})
    out = runfolder.new_run_dir(RUNS)
    mine.append(out)
    return out


def forget_session(request: gr.Request) -> None:
    """The browser session ended: its run folders go."""
    for folder in _runs.pop(request.session_hash, []):
        runfolder.RunFolder(folder).remove()


def slide_gallery() -> gr.Gallery:
    """Whole slides in slide order, full width so they read at a booth: "contain" keeps every edge (the default
    "cover" crops each preview to its middle); the height grows with the deck instead of scrolling."""
    return gr.Gallery(label="slides", elem_id="agent-preview", columns=2, height="auto", object_fit="contain",
                      allow_preview=True, preview=False, buttons=["fullscreen", "download"])


def build(engine: Engine, limits: caps.Limits = caps.LOCAL, make_model=None) -> None:
    """Lay out the tab inside the current gr.Tab and wire it. make_model(use_draft) -> a smolagents Model
    replaces the engine-backed one (tests script the model's replies; the rest is the real path)."""
    if make_model is None and agent_model.uses_engine():
        # the agent's fixed prompt into both lanes' prefix caches while the page loads: no visitor reads it
        threading.Thread(target=agent.prewarm, args=(engine,), name="agent-prewarm", daemon=True,
                         kwargs={"log": lambda m: print(f"[app] {m}", file=sys.stderr, flush=True)}).start()
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
        # a run that has not answered within its budget stops and says so, instead of holding the queue
        budget = gr.Slider(30, agent.BUDGET_SECONDS * (1 if limits.public else 3), value=agent.BUDGET_SECONDS,
                           step=10, label="time budget per run (s)", elem_id="agent-budget",
                           interactive=not limits.public)
    gr.Markdown(sandbox.notice(limits.public), elem_id="agent-sandbox")
    with gr.Row():
        status = gr.Markdown(elem_id="agent-status")
        plot = gr.Plot(label="where the time went", elem_id="agent-breakdown")
    with gr.Row():
        trace = gr.HTML(elem_id="agent-trace")
        with gr.Column():
            deck = gr.File(label="deck (.pptx)", elem_id="agent-deck")
            renderer = gr.Markdown(elem_id="agent-renderer")
    gallery = slide_gallery()

    def one_run(text, draft_on, allow_search, max_steps, agent_kind, stop_event, budget=agent.BUDGET_SECONDS,
                session=None):
        problem = caps.text_problem(text, limits, "task")
        if problem:
            raise EngineError(problem)
        out_dir = new_run_dir(session)
        model = make_model(draft_on) if make_model else None
        feed: queue.Queue = queue.Queue()

        def drive():  # its own thread, so Stop answers at once even while the model reads a long prompt
            try:
                for item in agent.run_agent(engine, text, out_dir, use_draft=draft_on,
                                            max_steps=min(int(max_steps), limits.agent_steps), search=allow_search,
                                            stop=stop_event, kind=agent_kind or agent.DEFAULT_KIND, model=model,
                                            public=limits.public, budget=budget):
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

    def timed_preview(result):
        """preview(), timed as the run's render_s: the visitor waits for it too."""
        t = time.monotonic()
        out = preview(result)
        if result is not None and result.breakdown:
            result.breakdown["render_s"] = round(result.breakdown.get("render_s", 0.0) + time.monotonic() - t, 2)
        return out

    def preview(result):
        if not result or not result.files:
            return None, [], ""
        folder = runfolder.RunFolder.of(Path(result.files[0]))
        try:
            pngs, how = slides.preview(Path(result.files[0]), folder.previews, uid=folder.tool_uid)
        except slides.DeckError as exc:
            return result.files[0], [], f"no preview: {exc}"
        return result.files[0], [str(p) for p in pngs], f"preview: {how}"

    def on_run(text, draft_on, allow_search, max_steps, agent_kind, run_budget, request: gr.Request):
        stop_event = _active[request.session_hash] = threading.Event()
        try:
            result = None
            for items, result in one_run(text, draft_on, allow_search, max_steps, agent_kind, stop_event,
                                         float(run_budget or agent.BUDGET_SECONDS), request.session_hash):
                yield trace_html(items), "running…", None, [], "", None
            deck_file = (result.files or [None])[0] if result else None
            if stop_event.is_set():  # no slide rendering (seconds of LibreOffice) after Stop; the file is offered
                yield trace_html(items), stopped_md(result), deck_file, [], "", None
                return
            # the answer and the deck first; the previews follow, off the answer's critical path
            figure = breakdown_figure([result])
            yield trace_html(items), result_md(result), deck_file, [], "rendering previews…", figure
            f, pngs, how = timed_preview(result)
            yield trace_html(items), result_md(result), f, pngs, how, breakdown_figure([result])
        except EngineError as exc:
            yield gr.update(), f"⚠️ {exc}", None, [], "", None
        finally:
            stop_event.set()
            if _active.get(request.session_hash) is stop_event:
                del _active[request.session_hash]

    def on_compare(text, allow_search, max_steps, agent_kind, run_budget, request: gr.Request):
        results = []
        stop_event = _active[request.session_hash] = threading.Event()
        try:
            for draft_on in (False, True):
                result = None
                for items, result in one_run(text, draft_on, allow_search, max_steps, agent_kind, stop_event,
                                             float(run_budget or agent.BUDGET_SECONDS), request.session_hash):
                    yield (trace_html(items), f"running {'with' if draft_on else 'without'} the draft…", None, [], "",
                           breakdown_figure(results) if results else None)
                results.append(result)
                if stop_event.is_set():
                    yield trace_html(items), stopped_md(result), None, [], "", None
                    return
            plain, fast = results
            yield trace_html(items), compare_md(plain, fast, engine.exact), (fast.files or [None])[0], [], \
                "rendering previews…", breakdown_figure(results)
            f, pngs, how = timed_preview(fast)
            yield trace_html(items), compare_md(plain, fast, engine.exact), f, pngs, how, breakdown_figure(results)
        except EngineError as exc:
            yield gr.update(), f"⚠️ {exc}", None, [], "", None
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

    outs = [trace, status, deck, gallery, renderer, plot]
    ev = run.click(on_run, [task, use_draft, search, steps, kind, budget], outs, concurrency_id="models",
                   concurrency_limit=1, api_name="agent")
    ev2 = compare.click(on_compare, [task, search, steps, kind, budget], outs, concurrency_id="models",
                        concurrency_limit=1, api_name="agent_compare")
    # not queued behind the run it stops; Gradio's cancel then drops the run's remaining updates
    stop.click(on_stop, None, status, cancels=[ev, ev2], queue=False, api_name="agent_stop")
