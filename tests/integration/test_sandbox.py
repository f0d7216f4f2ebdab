"""The confined process that runs model-written code (demo/agent/sandbox.py), attacked as a visitor would.

Every probe of issue 14 runs as real agent code against the real bubblewrap process: through the Agent tab's
path (run_agent with a CodeAgent whose replies are the probes) or through the same executor with small
limits. Each read/write probe first passes smolagents' own import rules (so the OS boundary is what stops it):
its error is the file system's, not smolagents' refusal."""
from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from smolagents.local_python_executor import InterpreterError

from demo.agent import jail, run as agent, sandbox
from demo.engine import EngineError

ROOT = Path(__file__).resolve().parents[2]
IMPORTS = agent.AUTHORIZED_IMPORTS
# what the OS says when a host path is not there or not writable ("no member": _DirPkgReader's missing file)
CONTAINED = ("No such file or directory", "Read-only file system", "no member")
REFUSED_BY_SMOLAGENTS = ("is not allowed", "Forbidden", "not defined")

needs_bwrap = pytest.mark.skipif(not sandbox.mechanism().confined,
                                 reason=f"bubblewrap is not usable here: {sandbox.mechanism().detail}")


def probes(secret: Path, out: Path) -> dict[str, str]:
    """Issue 14's escapes, as code the model could write; `secret` and `out` are host paths outside the run."""
    s, venv_file = str(secret), str(Path(sys.prefix) / "poisoned.txt")
    return {
        "image_from_file /etc/hostname": "from pptx.parts.image import Image\n"
                                         "print(Image.from_file('/etc/hostname').blob)",
        "image_from_file secret": f"from pptx.parts.image import Image\nprint(Image.from_file({s!r}).blob)",
        "_DirPkgReader": "from pptx.opc.serialized import _DirPkgReader\nfrom pptx.opc.packuri import PackURI\n"
                         f"print(_DirPkgReader({str(secret.parent)!r})[PackURI('/{secret.name}')])",
        "FileIO read": "from pptx.opc.serialized import _ZipPkgWriter\n"
                       "FileIO = type(_ZipPkgWriter('w.zip')._zipf.fp.raw)\n"
                       f"print(FileIO({s!r}).read())",
        "lxml file entity": "from pptx.oxml import oxml_parser\np = type(oxml_parser)(resolve_entities=True)\n"
                            f"p.feed('<!DOCTYPE r [<!ENTITY e SYSTEM \"file://{s}\">]><r>&e;</r>')\n"
                            "print(p.close().text)",
        "add_ole_object": "from pptx import Presentation\nfrom pptx.util import Inches\nprs = Presentation()\n"
                          "slide = prs.slides.add_slide(prs.slide_layouts[6])\n"
                          f"slide.shapes.add_ole_object({s!r}, 'Package', Inches(1), Inches(1))\n"
                          "prs.save('ole.pptx')",
        "prs.part.save": f"from pptx import Presentation\nPresentation().part.save({str(out / 'w1.pptx')!r})",
        "prs.part.package.save": "from pptx import Presentation\n"
                                 f"Presentation().part.package.save({str(out / 'w2.pptx')!r})",
        "__fspath__": "from pptx import Presentation\nclass P:\n    def __fspath__(self):\n"
                      f"        return {str(out / 'w3.pptx')!r}\nPresentation().save(P())",
        "_ZipPkgWriter": f"from pptx.opc.serialized import _ZipPkgWriter\nw = _ZipPkgWriter({str(out / 'w4.zip')!r})\n"
                         "w._zipf.writestr('a', 'b')\nw._zipf.close()",
        "xlsx Workbook": f"from pptx.chart.xlsx import Workbook\nwb = Workbook({str(out / 'w5.xlsx')!r})\n"
                         "wb.add_worksheet()\nwb.close()",
        "FileIO write": "from pptx.opc.serialized import _ZipPkgWriter\n"
                        "FileIO = type(_ZipPkgWriter('w2.zip')._zipf.fp.raw)\n"
                        f"FileIO({str(out / 'w6.txt')!r}, 'w').write(b'x')",
        "save ../": "from pptx import Presentation\nPresentation().save('../w7.pptx')",
        "save absolute": f"from pptx import Presentation\nPresentation().save({str(out / 'w8.pptx')!r})",
        "write into the venv": "from pptx.opc.serialized import _ZipPkgWriter\n"
                               "FileIO = type(_ZipPkgWriter('w3.zip')._zipf.fp.raw)\n"
                               f"FileIO({venv_file!r}, 'w').write(b'x')",
        "/proc/1/environ": "from pptx.opc.serialized import _ZipPkgWriter\n"
                           "FileIO = type(_ZipPkgWriter('w4.zip')._zipf.fp.raw)\n"
                           "print(FileIO('/proc/1/environ').read())",
        "environ through str.format": "from pptx.opc.serialized import _DirPkgReader\n"
                                      "print('{0.__init__.__globals__[os].environ}'.format(_DirPkgReader))",
    }


