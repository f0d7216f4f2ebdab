"""Gradio layout and event wiring. The logic lives in demo.views.race and the engine; nothing here computes a number."""
from __future__ import annotations

from pathlib import Path

import gradio as gr

from demo import booth as attract, limits as caps
from demo.views import agent as agent_view, booth as booth_view, pruning as prune_view, race
from demo.engine import DEFAULT_NUM_ASSISTANT_TOKENS, Engine

ASSETS = Path(__file__).resolve().parents[2] / "assets"
EXAMPLES = [
    "Write a Python function that checks whether a string is a palindrome, ignoring case and punctuation.",
    "Implement binary search in Python as a function `binary_search(items, target)`.",
    "Write a Python class `Stack` with push, pop, peek and is_empty methods, with docstrings.",
    "Explain in a few sentences what speculative decoding is.",
]


class Engines:
    """One engine per device, created on first use; the prepared models are shared."""

    def __init__(self, engine: Engine):
        self.first = engine
        self.by_device = {engine.device: engine}

    def get(self, device: str) -> Engine:
        if device not in self.by_device:
            self.by_device[device] = Engine(self.first.prepared, device=device,
                                            baseline_backend=self.first.baseline_backend)
        return self.by_device[device]


def available_devices() -> list[str]:
    import openvino as ov

    return list(ov.Core().available_devices)


def _outputs(lanes, engine, settings, finished: bool):
    base, spec = lanes
    return (race.lane_html(base), race.lane_html(spec, legend=True), race.plot(lanes),
            race.summary(base.result, spec.result, engine, settings) if finished else
            '<div class="running">running…</div>',
            race.how_it_works(spec.result))


def draft_choices(engine: Engine, later) -> list[tuple[str, str]]:
    """The Race tab's draft list: the prepared drafts, those prepared on first selection, prompt lookup."""
    pending = [d for d in (later.pending() if later else []) if d not in engine.drafts]
    return ([(d, d) for d in engine.drafts] + [(f"{d} (prepared on first selection)", d) for d in pending] +
            [(race.PROMPT_LOOKUP, race.PROMPT_LOOKUP)])


