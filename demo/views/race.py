"""One prompt through the baseline and a drafted lane: live UI states, replay at the recorded pace, metrics."""
from __future__ import annotations

import html
import itertools
import threading
import time
from dataclasses import dataclass, field
from typing import Iterator

from demo import metrics, reasoning
from demo.engine import SETTLE_SECONDS, Engine, EngineError, Request, RunResult

PROMPT_LOOKUP = "prompt lookup"
# Seconds between UI refreshes while streaming: on a 2-core machine a browser redrawing the plot more often
# takes CPU from the model and distorts the race it is showing.
UPDATE_EVERY = 0.5
# Races so far in this process: even ones run the baseline first, odd ones the drafted lane. With a browser on
# the same machine the lane that ran first paid a longer time to first token (Chromium, 2 cores: 1419/809/550 ms
# against 491/329/375 ms), so neither lane may always go first.
_RACES = itertools.count()


@dataclass
class Settings:
    draft: str = ""  # a draft name or PROMPT_LOOKUP
    num_assistant_tokens: int = 5
    confidence_threshold: float | None = None
    max_new_tokens: int = 128
    enable_thinking: bool = False
    settle: float = SETTLE_SECONDS  # untimed pause before each lane
    background: bool = False  # the booth's attract loop: gives way to any visitor's run (Engine._turn)

    def request(self, prompt: str, lane: str) -> Request:
        common = dict(max_new_tokens=self.max_new_tokens, enable_thinking=self.enable_thinking,
                      background=self.background)
        if lane == "baseline":
            return Request(prompt, **common)
        if self.draft == PROMPT_LOOKUP:
            return Request(prompt, lane="prompt-lookup", num_assistant_tokens=self.num_assistant_tokens, **common)
        return Request(prompt, lane="speculative", draft=self.draft, num_assistant_tokens=self.num_assistant_tokens,
                       assistant_confidence_threshold=self.confidence_threshold, **common)


@dataclass
class Lane:
    """What one lane has shown so far: text pieces with their origin, and the token timeline."""

    name: str
    pieces: list[tuple[str, bool]] = field(default_factory=list)  # (text, from accepted draft tokens)
    piece_steps: list[int] = field(default_factory=list)  # the step each piece came from
    times: list[float] = field(default_factory=list)
    totals: list[int] = field(default_factory=list)
    result: RunResult | None = None
    status: str = "waiting"
    error: str | None = None
    order: int | None = None  # 1 when this lane ran first, 2 when second
    opens_thinking: bool | None = None  # a thinking model: whether the prompt opened <think> (None: it does not think)

    def add(self, text: str, draft_text: str, t: float, n_tokens: int) -> None:
        step = len(self.times)
        for piece, accepted in ((draft_text, True), (text[len(draft_text):], False)):
            if piece:
                self.pieces.append((piece, accepted))
                self.piece_steps.append(step)
        self.times.append(t)
        self.totals.append((self.totals[-1] if self.totals else 0) + n_tokens)

    @property
    def text(self) -> str:
        return "".join(p for p, _ in self.pieces)

    def until(self, t: float) -> "Lane":
        """This lane as it looked t seconds after its start (for the replay)."""
        cut = Lane(self.name, status="running", opens_thinking=self.opens_thinking)
        n = sum(1 for s in self.times if s <= t)
        cut.times, cut.totals = self.times[:n], self.totals[:n]
        keep = sum(1 for step in self.piece_steps if step < n)
        cut.pieces, cut.piece_steps = self.pieces[:keep], self.piece_steps[:keep]
        if n == len(self.times):
            cut.status, cut.result, cut.error = self.status, self.result, self.error
        return cut


