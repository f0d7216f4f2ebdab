"""What a visitor sees, in headless Chromium: whole slide previews in the Agent tab's gallery, and the race's
panes and plot legend laid out without overlap.

The tiny pair cannot write a deck, so the gallery test serves the tab's own gallery component with previews
of a real python-pptx deck; `python tests/e2e/agent_tab_screenshot.py` shows a real run on the offline pair.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import CHROMIUM, free_port, launch_chromium
from test_app import PROMPT, app_url  # noqa: F401  (app_url is a fixture)

from demo.agent import slides

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is not installed")


def make_deck(path: Path, n: int) -> Path:
    from pptx import Presentation

    prs = Presentation()
    for i in range(1, n + 1):
        slide = prs.slides.add_slide(prs.slide_layouts[1])
        slide.shapes.title.text = f"Slide {i}: a title long enough to reach both edges of the slide"
        body = slide.placeholders[1].text_frame
        body.text = f"First point of slide {i}, written wide to reach the right edge of the text box"
        body.add_paragraph().text = "Second point"
    prs.save(path)
    return path


@pytest.fixture
def gallery_url(tmp_path):
    import gradio as gr

    from demo.views import agent as agent_view

    pngs, _ = slides.preview(make_deck(tmp_path / "deck.pptx", 4), tmp_path / "preview")
    with gr.Blocks() as demo:
        gallery = agent_view.slide_gallery()
        demo.load(lambda: [str(p) for p in pngs], None, gallery)
    port = free_port()
    demo.launch(server_port=port, prevent_thread_lock=True, css=(ROOT / "assets" / "style.css").read_text(),
                allowed_paths=[str(tmp_path)], quiet=True)
    yield f"http://127.0.0.1:{port}/", pngs
    demo.close()


def test_slide_previews_are_whole_large_and_in_order(gallery_url, tmp_path):
    from playwright.sync_api import sync_playwright

    url, pngs = gallery_url
    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.goto(url)
        page.wait_for_function("document.querySelectorAll('#agent-preview img').length == 4", timeout=60_000)
        page.wait_for_function("[...document.querySelectorAll('#agent-preview img')].every(i => i.complete "
                               "&& i.naturalWidth > 0)", timeout=60_000)
        # each image inside its cell and inside the gallery's visible box (no scrolling hides a slide)
        imgs = page.evaluate("""() => [...document.querySelectorAll('#agent-preview img')].map(img => {
            const r = img.getBoundingClientRect(), cell = img.parentElement.getBoundingClientRect();
            const wrap = document.querySelector('#agent-preview .grid-wrap');
            const within = (a, b) => a.left >= b.left - 1 && a.right <= b.right + 1 && a.top >= b.top - 1
                                     && a.bottom <= b.bottom + 1;
            return {src: img.currentSrc, fit: getComputedStyle(img).objectFit, w: r.width, h: r.height,
                    nw: img.naturalWidth, nh: img.naturalHeight, inside: within(r, cell),
                    visible: within(r, wrap.getBoundingClientRect()) && wrap.scrollHeight <= wrap.clientHeight + 1};
        })""")
        shot = Path(os.environ.get("SPECDEMO_SCREENSHOT_DIR", tmp_path)) / "agent-previews.png"
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    # in slide order
    assert [Path(i["src"].split("?")[0]).name for i in imgs] == [p.name for p in pngs]
    for i in imgs:
        assert i["fit"] == "contain" and i["inside"] and i["visible"], i  # the whole slide, never cropped
        # the slide as drawn keeps its aspect ratio and is large enough to read at a booth
        shown_w = min(i["w"], i["h"] * i["nw"] / i["nh"])
        assert shown_w >= 500, i
        assert i["nw"] == slides.WIDTH
    assert shot.stat().st_size > 20_000


def test_race_panes_line_up_and_the_legend_sits_below_the_plot(app_url, tmp_path):  # noqa: F811
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.goto(app_url)
        page.locator("#prompt textarea").fill(PROMPT)
        page.locator("#run").click()
        page.wait_for_selector("#race-metrics .speedup", timeout=120_000)
        page.wait_for_selector("#tps-plot .legend", timeout=30_000)
        box = {sel: page.locator(sel).first.bounding_box() for sel in (
            "#baseline-output", "#speculative-output", "#baseline-output .lane-text",
            "#speculative-output .lane-text", "#tps-plot .legend", "#tps-plot .xtitle", "#tps-plot .nsewdrag")}
        browser.close()
    base, spec = box["#baseline-output .lane-text"], box["#speculative-output .lane-text"]
    assert abs(base["y"] - spec["y"]) <= 1 and abs(base["height"] - spec["height"]) <= 1
    assert abs(box["#baseline-output"]["height"] - box["#speculative-output"]["height"]) <= 1
    plot_area, legend = box["#tps-plot .nsewdrag"], box["#tps-plot .legend"]
    # below the traces and the axis title, not on the component's label above the plot
    assert legend["y"] >= plot_area["y"] + plot_area["height"]
    assert legend["y"] >= box["#tps-plot .xtitle"]["y"] + box["#tps-plot .xtitle"]["height"] - 1


DECK_CODE = ("<code>\nfrom pptx import Presentation\nprs = Presentation()\n"
             "for title, bullets in [('Cats at home', ['They sleep a lot', 'They like boxes']),\n"
             "                       ('Cat food', ['Meat first', 'Fresh water'])]:\n"
             "    slide = prs.slides.add_slide(prs.slide_layouts[1])\n"
             "    slide.shapes.title.text = title\n"
             "    body = slide.placeholders[1].text_frame\n"
             "    body.text = bullets[0]\n"
             "    body.add_paragraph().text = bullets[1]\n"
             "prs.save('deck.pptx')\nfinal_answer('Saved deck.pptx with 2 slides')\n</code>")


@pytest.fixture
def compare_url(engine):
    """The Agent tab on the tiny pair. Each step is a real generation through the engine (so prefill and decode
    are real, per lane), whose text the tiny model cannot make a deck of: the step hands the agent a scripted
    deck instead."""
    import gradio as gr
    from smolagents.models import ChatMessage, MessageRole

    from demo.agent.model import EngineModel
    from demo.views import agent as agent_view

    class RealTimeScriptedDeck(EngineModel):
        def generate(self, messages, stop_sequences=None, **kwargs):
            real = super().generate(messages, stop_sequences=stop_sequences, **kwargs)
            return ChatMessage(role=MessageRole.ASSISTANT, content=DECK_CODE.split("</code>")[0],
                               token_usage=real.token_usage)

    with gr.Blocks() as demo:
        agent_view.build(engine, make_model=lambda draft: RealTimeScriptedDeck(engine, draft, max_new_tokens=24))
    port = free_port()
    demo.launch(server_port=port, prevent_thread_lock=True, quiet=True)
    yield f"http://127.0.0.1:{port}/"
    demo.close()


def test_compare_draws_where_the_time_went_for_both_runs(compare_url, tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.goto(compare_url)
        page.locator("#agent-task textarea").fill("Make a 2-slide deck about cats with 2 bullets per slide")
        page.locator("#agent-compare").click()
        page.wait_for_function("document.querySelector('#agent-status').innerText.includes('speedup of the whole')",
                               timeout=240_000)
        page.wait_for_selector("#agent-breakdown .js-plotly-plot .barlayer", timeout=30_000)
        status = page.locator("#agent-status").inner_text()
        plot = page.locator("#agent-breakdown").inner_text()
        bars = page.locator("#agent-breakdown .barlayer .trace").count()
        budget = page.locator("#agent-budget input[type=number]").input_value()
        shot = Path(os.environ.get("SPECDEMO_SCREENSHOT_DIR", tmp_path)) / "agent-compare.png"
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    assert "target alone" in status and "target + draft" in status and status.count("where the time went:") == 2
    assert "prefill" in status and "decode" in status and "from the prefix cache" in status
    # both runs, one stacked bar each, a trace per category, and the totals beside them
    assert "with the draft" in plot and "target alone" in plot and bars == 7
    assert "prefill" in plot and "code (confined process)" in plot and plot.count(" s") >= 2
    assert float(budget) == 120