def build(engine: Engine, limits: caps.Limits = caps.LOCAL, later=None, booth: float | None = None) -> gr.Blocks:
    """The app's page. later: a demo.models.prepare.OnDemand for drafts not prepared yet; booth: the attract
    loop's idle seconds (python app.py --booth), None without it."""
    engines = Engines(engine)
    tally, playlist = attract.Tally(), attract.Playlist()
    drafts = draft_choices(engine, later)
    with gr.Blocks(title="Speculative decoding race") as demo:
        banner = ASSETS / "banner.svg"
        if banner.exists():
            gr.HTML(f'<div class="banner">{banner.read_text()}</div>')
        with gr.Row():
            gr.Markdown(f"**{engine.prepared.preset}** · target `{engine.prepared.target_label}` · drafts: "
                        f"{', '.join(engine.drafts) or 'none'}")
            mem = gr.Markdown(engine.memory(), elem_id="memory")
        record = gr.State(None)
        if booth is not None:
            big, tally_out, booth_next, booth_stop = booth_view.panel(booth, tally.summary())
        with gr.Tab("Race"):
            with gr.Row():
                prompt = gr.Textbox(label="Prompt", lines=3, elem_id="prompt", scale=4,
                                    placeholder="Ask for some code or a short explanation")
                with gr.Column(scale=1, min_width=160):
                    run = gr.Button("Run", variant="primary", elem_id="run")
                    stop = gr.Button("Stop", elem_id="stop")
                    replay = gr.Button("Replay race", elem_id="replay")
            gr.Examples(EXAMPLES, inputs=prompt)
            with gr.Accordion("Settings", open=False):
                with gr.Row():
                    draft = gr.Dropdown(drafts, value=drafts[0][1], label="Draft", elem_id="draft")
                    k = gr.Slider(1, 10, value=DEFAULT_NUM_ASSISTANT_TOKENS, step=1,
                                  label="num_assistant_tokens (γ)", elem_id="gamma")
                    use_threshold = gr.Checkbox(False, label="draft while confident instead of a fixed γ")
                    threshold = gr.Slider(0.05, 0.95, value=0.4, step=0.05, label="assistant_confidence_threshold")
                with gr.Row():
                    max_new = gr.Slider(16, limits.max_new_tokens, value=128, step=16, label="max new tokens",
                                        elem_id="max-new")
                    thinking = gr.Checkbox(False, label="Qwen3 thinking", visible=engine.prepared.thinking)
                    devices = available_devices()
                    device = gr.Dropdown(devices, value=engine.device if engine.device in devices else devices[0],
                                         label="device", elem_id="device")
            message = gr.Markdown(elem_id="race-message")
            with gr.Row(equal_height=True):
                with gr.Column():
                    gr.Markdown("### Target alone")
                    base_out = gr.HTML(elem_id="baseline-output", elem_classes=["lane"])
                with gr.Column():
                    gr.Markdown("### Target + draft")
                    spec_out = gr.HTML(elem_id="speculative-output", elem_classes=["lane"])
            with gr.Row():
                tps_plot = gr.Plot(elem_id="tps-plot", label="tokens over time")
                metrics_out = gr.HTML(elem_id="race-metrics")
            with gr.Accordion("How it works", open=False):
                how = gr.Markdown(race.how_it_works(None), elem_id="how-it-works")

        with gr.Tab("Agent"):
            agent_view.build(engines.first, limits)
        demo.unload(agent_view.forget_session)  # a closed tab's run folders go with it
        with gr.Tab("Pruning"):
            prune_view.build(engines.first, limits)

        outputs = [base_out, spec_out, tps_plot, metrics_out, how]

        def settings_from(d, kk, use_t, t, mx, th):
            return race.Settings(draft=d, num_assistant_tokens=int(kk), confidence_threshold=t if use_t else None,
                                 max_new_tokens=int(mx), enable_thinking=bool(th))

        def on_run(text, d, kk, use_t, t, mx, th, dev):
            eng = engines.get(dev)
            settings = settings_from(d, kk, use_t, t, min(mx, limits.max_new_tokens), th)
            problem = caps.text_problem(text, limits) or race.validate(eng, text, settings, later)
            if problem:
                yield (gr.update(),) * len(outputs) + (None, f"⚠️ {problem}")
                return
            lanes = None
            for lanes, finished in race.run_race(eng, text, settings):
                yield _outputs(lanes, eng, settings, finished) + (None, "")
            tally.add(lanes[0].result, lanes[1].result)
            yield _outputs(lanes, eng, settings, True) + (race.RaceRecord(text, settings, lanes), "")

        def on_draft(name):
            """A draft left for later: build it now, with progress, then list it as prepared."""
            if later is None or name in engine.drafts or name not in later.pending():
                return
            line = ""
            for line in race.prepare_draft(later, name):
                yield line, gr.update()
            yield line, gr.update(choices=draft_choices(engine, later), value=name)

        def on_replay(rec, dev):
            if rec is None:
                yield (gr.update(),) * len(outputs) + ("⚠️ Run a race first, then replay it.",)
                return
            eng = engines.get(dev)
            lanes = None
            for lanes in race.replay_frames(rec):
                yield _outputs(lanes, eng, rec.settings, False) + ("",)
            yield _outputs(lanes, eng, rec.settings, True) + ("",)

        inputs = [prompt, draft, k, use_threshold, threshold, max_new, thinking, device]
        run_event = run.click(on_run, inputs, [*outputs, record, message], concurrency_id="models",
                              concurrency_limit=1, api_name="race")
        submit_event = prompt.submit(on_run, inputs, [*outputs, record, message], concurrency_id="models",
                                     concurrency_limit=1, api_name=False)
        replay_event = replay.click(on_replay, [record, device], [*outputs, message], api_name="replay")
        stop.click(None, None, None, cancels=[run_event, submit_event, replay_event])
        draft.change(on_draft, draft, [message, draft], concurrency_id="prepare", concurrency_limit=1,
                     api_name="prepare_draft")
        # the page's memory, for a booth that runs for hours (unqueued: it never waits behind a run)
        gr.Timer(10).tick(engine.memory, None, mem, queue=False, show_progress="hidden", api_visibility="private")
        if booth is not None:
            wire_booth(engine, tally, playlist, big, tally_out, booth_next, booth_stop, outputs, booth, demo)
    return demo