def lane_html(lane: Lane, legend: bool = False) -> str:
    """A pane: accepted draft text highlighted, target text plain, the status underneath."""
    body = "".join(f'<span class="acc">{html.escape(t)}</span>' if acc else html.escape(t) for t, acc in lane.pieces)
    still = False
    if lane.opens_thinking is not None:  # Qwen3: the reasoning in a box of its own, above the answer
        parts = reasoning.segments(lane.pieces, lane.opens_thinking)
        think, answer = ("".join(f'<span class="acc">{html.escape(t)}</span>' if acc else html.escape(t)
                                 for kind, t, acc in parts if kind == want) for want in ("think", "answer"))
        still = reasoning.split(lane.text, lane.opens_thinking)[2]
        body = (f'<div class="think"><div class="think-label">thinking</div>{think}</div>' if think or still
                else "") + answer
    if lane.error:
        body += f'<div class="lane-error">{html.escape(lane.error)}</div>'
    status = html.escape(lane.status)
    if lane.result is not None:
        r = lane.result
        status = (f"{len(r.tokens)} tokens in {r.seconds:.2f} s, {r.tokens_per_second or 0:.2f} tokens/s end to end, "
                  f"{fmt(r.tokens_per_second_after_first, '.2f')} decoding" + (" (stopped)" if r.cancelled else "") +
                  (f" · ran {'first' if lane.order == 1 else 'second'}" if lane.order else "") +
                  (" · still thinking: no answer yet" if still else ""))
    # both panes carry a key line, so their text boxes start at the same height and line up
    key = ('<div class="legend">' + ('<span class="acc">accepted draft tokens</span> ' if legend else "") +
           '<span class="tgt">tokens the target produced</span></div>')
    return f'{key}<div class="lane-text">{body}</div><div class="lane-status">{status}</div>'