@pytest.fixture
def host(tmp_path, monkeypatch):
    """A secret file and an output folder beside the run folder, and a secret in the server's environment."""
    secret = tmp_path / "secret.txt"
    secret.write_text("TOPSECRET-4711")
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.setenv("SPECDEMO_PROBE_TOKEN", "env-secret-0815")
    return secret, out


def step_texts(trace) -> dict[int, str]:
    texts: dict[int, str] = {}
    for it in trace:
        if it.kind in ("error", "observation"):
            texts[it.step] = texts.get(it.step, "") + it.text + "\n"
    return texts


@needs_bwrap
def test_every_read_write_and_environment_probe_is_contained(engine, tmp_path, host, scripted_model):
    secret, out = host
    cases = probes(secret, out)
    replies = [f"<code>\n{code}\n</code>" for code in cases.values()]
    items = list(agent.run_agent(engine, "a deck", tmp_path / "run", model=scripted_model(replies),
                                 max_steps=len(replies), search=False))
    texts = step_texts(items[:-1])
    for step, (name, _) in enumerate(cases.items(), start=1):
        text = texts.get(step, "")
        assert "TOPSECRET" not in text and "env-secret" not in text, (name, text)
        if name in ("environ through str.format", "/proc/1/environ"):
            continue
        if name == "lxml file entity":  # libxml2 leaves an entity it cannot load empty
            assert "Last output from code snippet:\nNone" in text and "None\n" in text, text
            continue
        assert any(c in text for c in CONTAINED), (name, text)  # stopped by the OS boundary...
        assert not any(r in text for r in REFUSED_BY_SMOLAGENTS), (name, text)  # ...not by smolagents
    environ = texts[list(cases).index("environ through str.format") + 1]
    shown = environ.split("environ(")[1].split(")")[0]
    assert set(eval(shown)) <= {"PATH", "HOME", "LANG", "PWD"}, environ  # an empty environment, plus Python's
    assert list(out.iterdir()) == [] and not (tmp_path / "w7.pptx").exists()
    assert not (Path(sys.prefix) / "poisoned.txt").exists()
    assert not (tmp_path / "run" / "files" / "ole.pptx").exists()  # nothing embedded from outside


@needs_bwrap
def test_smolagents_rules_stay_as_a_second_layer(engine, tmp_path, scripted_model):
    codes = ["import os", "import subprocess", "import sys", "import socket", "open('x.txt', 'w')",
             "__import__('os')", "from pptx import Presentation\nPresentation.__init__.__globals__"]
    items = list(agent.run_agent(engine, "a deck", tmp_path / "run", search=False, max_steps=len(codes),
                                 model=scripted_model([f"<code>\n{c}\n</code>" for c in codes])))
    texts = step_texts(items[:-1])
    for step, code in enumerate(codes, start=1):
        assert any(r in texts[step] for r in ("is not allowed", "Forbidden", "not among", "dunder")), \
            (code, texts[step])
    assert not (tmp_path / "run" / "files" / "x.txt").exists()


@needs_bwrap
def test_a_replaced_save_does_not_reach_the_next_run_or_the_server(engine, tmp_path, scripted_model):
    from pptx.presentation import Presentation

    original = Presentation.save
    poison = ("<code>\nfrom pptx.presentation import Presentation\n"
              "def save(self, file):\n    print('poisoned')\n"
              "setattr(Presentation, 'save', save)\nprint('replaced')\n</code>")
    first = list(agent.run_agent(engine, "a deck", tmp_path / "a", search=False, max_steps=1,
                                 model=scripted_model([poison])))
    assert any("replaced" in t.text for t in first[:-1] if t.kind == "observation")
    save = "<code>\nfrom pptx import Presentation\nPresentation().save('deck.pptx')\nprint('saved')\n</code>"
    second = list(agent.run_agent(engine, "a deck", tmp_path / "b", search=False, max_steps=1,
                                  model=scripted_model([save])))
    assert any("saved" in t.text and "poisoned" not in t.text for t in second[:-1] if t.kind == "observation")
    assert [p.name for p in (tmp_path / "b" / "files").iterdir()] == ["deck.pptx"]
    assert Presentation.save is original  # the server's python-pptx was never touched


