"""Screenshot of the Agent tab after one real run: starts the app, runs a task in headless Chromium, waits for the
slide previews and saves a full-page PNG. Checks that every preview is shown whole (object-fit contain, inside
the visible gallery).

python tests/e2e/agent_tab_screenshot.py --preset qwen2.5-coder-1.5b --out agent-tab.png [--task TEXT]
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere: the soak's free_port
from demo.bench.soak import free_port  # noqa: E402

TASK = "Make a three-slide deck introducing speculative decoding, with two bullets per slide"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="qwen2.5-coder-1.5b")
    parser.add_argument("--task", default=TASK)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--timeout", type=float, default=900, help="seconds to wait for the run")
    args = parser.parse_args(argv)
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    port = free_port()
    log = args.out.with_suffix(".log")
    with open(log, "w") as out:
        app = subprocess.Popen([sys.executable, "app.py", "--preset", args.preset, "--port", str(port)], cwd=ROOT,
                               stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"})
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 600
        while True:
            try:
                urllib.request.urlopen(url, timeout=2).close()
                break
            except OSError:
                if app.poll() is not None or time.monotonic() > deadline:
                    print(f"error: the app did not start; see {log}", file=sys.stderr)
                    return 2
                time.sleep(2)
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, headless=True,
                                        args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            page.goto(url)
            page.get_by_role("tab", name="Agent").click()
            page.locator("#agent-task textarea").fill(args.task)
            page.locator("#agent-run").click()
            page.wait_for_function("document.querySelector('#agent-status') && "
                                   "document.querySelector('#agent-status').innerText.includes('final answer')",
                                   timeout=args.timeout * 1000)
            page.wait_for_timeout(3000)  # the previews load after the status
            shown = page.evaluate("""() => [...document.querySelectorAll('#agent-preview img')].map(img => {
                const r = img.getBoundingClientRect(), w = document.querySelector('#agent-preview .grid-wrap')
                    .getBoundingClientRect();
                return getComputedStyle(img).objectFit === 'contain' && r.top >= w.top - 1 && r.bottom <= w.bottom + 1
                    && img.naturalWidth > 0;
            })""")
            args.out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(args.out), full_page=True)
            print(page.locator("#agent-status").inner_text())
            print(page.locator("#agent-renderer").inner_text())
            browser.close()
        print(f"{len(shown)} previews, {sum(shown)} whole; screenshot {args.out}")
        return 0 if shown and all(shown) else 1
    finally:
        app.terminate()
        app.wait(timeout=60)


if __name__ == "__main__":
    sys.exit(main())