def plot(lanes: list[Lane]):
    """Tokens generated against time for each lane (plotly)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for lane in lanes:
        fig.add_trace(go.Scatter(x=[0.0, *lane.times], y=[0, *lane.totals], mode="lines", name=lane.name,
                                 line_shape="hv"))
    # the legend goes under the axis: above the plot it sat on the component's label
    fig.update_layout(xaxis_title="seconds", yaxis_title="tokens generated", height=340,
                      margin=dict(l=50, r=10, t=30, b=90),
                      legend=dict(orientation="h", x=0, xanchor="left", y=-0.3, yanchor="top"))
    return fig


def fmt(v, spec: str, unit: str = "") -> str:
    return "–" if v is None else f"{format(v, spec)}{unit}"


def metrics_rows(base: RunResult | None, spec: RunResult | None) -> list[tuple[str, str, str]]:
    """(label, baseline, drafted lane) rows for the metrics panel."""
    rows = [
        ("TTFT", fmt(base and base.ttft_ms, ".0f", " ms"), fmt(spec and spec.ttft_ms, ".0f", " ms")),
        ("tokens/s end to end", fmt(base and base.tokens_per_second, ".2f"),
         fmt(spec and spec.tokens_per_second, ".2f")),
        # after the first token: the decode speed, without the prompt's reading and a busy machine's first step
        ("decode tokens/s", fmt(base and base.tokens_per_second_after_first, ".2f"),
         fmt(spec and spec.tokens_per_second_after_first, ".2f")),
    ]
    if spec is not None:
        rows += [
            ("acceptance rate", "", fmt(spec.acceptance_rate and spec.acceptance_rate * 100, ".0f", " %")),
            ("acceptance by draft position", "", by_position(spec.per_position_acceptance)),
            ("tokens per step", "1", fmt(spec.tokens_per_step, ".2f")),
            ("draft ms / token", "", fmt(spec.draft_ms_per_token, ".1f")),
            ("target ms / step", fmt(base and base.target_ms_per_step, ".1f"), fmt(spec.target_ms_per_step, ".1f")),
            ("c (draft / target token cost)", "", fmt(spec.c, ".2f")),
        ]
    return rows


def by_position(shares: list[float | None] | None) -> str:
    """"1: 96 % · 2: 81 % · 3: 60 %": where a longer draft stops paying (– for a confidence threshold or
    prompt lookup, which do not say how many tokens each step drafted)."""
    if not shares:
        return "–"
    return " · ".join(f"{k}: {fmt(s and s * 100, '.0f', ' %')}" for k, s in enumerate(shares, 1))


def summary(base: RunResult | None, spec: RunResult | None, engine: Engine, settings: Settings) -> str:
    """The metrics panel as HTML: speedup, theory, identity, device and models."""
    measured = metrics.speedup(spec.seconds, base.seconds) if base and spec else None
    decode = decode_speedup(base, spec)
    rows = "".join(f"<tr><td>{a}</td><td>{b}</td><td>{c}</td></tr>" for a, b, c in metrics_rows(base, spec))
    lane_name = "prompt lookup" if settings.draft == PROMPT_LOOKUP else f"draft {settings.draft}"
    head = (f'<div class="speedup">speedup {fmt(measured, ".2f", "×")}</div>'
            f'<div class="decode-speedup">end to end; decoding alone {fmt(decode, ".2f", "×")}</div>')
    theory = ""
    if spec is not None:
        theory = (f"<div>theoretical speedup {fmt(spec.theoretical_speedup, '.2f', '×')} "
                  f"(measured {fmt(measured, '.2f', '×')})</div>")
    same = ""
    if base and spec and not spec.cancelled and not base.cancelled:
        div = metrics.first_divergence(base.tokens, spec.tokens)
        # with a stateful baseline the two lanes also run different attention kernels, the larger cause
        why = ("the baseline runs on the stateful backend, the drafted lane on the paged one, and their kernels "
               "round differently" if engine.baseline_backend == "stateful" else
               "the target's drafted steps check several tokens at once, which this device rounds differently "
               "from one-token steps; near a tie that picks another token" +
               ("" if engine.exact else " (start the app with --exact for bit-identical lanes, ~17% slower)"))
        same = ("<div>outputs identical token for token</div>" if div is None else
                f"<div class='warn'>outputs differ from token {div}: {why}</div>")
    return (f'{head}<table><tr><th></th><th>baseline</th><th>{html.escape(lane_name)}</th></tr>{rows}</table>'
            f'{theory}{same}<div class="models">{html.escape(engine.describe())}: target '
            f'{html.escape(engine.prepared.target_label)}, {html.escape(lane_name)}</div>')


def decode_speedup(base: RunResult | None, spec: RunResult | None) -> float | None:
    """The drafted lane's decode tokens/s over the baseline's (both after their first token)."""
    b = base and base.tokens_per_second_after_first
    s_ = spec and spec.tokens_per_second_after_first
    return s_ / b if b and s_ else None


def how_it_works(spec: RunResult | None) -> str:
    """The formula, with this run's numbers plugged in when there are some."""
    text = ("Each step the draft proposes γ tokens; the target checks them all in one pass and keeps the "
            "longest agreeing prefix plus one token of its own. With per-token acceptance α, a step yields "
            "E = (1 − α^(γ+1)) / (1 − α) tokens and costs γ·c + 1 target steps, where c is a draft token's cost "
            "relative to a target step, so the speedup is E / (γ·c + 1).")
    if spec is not None and spec.alpha is not None and spec.gamma:
        e = metrics.expected_tokens_per_step(spec.alpha, spec.gamma)
        text += (f"\n\nThis run: γ = {spec.gamma:.0f}, α = {spec.alpha:.2f} (from {spec.tokens_per_step:.2f} "
                 f"tokens per step), E = {e:.2f}, c = {fmt(spec.c, '.2f')} → theoretical speedup "
                 f"{fmt(spec.theoretical_speedup, '.2f', '×')}. A verification step that costs more than one "
                 f"ordinary step (target ms/step above) is why the measured speedup falls short of it.")
    return text


@dataclass
class RaceRecord:
    """A finished (or stopped) race, kept for the replay."""

    prompt: str
    settings: Settings
    lanes: list[Lane]