def wire_booth(engine: Engine, tally, playlist, big, tally_out, nxt, stop, outputs, idle: float, demo) -> None:
    """The attract loop: the page script clicks the hidden #booth-next after `idle` s without input and
    #booth-stop at the next input. Its race runs in the background (race.Settings.background): it never starts
    while a run holds or waits for the engine, and any other run cancels it at its next step."""

    def on_next():
        prompt = playlist.next()
        settings = race.Settings(draft=engine.drafts[0] if engine.drafts else race.PROMPT_LOOKUP,
                                 num_assistant_tokens=DEFAULT_NUM_ASSISTANT_TOKENS,
                                 max_new_tokens=attract.MAX_NEW_TOKENS, background=True)
        if engine.busy():
            yield (gr.update(),) * len(outputs) + (gr.update(), gr.update())
            return
        lanes = None
        for lanes, finished in race.run_race(engine, prompt, settings):
            if any(lane.error or (lane.result and lane.result.cancelled) for lane in lanes):
                break  # a visitor's run took the engine: this race is over
            state = "attract loop: " + ("the drafted lane is racing" if lanes[1].status == "running" else
                                        "the target alone is racing" if lanes[0].status == "running" else "…")
            yield _outputs(lanes, engine, settings, finished) + (booth_view.speedup_html(None, prompt, state),
                                                                 gr.update())
        speedup = tally.add(lanes[0].result, lanes[1].result, loop=True)
        state = "target + draft vs target alone, same prompt, same machine" if speedup else "stopped for a visitor"
        yield _outputs(lanes, engine, settings, True) + (booth_view.speedup_html(speedup, prompt, state),
                                                         booth_view.tally_html(tally.summary()))

    event = nxt.click(on_next, None, [*outputs, big, tally_out], concurrency_id="booth", concurrency_limit=1,
                      api_name="booth_next", show_progress="hidden")
    event.then(None, None, None, js="() => window.specdemoBoothDone && window.specdemoBoothDone()")
    stop.click(lambda: booth_view.speedup_html(None, state="stopped: a visitor is here"), None, big, cancels=[event],
               queue=False, api_visibility="private")
    demo.load(None, None, None, js=booth_view.script(idle))


def launch(demo: gr.Blocks, host: str = "127.0.0.1", port: int | None = 7860, share: bool = False,
           prevent_thread_lock: bool = False, routes: list | None = None,
           auth: tuple[str, str] | None = None, limits: caps.Limits | None = None):
    """`routes` (e.g. demo.server.router(engine).routes) join Gradio's own FastAPI app before it starts, ahead
    of Gradio's routes: launch() builds that app, so this is how extra routes share its server and --share."""
    css = (ASSETS / "style.css").read_text() if (ASSETS / "style.css").exists() else None
    limits = limits or caps.for_launch(host, share)
    # a public app: a bounded queue ("Queue is full"), Gradio's login, and exception text kept from visitors
    demo.queue(default_concurrency_limit=1, max_size=limits.queue_size)
    return demo.launch(server_name=host, server_port=port, share=share, css=css,
                       prevent_thread_lock=prevent_thread_lock, show_error=not limits.public,
                       auth=auth, auth_message="Log in with the user name and password you were given.",
                       max_file_size=limits.upload_size,
                       app_kwargs={"routes": list(routes)} if routes else None)
