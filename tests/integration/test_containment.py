"""The whole agent run contained (issue 22), attacked with real confined processes: arbitrary Python in the jail
(`python -m demo.sandbox --raw`, as if smolagents' layer were walked around), what it leaves in its run folder,
the deck reader and the renderer, and the per-run limits. Each attack is first shown to work where it matters:
unconfined LibreOffice does draw a linked host picture and does fetch a linked URL."""
from __future__ import annotations

import base64
import http.server
import json
import os
import subprocess
import sys
import sysconfig
import threading
import time
import zipfile
from pathlib import Path

import pytest

from demo.agent import jail, runfolder, slides
from demo.agent.sandbox import CodeLimits, SandboxExecutor

ROOT = Path(__file__).resolve().parents[2]
IMPORTS = ["pptx", "pptx.*"]
confined = pytest.mark.skipif(not jail.mechanism().confined, reason=f"no jail here: {jail.mechanism().detail}")
as_root = pytest.mark.skipif(not jail.is_root(), reason="the kernel-enforced folder and the uid drop need root")
HAS_LIBREOFFICE = bool(slides.libreoffice())
STEP = 30  # the step limit: a trap must not hold a command past it


def cli(folder: Path, code: str, *flags: str, python: str = sys.executable, timeout: float = STEP + 60):
    """python -m demo.sandbox --folder folder --json [flags] FILE.py; (exit status, JSON, seconds)."""
    src = folder.with_name(folder.name + ".py")
    src.write_text(code)
    t0 = time.monotonic()
    done = subprocess.run([python, "-m", "demo.sandbox", "--folder", str(folder), "--json", *flags, str(src)],
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert done.stdout.strip(), done.stderr
    return done.returncode, json.loads(done.stdout.strip().splitlines()[-1]), time.monotonic() - t0


TWO_SLIDES = """from pptx import Presentation
prs = Presentation()
for title, bullets in [("Why tests", ["They catch bugs", "They document"]), ("How", ["Small", "Real"])]:
    slide = prs.slides.add_slide(prs.slide_layouts[1])
    slide.shapes.title.text = title
    body = slide.placeholders[1].text_frame
    body.text = bullets[0]
    body.add_paragraph().text = bullets[1]
prs.save("deck.pptx")
print("saved")
"""


@confined
def test_venv_and_interpreter_under_tmp_are_confined_and_render(tmp_path):
    """The layout that failed open: bubblewrap's /tmp hid a venv (and an interpreter) under /tmp."""
    assert str(tmp_path).startswith("/tmp/")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--copies", "--without-pip", str(venv)], check=True)
    site = next((venv / "lib").glob("python3*/site-packages"))
    (site / "project.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")  # this venv's packages
    python = str(venv / "bin" / "python")
    check = subprocess.run([python, "-m", "demo.sandbox", "--check"], cwd=ROOT, capture_output=True, text=True,
                           timeout=120)
    assert check.returncode == 0 and "agent code here: confined" in check.stdout, check.stdout + check.stderr
    rc, got, _ = cli(tmp_path / "run", TWO_SLIDES, "--render", python=python)
    assert rc == 0 and got["confined"] is True and got["output"] == "saved\n", got
    assert got["outline"] == [["Why tests", ["They catch bugs", "They document"]], ["How", ["Small", "Real"]]]
    assert len(got["previews"]) == 2 and all(Path(p).stat().st_size > 2000 for p in got["previews"])
    assert got["files"] == [str((tmp_path / "run" / "files" / "deck.pptx").resolve())]


@confined
def test_raw_python_reads_no_host_file_and_is_not_host_root(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOPSECRET-4711")
    ex = SandboxExecutor(tmp_path / "run", IMPORTS)
    try:
        out = ex.run(f"import os\ntry:\n    print(open({str(secret)!r}).read())\nexcept OSError as e:\n"
                     f"    print('blocked', e.strerror)\nprint(open('/proc/self/uid_map').read().split())\n"
                     "open('mine.txt', 'w').write('x')\nprint(sorted(os.environ))", raw=True)
        owner = os.stat(ex.folder.work / "mine.txt").st_uid  # the host's view of the file the jail wrote
        # the jail's interpreter, seen from the host (the cgroup also holds the root-run launchers before it)
        pythons = [p for p in (ex.cgroup.pids() if ex.cgroup else [])
                   if Path(f"/proc/{p}/cmdline").read_bytes().split(b"\0")[0] == sys.executable.encode()]
        host_uids = {int(Path(f"/proc/{p}/status").read_text().split("Uid:")[1].split()[0]) for p in pythons}
    finally:
        ex.cleanup()
    assert "TOPSECRET" not in out.logs and "blocked No such file or directory" in out.logs
    uid_map = eval(out.logs.splitlines()[1])
    assert uid_map[1] != "0", uid_map
    assert owner != 0 and (owner == ex.folder.uid or not jail.is_root())
    if jail.is_root() and ex.cgroup is not None:
        assert host_uids == {ex.folder.uid}, host_uids


TRAPS = """import os
os.symlink({secret!r}, "deck.pptx")                 # the newest deck, a link to a host file
os.mkfifo("later.pptx")                               # a FIFO named like a deck
os.makedirs("preview")
os.symlink({victim!r}, "preview/slide-01.png")        # where previews were once written
os.symlink({outside!r}, "previews")                   # a folder link
open("notes.txt", "w").write("a regular file")
print("set")
"""


@confined
def test_symlinks_and_fifos_in_the_run_folder_are_neither_followed_nor_hang(tmp_path):
    secret, victim, outside = tmp_path / "secret.txt", tmp_path / "victim.png", tmp_path / "outside"
    secret.write_text("TOPSECRET-4711")
    victim.write_bytes(b"host file")
    outside.mkdir()
    code = TRAPS.format(secret=str(secret), victim=str(victim), outside=str(outside))
    rc, got, seconds = cli(tmp_path / "run", code, "--raw", "--render")
    assert seconds < STEP and got["output"] == "set\n", got
    assert got["files"] == [str((tmp_path / "run" / "files" / "notes.txt").resolve())]  # regular files only
    assert got["outline"] is None and got["previews"] == []  # no deck: a link and a FIFO are not decks
    assert victim.read_bytes() == b"host file" and list(outside.iterdir()) == []
    assert "TOPSECRET" not in json.dumps(got)
    # the agent's shape check on the same folder: it sees no deck, at once
    from demo.agent import run as agent

    ex = SandboxExecutor(tmp_path / "run2", IMPORTS)
    try:
        ex.run(code, raw=True)
        check = agent.deck_check(tmp_path / "run2")
        t0 = time.monotonic()
        with pytest.raises(ValueError, match="no .pptx was saved"):
            check("done", None)
        assert time.monotonic() - t0 < 5
    finally:
        ex.cleanup()


def linked_deck(path: Path, urls: list[str], picture: Path) -> Path:
    """A deck whose pictures are links (TargetMode="External"), as model code can write one."""
    from pptx import Presentation
    from pptx.opc.constants import RELATIONSHIP_TYPE as RT
    from pptx.oxml.ns import qn
    from pptx.util import Inches

    prs = Presentation()
    slide = prs.slides.add_slide(prs.slide_layouts[6])
    for i, url in enumerate(urls):
        pic = slide.shapes.add_picture(str(picture), Inches(1 + 4 * i), Inches(1), Inches(3), Inches(3))
        rid = slide.part.relate_to(url, RT.IMAGE, is_external=True)
        blip = pic._element.blipFill.find(qn("a:blip"))
        del blip.attrib[qn("r:embed")]
        blip.set(qn("r:link"), rid)
    prs.save(path)
    return path


def red_pixels(png: Path) -> int:
    from PIL import Image

    img = Image.open(png).convert("RGB")
    return sum(1 for r, g, b in img.get_flattened_data() if r > 200 and g < 60 and b < 60)


@confined
@pytest.mark.skipif(not HAS_LIBREOFFICE, reason=f"LibreOffice missing: {slides.INSTALL_HINT}")
def test_external_link_pictures_are_neither_read_nor_fetched(tmp_path):
    from PIL import Image

    red, white = tmp_path / "red.png", tmp_path / "white.png"
    Image.new("RGB", (64, 64), (255, 0, 0)).save(red)
    Image.new("RGB", (64, 64), (255, 255, 255)).save(white)
    hits = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.end_headers()
            self.wfile.write(red.read_bytes())

        def do_OPTIONS(self):
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        deck = linked_deck(tmp_path / "linked.pptx", [red.as_uri(), f"http://127.0.0.1:{server.server_port}/x.png"],
                           white)
        # the attack works where nothing confines LibreOffice: it draws the host file and fetches the URL
        subprocess.run([slides.libreoffice(), f"-env:UserInstallation={(tmp_path / 'profile').as_uri()}",
                        "--headless", "--convert-to", "pdf", "--outdir", str(tmp_path / "bare"), str(deck)],
                       check=True, capture_output=True, timeout=180)
        subprocess.run(["pdftoppm", "-png", "-r", "30", str(tmp_path / "bare" / "linked.pdf"),
                        str(tmp_path / "bare" / "p")], check=True, timeout=60)
        assert red_pixels(tmp_path / "bare" / "p-1.png") > 1000 and hits, "unconfined LibreOffice no longer follows links"
        hits.clear()
        code = (f"import base64\nopen('deck.pptx', 'wb').write(base64.b64decode({base64.b64encode(deck.read_bytes())!r}))"
                "\nprint('written')")
        rc, got, _ = cli(tmp_path / "run", code, "--raw", "--render")
    finally:
        server.shutdown()
    assert rc == 0 and got["renderer"] == "LibreOffice" and len(got["previews"]) == 1, got
    assert red_pixels(Path(got["previews"][0])) == 0  # the host picture was not drawn...
    assert hits == []  # ...and the URL was not fetched


@confined
def test_a_fork_loop_is_capped_at_64_processes(tmp_path):
    code = ("import os, time\nn = 0\nfor i in range(300):\n    try:\n        pid = os.fork()\n"
            "    except OSError as e:\n        print('refused:', e.strerror)\n        break\n"
            "    if pid == 0:\n        time.sleep(20)\n        os._exit(0)\n    n += 1\nprint('forked', n)")
    rc, got, seconds = cli(tmp_path / "run", code, "--raw")
    forked = int(got["output"].split("forked ")[1].split()[0])
    assert "refused: Resource temporarily unavailable" in got["output"] and forked < runfolder.RUN_PROCESSES, got
    assert seconds < STEP + 30


@confined
@as_root
def test_the_folder_is_capped_by_the_file_system_in_bytes_and_files(tmp_path):
    fill = ("written = 0\ntry:\n    for i in range(400):\n        with open(f'part{i}.bin', 'wb') as f:\n"
            "            f.write(b'x' * (1 << 20))\n        written += 1\nexcept OSError as e:\n    print(e.strerror)\n"
            "print('MiB', written)")
    rc, got, seconds = cli(tmp_path / "big", fill, "--raw")
    assert "No space left on device" in got["output"], got["output"]
    total = sum(Path(p).stat().st_size for p in got["files"])
    assert total <= runfolder.FOLDER_BYTES and seconds < STEP + 30
    many = ("n = 0\ntry:\n    for i in range(100000):\n        open(f'f{i}', 'w').close()\n        n += 1\n"
            "except OSError as e:\n    print(e.strerror)\nprint('files', n)")
    rc, got, _ = cli(tmp_path / "many", many, "--raw")
    assert "No space left on device" in got["output"]
    assert int(got["output"].split("files ")[1]) < runfolder.FOLDER_FILES
    assert len(got["files"]) <= runfolder.COPY_FILES


@confined
def test_memory_is_capped_across_all_of_a_runs_processes(tmp_path):
    probe = jail.Cgroup.create("probe-memory", 8, 1 << 26)
    if probe is None:
        pytest.skip("no writable cgroup here: memory is capped per process only")
    probe.remove()
    ex = SandboxExecutor(tmp_path / "run", IMPORTS, CodeLimits(step_seconds=60))
    # three children of 450 MiB each: within each process's own limit, past the run's 1 GiB together
    code = ("import os, time\nkids = []\nfor i in range(3):\n    pid = os.fork()\n    if pid == 0:\n"
            "        b = bytearray(450 << 20)\n        for j in range(0, len(b), 4096):\n            b[j] = 1\n"
            "        time.sleep(3)\n        os._exit(0)\n    kids.append(pid)\n"
            "codes = [os.waitpid(p, 0)[1] for p in kids]\nprint('killed', sum(1 for c in codes if c != 0))")
    try:
        out = ex.run(code, raw=True)
    except Exception as exc:  # the OOM killer may take the parent too: the run's processes were capped either way
        out = None
        assert "killed" in str(exc) or "status" in str(exc), exc
    finally:
        ex.cleanup()
    if out is not None:
        assert int(out.logs.split("killed ")[1]) >= 1, out.logs


@confined
def test_a_zip_bomb_deck_is_refused_by_the_confined_reader_and_renderer(tmp_path):
    from pptx import Presentation

    plain = tmp_path / "plain.pptx"
    prs = Presentation()
    prs.slides.add_slide(prs.slide_layouts[0]).shapes.title.text = "Hi"
    prs.save(plain)
    bomb = tmp_path / "bomb.pptx"
    with zipfile.ZipFile(plain) as src, zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as out:
        for item in src.infolist():
            if item.filename != "ppt/slides/slide1.xml":
                out.writestr(item, src.read(item))
                continue
            with out.open(item.filename, "w", force_zip64=True) as f:  # 1.5 GB of spaces, ~1.5 MB packed
                xml = src.read(item)
                f.write(xml[:-len(b"</p:sld>")])
                for _ in range(96):
                    f.write(b" " * (16 << 20))
                f.write(b"</p:sld>")
    assert bomb.stat().st_size < 20 << 20
    t0 = time.monotonic()
    with pytest.raises(slides.DeckError, match="could not be read"):
        slides.slide_texts(bomb)
    with pytest.raises(slides.DeckError):
        slides.preview(bomb, tmp_path / "previews", simple=True)
    assert time.monotonic() - t0 < 60
    assert slides.slide_texts(plain) == [("Hi", [])]  # and the reader itself still works


@confined
def test_run_folders_go_after_their_ttl_and_past_the_disk_cap_mounts_included(tmp_path):
    base = tmp_path / "runs"
    folders = []
    for i, age in enumerate((7200, 600, 300, 60)):  # seconds old
        ex = SandboxExecutor(base / f"r{i}", IMPORTS)
        ex.run(f"open('data.bin', 'wb').write(b'x' * ({i + 1} << 20))", raw=True)
        if i == 3:  # still running: its tmpfs stays mounted
            live = ex
        else:
            ex.cleanup()
        os.utime(base / f"r{i}", (time.time() - age, time.time() - age))
        folders.append(base / f"r{i}")
    try:
        runfolder.sweep(base, ttl=3600, cap=3 << 20, keep={folders[1].resolve()})
        # r0 is past the TTL; r1 is kept; r2 (3 MiB) goes for the cap; r3 (4 MiB) is still running
        assert [f.exists() for f in folders] == [False, True, False, True]
        runfolder.sweep(base, ttl=30, cap=1 << 40)
        assert [f.exists() for f in folders] == [False, False, False, False]
        assert not os.path.ismount(folders[3] / "work")
    finally:
        live.cleanup()