def validate(engine: Engine, prompt: str, settings: Settings, later=None) -> str | None:
    """A message for bad input, or None. later: the OnDemand of drafts not prepared yet."""
    if not prompt or not prompt.strip():
        return "Type a prompt first."
    if later is not None and settings.draft in later.pending() and settings.draft not in engine.drafts:
        return (f"The draft {settings.draft} is still being prepared (see the message under the settings); "
                f"run again when it is ready, or pick a prepared draft.")
    if settings.draft not in (*engine.drafts, PROMPT_LOOKUP):
        return f"Unknown draft {settings.draft!r}."
    try:
        engine.encode(settings.request(prompt, "baseline"))
    except EngineError as exc:
        return str(exc)
    return None


def run_race(engine: Engine, prompt: str, settings: Settings,
             drafted_first: bool | None = None) -> Iterator[tuple[list[Lane], bool]]:
    """Run both lanes one after the other on the same device (so neither slows the other), yielding
    ([baseline, drafted], finished) at most every UPDATE_EVERY seconds. Which lane goes first alternates from race
    to race (drafted_first overrides), and each starts after an untimed pause, so neither pays for what ran
    before it (the other lane, the browser drawing the click)."""
    names = ["baseline", "prompt lookup" if settings.draft == PROMPT_LOOKUP else f"speculative ({settings.draft})"]
    lanes = [Lane(n) for n in names]
    if drafted_first is None:
        drafted_first = next(_RACES) % 2 == 1
    order = [(lanes[1], "drafted"), (lanes[0], "baseline")] if drafted_first else \
        [(lanes[0], "baseline"), (lanes[1], "drafted")]
    last = 0.0
    for n, (lane, kind) in enumerate(order, 1):
        lane.order = n
        if settings.settle > 0:
            lane.status = "waiting for the CPU to settle"
            yield lanes, False
            time.sleep(settings.settle)
        lane.status = "running"
        yield lanes, False  # show at once which lane is running
        try:
            run = engine.start(settings.request(prompt, "baseline" if kind == "baseline" else "drafted"))
            if engine.prepared.thinking:
                lane.opens_thinking = reasoning.opens_thinking(run.request.reply_prefix)
            for ev in run:
                lane.add(ev.text, ev.draft_text, ev.t, len(ev.tokens))
                if time.monotonic() - last >= UPDATE_EVERY:
                    last = time.monotonic()
                    yield lanes, False
            lane.result = run.result
            lane.status = "done"
        except EngineError as exc:
            lane.status, lane.error = "failed", str(exc)
        yield lanes, False
    yield lanes, True


def prepare_draft(later, name: str, every: float = 1.0) -> Iterator[str]:
    """Build a draft left for later (demo.models.prepare.OnDemand) in a thread, a progress line every `every`
    seconds, then the outcome."""
    from demo.models import PrepareError

    box: dict = {}

    def work():
        try:
            box["path"] = later.prepare(name)
        except (PrepareError, OSError) as exc:
            box["error"] = str(exc)

    t0 = time.monotonic()
    thread = threading.Thread(target=work, name=f"prepare-{name}", daemon=True)
    thread.start()
    while thread.is_alive():
        yield (f"⏳ Preparing the draft {name}: {time.monotonic() - t0:.0f} s so far (about 1–3 minutes on a 2-core "
               f"CPU; the other drafts stay usable, though slower while it converts).")
        thread.join(every)
    if "error" in box:
        yield f"⚠️ The draft {name} could not be prepared: {box['error']}"
    else:
        yield f"✅ The draft {name} is ready ({time.monotonic() - t0:.0f} s); run the race."


def replay_frames(record: RaceRecord, fps: float = 10.0) -> Iterator[list[Lane]]:
    """Both lanes together from t=0 at their recorded pace."""
    end = max((lane.times[-1] if lane.times else 0.0) for lane in record.lanes)
    t0 = time.monotonic()
    while True:
        t = time.monotonic() - t0
        yield [lane.until(t) for lane in record.lanes]
        if t >= end:
            return
        time.sleep(1.0 / fps)