def run_code(tmp_path, code, **limits):
    ex = sandbox.SandboxExecutor(tmp_path / "run", IMPORTS, sandbox.CodeLimits(**limits))
    ex.send_tools({})
    t0 = time.monotonic()
    try:
        return ex(code), None, time.monotonic() - t0
    except InterpreterError as exc:
        return None, str(exc), time.monotonic() - t0
    finally:
        ex.cleanup()


@needs_bwrap
def test_sleep_is_killed_at_the_step_limit_not_after_it(tmp_path):
    _, error, seconds = run_code(tmp_path, "import time\ntime.sleep(33)", step_seconds=2)
    assert "ran past its 2 s time limit" in error and seconds < 4
    assert sandbox.live_processes() == []


@needs_bwrap
def test_cpu_time_limit_kills_a_long_computation(tmp_path):
    _, error, seconds = run_code(tmp_path, "sum(range(3 * 10**11))", cpu_seconds=2, step_seconds=60)
    assert "CPU time limit" in error and seconds < 30


@needs_bwrap
def test_memory_limit_refuses_a_huge_allocation_and_the_process_goes_on(tmp_path):
    ex = sandbox.SandboxExecutor(tmp_path / "run", IMPORTS, sandbox.CodeLimits(memory_bytes=512 << 20))
    ex.send_tools({})
    try:
        ex("x = 41")
        with pytest.raises(InterpreterError, match="MemoryError"):
            ex("big = 'a' * 10**9")
        assert ex("print(x + 1)").logs == "42\n"  # same process, variables kept
    finally:
        ex.cleanup()


@needs_bwrap
def test_file_size_tmp_and_folder_limits(tmp_path):
    _, error, _ = run_code(tmp_path, "from pptx.opc.serialized import _ZipPkgWriter\n"
                                     "FileIO = type(_ZipPkgWriter('w.zip')._zipf.fp.raw)\n"
                                     "f = FileIO('big.bin', 'w')\nfor i in range(3):\n    f.write(b'x' * (1 << 20))",
                           file_bytes=1 << 20)
    assert error and "File too large" in error, error
    assert (tmp_path / "run" / "files" / "big.bin").stat().st_size == 1 << 20
    _, error, _ = run_code(tmp_path, "from pptx.opc.serialized import _ZipPkgWriter\n"
                                     "FileIO = type(_ZipPkgWriter('w.zip')._zipf.fp.raw)\n"
                                     "f = FileIO('/tmp/big.bin', 'w')\n"
                                     "for i in range(3):\n    f.write(b'x' * (1 << 20))",
                           tmp_bytes=1 << 20)
    assert error and "No space left on device" in error, error
    loop = ("from pptx.opc.serialized import _ZipPkgWriter\nimport time\n"
            "FileIO = type(_ZipPkgWriter('w.zip')._zipf.fp.raw)\n"
            "for i in range(400):\n    FileIO(f'part{i}.bin', 'w').write(b'x' * (1 << 20))\n    time.sleep(0.01)")
    (tmp_path / "c").mkdir()
    _, error, _ = run_code(tmp_path / "c", loop, folder_bytes=20 << 20, step_seconds=60)
    # a tmpfs of that size where the server may mount one (root), else the once-a-second poll
    assert "No space left on device" in error or "run folder grew past 20 MiB" in error, error
    assert sum(p.stat().st_size for p in (tmp_path / "c" / "run" / "files").iterdir()) <= 20 << 20


@needs_bwrap
def test_no_network_even_to_the_hosts_loopback(tmp_path):
    hits = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"<r>reached</r>")

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/x.xml"
    try:
        code = (f"from pptx.oxml import oxml_parser\np = type(oxml_parser)(no_network=False, load_dtd=True)\n"
                f"p.feed('<!DOCTYPE r SYSTEM \"{url}\"><r/>')\nprint(p.close())")
        out, error, _ = run_code(tmp_path, code)
    finally:
        server.shutdown()
    assert hits == [], "the confined process reached the host's network"
    assert error is None or "reached" not in error


