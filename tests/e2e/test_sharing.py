"""A public app over HTTP: it needs a login, caps what a visitor sends, bounds its queue, and Stop ends a running
agent step at once. The real app.py on the tiny pair, and the real Agent tab in this process for what needs
the model to write a particular piece of code (a step that sleeps)."""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from demo import limits as caps
from demo.agent import sandbox
from helpers import CHROMIUM, free_port, launch_chromium

ROOT = Path(__file__).resolve().parents[2]
USER, PASSWORD = "booth", "s3cret-pass"
PROMPT = "Write a function that adds two numbers"
LONG = "x" * 50_000



def wait_up(url: str, proc: subprocess.Popen | None, log: Path | None, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except urllib.error.HTTPError:
            return  # it answers (a login wall is an answer)
        except OSError:
            if proc is not None and proc.poll() is not None:
                pytest.fail(f"app exited: {log.read_text()[-2000:]}")
            time.sleep(1)
    pytest.fail("app did not start" + (f": {log.read_text()[-2000:]}" if log else ""))


def app_args(pair) -> list[str]:
    (name, path), = pair.drafts.items()
    return [sys.executable, "app.py", "--target", str(pair.target), "--draft", f"{name}={path}"]


@pytest.mark.parametrize("flags", [["--share"], ["--host", "0.0.0.0"], ["--host", "192.0.2.1"]])
def test_public_launch_without_auth_refuses_with_one_line(flags, tmp_path):
    done = subprocess.run([sys.executable, "app.py", *flags, "--api-key", "k", "--cache-dir", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "needs a login" in lines[0] and "--auth" in lines[0], done.stderr
    assert list(tmp_path.iterdir()) == []  # refused before preparing anything


def test_bad_auth_value_is_refused(tmp_path):
    done = subprocess.run([sys.executable, "app.py", "--host", "0.0.0.0", "--auth", "nopassword", "--api-key", "k"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "USER:PASSWORD" in done.stderr


@pytest.fixture(scope="module")
def public_url(qwen2_pair, tmp_path_factory):
    """The real app on all interfaces, with a login (and the /v1 key issue 15 requires there)."""
    port = free_port()
    log = tmp_path_factory.mktemp("public") / "app.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([*app_args(qwen2_pair), "--host", "0.0.0.0", "--port", str(port), "--auth",
                                 f"{USER}:{PASSWORD}", "--api-key", "test-key", "--cache-dir",
                                 str(tmp_path_factory.mktemp("cache"))],
                                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"})
    url = f"http://127.0.0.1:{port}/"
    wait_up(url, proc, log)
    yield url
    proc.terminate()
    proc.wait(timeout=30)


def test_unauthenticated_http_is_rejected(public_url):
    from gradio_client import Client

    for path in ("config", "gradio_api/info"):
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(public_url + path, timeout=10)
        assert err.value.code == 401
    join = urllib.request.Request(public_url + "gradio_api/queue/join", method="POST",
                                  data=json.dumps({"data": [PROMPT], "fn_index": 0, "session_hash": "x"}).encode(),
                                  headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(join, timeout=10)
    assert err.value.code == 401
    with pytest.raises(Exception):
        Client(public_url, verbose=False)
    with pytest.raises(Exception):
        Client(public_url, auth=(USER, "wrong"), verbose=False)


def race(client, prompt=PROMPT, max_new=16):
    return client.predict(prompt, "qwen2-draft", 4, False, 0.4, max_new, False, "CPU", api_name="/race")


def test_login_then_caps_give_clear_messages(public_url):
    from gradio_client import Client

    client = Client(public_url, auth=(USER, PASSWORD), verbose=False)
    assert "tokens in" in race(client)[0]
    message = race(client, LONG)[-1]
    assert "50,000 characters" in message and "limit on this public link is 4,000" in message
    status = client.predict(LONG, True, False, 2, "code", api_name="/agent")[1]
    assert "50,000 characters" in status and "4,000" in status
    # a max_new_tokens above the public cap is refused by the slider's own range check, not run
    with pytest.raises(Exception) as err:
        race(client, max_new=512)
    assert "Traceback" not in str(err.value) and "/work" not in str(err.value)


@pytest.mark.parametrize("clients", [2, 5])
def test_concurrent_clients_finish_or_get_a_queue_message(public_url, clients):
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    outcomes: list[str] = []

    def one(i):
        try:
            c = Client(public_url, auth=(USER, PASSWORD), verbose=False)
            html = race(c, f"{PROMPT} (client {i})")[0]
            outcomes.append("done" if "tokens in" in html else f"odd: {html[:200]}")
        except Exception as exc:  # QueueError("Queue is full! ...") is the allowed refusal
            text = str(exc)
            outcomes.append("queue full" if "Queue is full" in text else f"error: {type(exc).__name__}: {text}")
            assert not isinstance(exc, AppError) or "Queue" in text

    threads = [threading.Thread(target=one, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    assert len(outcomes) == clients and set(outcomes) <= {"done", "queue full"}, outcomes
    assert "done" in outcomes


# ---------------------------------------------------------------- the Agent tab, in this process

SLEEP = ("<code>\nfrom pptx import Presentation\nPresentation().save('started.pptx')\nimport time\n"
         "time.sleep(60)\n</code>")
QUICK = "<code>\nprint('quick')\n</code>"


@pytest.fixture(scope="module")
def agent_app(engine, scripted_model, tmp_path_factory):
    """The real Agent tab and launch() with a login and a queue of 2; the model's replies are scripted: for a
    task that says "sleep" its code sleeps, otherwise it prints and the run stops at the step limit."""
    import gradio as gr

    from demo.views import agent as agent_view, blocks

    runs = tmp_path_factory.mktemp("runs")

    class ByTask(scripted_model):
        def generate(self, messages, stop_sequences=None, **kwargs):
            self.replies = [SLEEP if "sleep" in str(messages) else QUICK]
            return super().generate(messages, stop_sequences, **kwargs)

    def make_model(use_draft):
        return ByTask([])

    limits = dataclasses.replace(caps.PUBLIC, queue_size=2)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(agent_view, "RUNS", runs)
        with gr.Blocks() as demo:
            agent_view.build(engine, limits, make_model=make_model)
        port = free_port()
        blocks.launch(demo, host="127.0.0.1", port=port, prevent_thread_lock=True, auth=(USER, PASSWORD),
                      limits=limits)
        url = f"http://127.0.0.1:{port}/"
        wait_up(url, None, None, 60)
        yield url, runs
        demo.close()


def stop_over_http(url: str, session_hash: str) -> float:
    """Press Stop as the browser does: Stop is not queued (queue=False), so it is a direct POST that a full queue
    cannot refuse, for the same session as the run. Returns the seconds the POST took."""
    import http.cookiejar

    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    opener.open(url + "login", data=urllib.parse.urlencode({"username": USER, "password": PASSWORD}).encode(),
                timeout=10).close()
    t0 = time.monotonic()
    body = json.dumps({"data": [], "session_hash": session_hash}).encode()
    opener.open(urllib.request.Request(url + "gradio_api/run/agent_stop", data=body,
                                       headers={"Content-Type": "application/json"}), timeout=10).close()
    return time.monotonic() - t0


def outcome(job) -> str:
    try:
        job.result(timeout=0 if job.done() else 0.01)
    except Exception as exc:
        return "queue full" if "Queue is full" in str(exc) else ("waiting" if not job.done() else f"error: {exc}")
    return "done"


@pytest.mark.skipif(not sandbox.mechanism().confined, reason="bubblewrap is not usable here")
def test_stop_during_a_sleeping_step_returns_within_two_seconds_and_a_full_queue_says_so(agent_app):
    from gradio_client import Client

    url, runs = agent_app
    owner = Client(url, auth=(USER, PASSWORD), verbose=False)
    job = owner.submit("Make a deck about cats that sleep", False, False, 2, "code", api_name="/agent")
    deadline = time.monotonic() + 120
    while not list(runs.glob("*/work/started.pptx")):
        assert time.monotonic() < deadline and not job.done(), "the scripted step never started"
        time.sleep(0.2)
    time.sleep(0.5)  # now well inside its time.sleep(60)
    sleeping = sandbox.live_processes()
    assert len(sleeping) == 1

    # the one model worker is busy: of four more runs, two wait in the queue of two, two hear it is full
    others = [Client(url, auth=(USER, PASSWORD), verbose=False).submit(
        "Make a deck about dogs", False, False, 2, "code", api_name="/agent") for _ in range(4)]
    time.sleep(3)
    before = [outcome(j) for j in others]
    assert sorted(before) == ["queue full", "queue full", "waiting", "waiting"], before

    t0 = time.monotonic()
    post = stop_over_http(url, owner.session_hash)
    while not job.done():
        assert time.monotonic() - t0 < 2, "the agent run did not end within 2 s of Stop"
        time.sleep(0.05)
    assert post < 2 and time.monotonic() - t0 < 2
    assert "stopped" in job.result()[1]
    assert not set(sleeping) & set(sandbox.live_processes()), "the confined process outlived Stop"
    waiting = [j for j, b in zip(others, before) if b == "waiting"]
    for j in waiting:  # the queue moves on: each waiting run starts its own fresh sandbox and finishes
        trace, status, *_ = j.result(timeout=180)
        assert "quick" in trace and "2 steps" in status
    assert sandbox.live_processes() == []


@pytest.mark.skipif(not Path(CHROMIUM).exists() or not sandbox.mechanism().confined,
                    reason="needs Debian chromium and bubblewrap")
def test_in_chromium_the_page_asks_for_a_login_and_stop_ends_a_sleeping_step(agent_app):
    from playwright.sync_api import sync_playwright

    url, runs = agent_app
    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url)
        page.wait_for_selector("input[type=password]", timeout=60_000)
        assert page.locator("#agent-run").count() == 0  # nothing of the app before the login
        page.locator("input[type=text]").first.fill(USER)
        page.locator("input[type=password]").fill(PASSWORD)
        page.locator("button", has_text="Login").click()
        page.wait_for_selector("#agent-run", timeout=60_000)
        assert "runs confined" in page.locator("#agent-sandbox").inner_text()
        before = set(runs.glob("*/work/started.pptx"))
        page.locator("#agent-task textarea").fill("A deck about owls that sleep all day")
        page.locator("#agent-run").click()
        deadline = time.monotonic() + 120
        while not set(runs.glob("*/work/started.pptx")) - before:
            assert time.monotonic() < deadline, "the scripted step never started"
            time.sleep(0.2)
        time.sleep(0.5)
        sleeping = sandbox.live_processes()
        assert sleeping
        t0 = time.monotonic()
        page.locator("#agent-stop").click()
        page.wait_for_function("() => document.querySelector('#agent-status').innerText.includes('stopped')",
                               timeout=2000)
        while set(sleeping) & set(sandbox.live_processes()):
            assert time.monotonic() - t0 < 2, "the confined process outlived Stop by 2 s"
            time.sleep(0.05)
        browser.close()
