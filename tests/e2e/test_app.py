"""The real app over HTTP (gradio_client) and in headless Chromium (Playwright), on the tiny pair."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import CHROMIUM, launch, launch_chromium, stop_app

PROMPT = "Write a function that adds two numbers"



@pytest.fixture(scope="module")
def app_url(qwen2_pair, tmp_path_factory):
    (draft,) = qwen2_pair.drafts.items()
    proc, url = launch(["app.py", "--target", str(qwen2_pair.target), "--draft", f"{draft[0]}={draft[1]}",
                        "--cache-dir", str(tmp_path_factory.mktemp("cache"))], tmp_path_factory.mktemp("app") / "app.log")
    yield url
    stop_app(proc)


def test_race_over_http(app_url):
    from gradio_client import Client

    client = Client(app_url, verbose=False)
    out = client.predict(PROMPT, "qwen2-draft", 4, False, 0.4, 32, False, "CPU", api_name="/race")
    base_html, spec_html, _plot, metrics_html, how, message = out
    assert message == ""
    assert "32 tokens in" in base_html and "tokens/s" in spec_html
    assert '<span class="acc">' in spec_html
    assert "speedup" in metrics_html and "acceptance rate" in metrics_html and "theoretical speedup" in metrics_html
    assert "This run: γ = 4" in how


def test_empty_prompt_gets_a_message_over_http(app_url):
    from gradio_client import Client

    client = Client(app_url, verbose=False)
    out = client.predict("   ", "qwen2-draft", 4, False, 0.4, 32, False, "CPU", api_name="/race")
    assert "Type a prompt first" in out[-1]


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is not installed")
def test_race_in_chromium(app_url, tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.goto(app_url)
        page.locator("#prompt textarea").fill(PROMPT)
        page.locator("#run").click()
        page.wait_for_selector("#race-metrics .speedup", timeout=120_000)
        assert "tokens/s" in page.locator("#baseline-output").inner_text()
        assert page.locator("#speculative-output .lane-text .acc").count() > 0
        assert "acceptance rate" in page.locator("#race-metrics").inner_text()
        traces = page.evaluate("() => document.querySelector('#tps-plot .js-plotly-plot').data.length")
        assert traces == 2
        shot = Path(os.environ.get("SPECDEMO_SCREENSHOT", tmp_path / "race.png"))
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000
        browser.close()


def test_agent_tab_over_http(app_url):
    from gradio_client import Client

    client = Client(app_url, verbose=False)
    trace, status, *_ = client.predict("Make a deck about cats", True, False, 2, "code", api_name="/agent")
    assert "step 1" in trace
    assert "target + draft" in status and "2 steps" in status and "step limit" in status
    trace, status, *_ = client.predict("Make a deck about cats", False, False, 2, "tool", api_name="/agent")
    assert "step 1" in trace and "target alone" in status and "2 steps" in status
    empty = client.predict("   ", True, False, 2, "code", api_name="/agent")
    assert "task is empty" in empty[1]
