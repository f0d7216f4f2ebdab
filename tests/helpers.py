"""Small helpers the e2e tests share (tests/ is on sys.path through conftest.py)."""
from __future__ import annotations

import shutil

from demo.bench.soak import free_port, launch, stop_app  # noqa: F401  (one copy: the soak starts apps too)

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"  # Debian's, driven through Playwright's Python API
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def launch_chromium(playwright):
    """Headless Debian chromium, quiet: no sandbox (containers), GPU, network chatter or first-run pages."""
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
