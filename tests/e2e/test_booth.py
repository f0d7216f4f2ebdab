"""python app.py --booth in headless Chromium on the tiny pair: the attract loop races when the page is idle,
shows the speedup and the tally, stops at a visitor's input and lets the visitor's race run."""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from helpers import CHROMIUM, launch, launch_chromium, stop_app

IDLE = 3


@pytest.fixture(scope="module")
def booth_url(qwen2_pair, tmp_path_factory):
    (draft,) = qwen2_pair.drafts.items()
    proc, url = launch(["app.py", "--target", str(qwen2_pair.target), "--draft", f"{draft[0]}={draft[1]}",
                        "--cache-dir", str(tmp_path_factory.mktemp("cache")), "--booth", "--idle", str(IDLE)],
                       tmp_path_factory.mktemp("booth") / "app.log")
    yield url
    stop_app(proc)


def loop_races(page) -> int:
    m = re.search(r"\((\d+) by the attract loop\)", page.locator("#booth-tally").inner_text())
    return int(m.group(1)) if m else 0


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is not installed")
def test_attract_loop_races_when_idle_and_stops_for_a_visitor(booth_url, tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.goto(booth_url)
        assert "GB" in page.locator("#memory").inner_text()  # the app's memory in the header
        # nobody touches the page: after IDLE s a loop race runs and its speedup shows large
        page.wait_for_function("() => /\\d×/.test(document.querySelector('#booth-big').innerText)", timeout=120_000)
        assert loop_races(page) >= 1
        assert "median speedup" in page.locator("#booth-tally").inner_text()
        assert page.locator("#baseline-output").inner_text().strip()  # the race shows in the race panes too
        page.screenshot(path=str(Path(os.environ.get("SPECDEMO_SCREENSHOT_DIR", tmp_path)) / "booth.png"))
        # the next loop race starts IDLE s later; a visitor's input stops it at once
        page.wait_for_function("() => document.querySelector('#booth-speedup').innerText.includes('racing')",
                               timeout=60_000)
        page.locator("#prompt textarea").click()
        page.wait_for_function("() => document.querySelector('#booth-speedup').innerText.includes('visitor')",
                               timeout=10_000)
        page.mouse.move(200, 200)  # still here: input keeps the loop off
        page.wait_for_timeout(1000)  # a loop race that ended just before the click still reports its result
        before = loop_races(page)
        # the visitor's own race runs, and no loop race starts while the visitor is active
        page.locator("#prompt textarea").fill("Write a function that adds two numbers")
        page.locator("#run").click()
        page.wait_for_function("() => document.querySelector('#race-metrics').innerText.includes('decode tokens/s')",
                               timeout=120_000)  # the visitor's race summary, decode speed beside end to end
        assert loop_races(page) == before
        browser.close()
