"""The booth panel (python app.py --booth): the speedup shown large, the tally since start, and the page script
that starts a race after N idle seconds and stops it at any visitor input. The races run in demo/views/blocks.py."""
from __future__ import annotations

import html

import gradio as gr

from demo.views.race import fmt

# The page's side of the loop. Only trusted events (a person, not a script) count as input. A loop race is
# started by clicking the hidden #booth-next, only while no visitor's run is on the page ("running" in neither
# the race metrics nor the agent status); input while it runs clicks #booth-stop, which cancels it.
SCRIPT = """
() => {
  const idleMs = %d * 1000;
  let last = Date.now(), looping = false;
  const $ = (id) => document.getElementById(id);
  window.specdemoBoothDone = () => { looping = false; last = Date.now(); };
  const input = (e) => {
    if (!e.isTrusted) return;
    last = Date.now();
    if (looping) { looping = false; $("booth-stop") && $("booth-stop").click(); }
  };
  for (const t of ["pointerdown", "pointermove", "keydown", "wheel", "touchstart", "input"])
    document.addEventListener(t, input, true);
  setInterval(() => {
    if (looping || Date.now() - last < idleMs) return;
    const busy = (id) => $(id) && $(id).innerText.includes("running");  // a visitor's race or agent run
    const next = $("booth-next");
    if (!next || busy("race-metrics") || busy("agent-status")) return;
    looping = true;
    next.click();
  }, 500);
}
"""


def speedup_html(speedup: float | None, prompt: str = "", state: str = "") -> str:
    big = fmt(speedup, ".2f", "×") if speedup else "…"
    return (f'<div id="booth-big" style="font-size:4.5rem;font-weight:700;line-height:1.1;text-align:center">'
            f'{big}</div><div style="text-align:center;font-size:1.1rem">{html.escape(state)}</div>'
            f'<div style="text-align:center;opacity:.75">{html.escape(prompt)}</div>')


def tally_html(summary: dict) -> str:
    """Races since start, median speedup with its range, tokens generated, seconds the draft saved."""
    n = summary["races"]
    if not n:
        return '<div id="booth-tally-text">no races yet</div>'
    rng = f"{summary['min_speedup']:.2f}–{summary['max_speedup']:.2f}×"
    return (f'<div id="booth-tally-text" style="font-size:1.25rem;text-align:center">'
            f'<b>{n}</b> race{"s" if n != 1 else ""} since start ({summary["by_loop"]} by the attract loop) · '
            f'median speedup <b>{summary["median_speedup"]:.2f}×</b> (range {rng}) · '
            f'<b>{summary["tokens"]:,}</b> tokens generated · '
            f'<b>{summary["seconds_saved"]:.0f} s</b> saved by the draft</div>')


def panel(idle: float, summary: dict):
    """The booth's components: (big speedup, tally, hidden next and stop buttons)."""
    with gr.Group(elem_id="booth"):
        big = gr.HTML(speedup_html(None, state=f"a race starts after {idle:.0f} s without input"),
                      elem_id="booth-speedup")
        tally = gr.HTML(tally_html(summary), elem_id="booth-tally")
    nxt = gr.Button("next booth race", visible="hidden", elem_id="booth-next")
    stop = gr.Button("stop booth race", visible="hidden", elem_id="booth-stop")
    return big, tally, nxt, stop


def script(idle: float) -> str:
    return SCRIPT % max(1, round(idle))