@needs_bwrap
def test_stop_kills_a_running_step_within_two_seconds(tmp_path):
    stop = threading.Event()
    ex = sandbox.SandboxExecutor(tmp_path / "run", IMPORTS, stop=stop)
    ex.send_tools({})
    result = {}

    def step():
        try:
            ex("import time\ntime.sleep(30)")
        except InterpreterError as exc:
            result["error"] = str(exc)
        result["t"] = time.monotonic()

    worker = threading.Thread(target=step)
    worker.start()
    time.sleep(1.5)  # the process is up and sleeping
    assert sandbox.live_processes()
    t0 = time.monotonic()
    stop.set()
    worker.join(5)
    assert result["t"] - t0 < 2 and "stopped" in result["error"]
    assert sandbox.live_processes() == []
    with pytest.raises(InterpreterError, match="stopped"):
        ex("print(1)")  # a stopped run runs no more code
    ex.cleanup()


@needs_bwrap
def test_variables_persist_across_steps_and_a_killed_process_is_replaced(tmp_path):
    ex = sandbox.SandboxExecutor(tmp_path / "run", IMPORTS, sandbox.CodeLimits(step_seconds=2))
    ex.send_tools({})
    ex.send_variables({"topic": "cats"})
    try:
        assert ex("n = 3\ntopic").output == "cats"
        assert ex("n * 2").output == 6
        with pytest.raises(InterpreterError, match="time limit"):
            ex("import time\ntime.sleep(10)")
        with pytest.raises(InterpreterError, match="fresh sandbox process.*\n.*`n` is not defined"):
            ex("n")
        assert ex("topic").output == "cats"  # the agent's variables are sent to the new process again
    finally:
        ex.cleanup()


@needs_bwrap
def test_tools_are_proxies_that_run_in_the_server(tmp_path):
    from smolagents.default_tools import FinalAnswerTool

    from demo.agent.tools import SearchTool

    ex = sandbox.SandboxExecutor(tmp_path / "run", IMPORTS)
    ex.send_tools({"web_search": SearchTool(), "final_answer": FinalAnswerTool()})
    try:
        out = ex("r = web_search(query='openvino')\nprint(r[:40])")
        assert out.logs.startswith("search unavailable (offline)") or "http" in out.logs
        final = ex("final_answer('the deck is saved')")
        assert final.is_final_answer and final.output == "the deck is saved"
    finally:
        ex.cleanup()


@needs_bwrap
def test_tool_calling_agent_runs_python_interpreter_in_the_sandbox(engine, tmp_path, host, scripted_model):
    secret, _ = host
    replies = ["Action:\n" + json.dumps({"name": "python_interpreter", "arguments": {
        "code": "from pptx.parts.image import Image\n" f"print(Image.from_file({str(secret)!r}).blob)"}})]
    items = list(agent.run_agent(engine, "a deck", tmp_path / "run", model=scripted_model(replies), max_steps=1,
                                 search=False, kind="tool"))
    text = step_texts(items[:-1])[1]
    assert "No such file or directory" in text and "TOPSECRET" not in text


def test_missing_mechanism_refuses_unless_allowed_and_never_on_a_public_app(engine, tmp_path, monkeypatch,
                                                                           scripted_model):
    monkeypatch.setenv("SPECDEMO_BWRAP", str(tmp_path / "no-bwrap"))
    monkeypatch.setenv("SPECDEMO_PROBE_TOKEN", "env-secret-0815")
    sandbox.mechanism.cache_clear()
    try:
        assert sandbox.mechanism().state == "missing" and "not found" in sandbox.mechanism().detail
        assert "--allow-unconfined" in sandbox.notice(public=False)
        with pytest.raises(EngineError, match="does not run without its sandbox.*--allow-unconfined"):
            list(agent.run_agent(engine, "a deck", tmp_path / "run", model=scripted_model([])))
        jail.allow_unconfined(True)
        assert "NOT confined" in sandbox.notice(public=False)
        with pytest.raises(EngineError, match="does not run on a shared or non-loopback app"):
            list(agent.run_agent(engine, "a deck", tmp_path / "run", model=scripted_model([]), public=True))
        code = "from pptx.opc.serialized import _DirPkgReader\nprint('{0.__init__.__globals__[os].environ}'" \
               ".format(_DirPkgReader))"
        out, error, _ = run_code(tmp_path, code)
        assert error is None and "env-secret" not in out.logs  # a separate process with an empty environment
        _, error, seconds = run_code(tmp_path, "import time\ntime.sleep(30)", step_seconds=2)
        assert "time limit" in error and seconds < 4
    finally:
        jail.allow_unconfined(False)
        sandbox.mechanism.cache_clear()


def test_installed_but_failing_bubblewrap_refuses_even_on_loopback_with_the_flag(engine, tmp_path, monkeypatch,
                                                                                  scripted_model):
    broken = tmp_path / "bwrap"
    broken.write_text("#!/bin/sh\necho 'bwrap: execvp /tmp/x/.venv/bin/python: No such file or directory' >&2\n"
                      "exit 1\n")
    broken.chmod(0o755)
    monkeypatch.setenv("SPECDEMO_BWRAP", str(broken))
    sandbox.mechanism.cache_clear()
    jail.allow_unconfined(True)
    try:
        assert sandbox.mechanism().state == "broken" and "execvp" in sandbox.mechanism().detail
        assert "Nothing runs unconfined" in sandbox.notice(public=False)
        with pytest.raises(EngineError, match="installed but failed"):
            list(agent.run_agent(engine, "a deck", tmp_path / "run", model=scripted_model([])))
        _, error, _ = run_code(tmp_path, "print(1)")
        assert "installed but failed" in error
        done = subprocess.run([sys.executable, "-m", "demo.sandbox", "--folder", str(tmp_path / "cli"), "--json",
                               "--allow-unconfined", str(ROOT / "README.md")], cwd=ROOT, capture_output=True,
                              text=True, timeout=120, env={**os.environ, "SPECDEMO_BWRAP": str(broken)})
        assert done.returncode == 2 and "installed but failed" in done.stderr
        assert json.loads(done.stdout.strip().splitlines()[-1])["confined"] is False
        check = subprocess.run([sys.executable, "-m", "demo.sandbox", "--check"], cwd=ROOT, capture_output=True,
                               text=True, timeout=120, env={**os.environ, "SPECDEMO_BWRAP": str(broken)})
        assert check.returncode == 1 and "NOT confined (broken)" in check.stdout
    finally:
        jail.allow_unconfined(False)
        sandbox.mechanism.cache_clear()


@needs_bwrap
def test_cli_runs_a_file_in_a_fresh_confined_process(tmp_path, host):
    secret, _ = host
    first = tmp_path / "first.py"
    first.write_text("from pptx import Presentation\nprs = Presentation()\n"
                     "prs.slides.add_slide(prs.slide_layouts[0]).shapes.title.text = 'Hi'\n"
                     "prs.save('deck.pptx')\nkept = 'from the first call'\nprint('saved')")
    second = tmp_path / "second.py"
    second.write_text(f"print(kept)\nfrom pptx.parts.image import Image\nImage.from_file({str(secret)!r})")

    def cli(path):
        done = subprocess.run([sys.executable, "-m", "demo.sandbox", "--folder", str(tmp_path / "run"), "--json",
                               str(path)], cwd=ROOT, capture_output=True, text=True, timeout=120)
        return done.returncode, json.loads(done.stdout.strip().splitlines()[-1])

    rc, got = cli(first)
    assert rc == 0 and got == {"ok": True, "output": "saved\n", "error": None, "confined": True, "outline": None,
                               "previews": [], "renderer": None,
                               "files": [str((tmp_path / "run" / "files" / "deck.pptx").resolve())]}
    rc, got = cli(second)
    assert rc == 1 and not got["ok"] and "`kept` is not defined" in got["error"]  # nothing persists
    second.write_text(f"from pptx.parts.image import Image\nImage.from_file({str(secret)!r})")
    rc, got = cli(second)
    assert rc == 1 and "No such file or directory" in got["error"] and "TOPSECRET" not in json.dumps(got)


def test_cli_bad_file_is_a_clear_error(tmp_path):
    done = subprocess.run([sys.executable, "-m", "demo.sandbox", "--folder", str(tmp_path), str(tmp_path / "no.py")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "cannot read" in done.stderr
    assert os.listdir(tmp_path) == []


@needs_bwrap
def test_a_code_block_ends_with_the_runs_time_budget(tmp_path):
    ex = sandbox.SandboxExecutor(tmp_path / "run", IMPORTS)  # a 30 s step limit, but 2 s of budget left
    ex.send_tools({})
    ex.deadline = time.monotonic() + 2
    t0 = time.monotonic()
    try:
        with pytest.raises(InterpreterError, match="time limit"):
            ex("import time\ntime.sleep(20)")
        assert time.monotonic() - t0 < 5
        with pytest.raises(InterpreterError, match="budget is spent"):
            ex("print(1)")
    finally:
        ex.cleanup()
