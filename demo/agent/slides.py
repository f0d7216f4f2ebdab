"""Reading and drawing a deck the model wrote, never in the server: both run in the jail (demo/agent/jail.py)
through demo/agent/deck_tool.py. python-pptx meets a hostile zip there (zip and XML bombs), and LibreOffice and
pdftoppm meet external links to host files or URLs with no host files and no network. The server hands the jail
a copy of the deck and gets JSON back: the outline, or PNG bytes it checks and writes itself."""
from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

from demo.agent import jail, runfolder

TOOL = Path(__file__).with_name("deck_tool.py")
WIDTH = 1280  # deck_tool.WIDTH: preview width in pixels
INSTALL_HINT = "apt-get install libreoffice-impress poppler-utils"
SIMPLE = f"simple renderer (titles and bullets only; for real previews install LibreOffice: {INSTALL_HINT})"
PNG = b"\x89PNG\r\n\x1a\n"
# (address space, CPU seconds, wall seconds, bytes of output) per job; LibreOffice maps far more than it uses,
# so its real memory is capped by the cgroup
JOBS = {"outline": (1 << 30, 20, 30, 4 << 20), "render": (8 << 30, 150, 180, 64 << 20),
        "render-simple": (1 << 30, 60, 90, 64 << 20)}
TOOL_MEMORY = 1536 << 20  # all of one job's processes (cgroup)
TOOL_TMP = 512 << 20  # LibreOffice's profile, the PDF and the pages
READ_ONLY = ("/etc/fonts", "/etc/libreoffice")  # fontconfig and LibreOffice's registry, when installed


class DeckError(Exception):
    """The deck could not be read or drawn; the message is meant for the user (and the model)."""


def libreoffice() -> str | None:
    return shutil.which("soffice") or shutil.which("libreoffice")


def renderer_name() -> str:
    if libreoffice() and shutil.which("pdftoppm"):
        return f"LibreOffice ({libreoffice()}) + pdftoppm"
    return SIMPLE


def _open_deck(deck: Path) -> int:
    try:
        fd = os.open(deck, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise DeckError(f"cannot open the deck {Path(deck).name}: {exc.strerror}") from exc
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_size > runfolder.FILE_BYTES:
        os.close(fd)
        raise DeckError(f"{Path(deck).name} is not a regular file of at most {runfolder.FILE_BYTES >> 20} MiB")
    return fd


def _run(job: str, deck: Path, uid: int | None = None) -> dict:
    """Run one deck_tool job on a copy of `deck` in the jail; its JSON reply."""
    problem = jail.refusal(public=False)
    if problem:
        raise DeckError(problem)
    memory, cpu, wall, max_out = JOBS[job]
    confined = jail.mechanism().confined
    deck_fd = _open_deck(deck)
    fds = [deck_fd]
    group = None
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        try:
            if confined:
                tool_fd = os.open(TOOL, os.O_RDONLY | os.O_CLOEXEC)
                fds.append(tool_fd)
                spec = jail.Spec([sys.executable, "-I", "-B", "/tool/deck_tool.py", job, str(memory), str(cpu),
                                  "/in/deck.pptx"], data=[(tool_fd, "/tool/deck_tool.py"), (deck_fd, "/in/deck.pptx")],
                                 ro=[p for p in READ_ONLY if os.path.isdir(p)], tmp_bytes=TOOL_TMP, chdir="/tmp",
                                 env={"HOME": "/tmp"}, uid=uid if uid is not None else jail.run_uid(os.getpid() + 1))
                group = jail.Cgroup.create(f"deck-{os.getpid()}-{id(out)}", runfolder.RUN_PROCESSES, TOOL_MEMORY)
                cmd, env = jail.command(spec, group)
            else:  # --allow-unconfined on loopback, bubblewrap not installed
                cmd, env = [sys.executable, "-I", "-B", str(TOOL), job, str(memory), str(cpu), str(deck)], \
                    {"PATH": "/usr/bin:/bin", "HOME": tempfile.gettempdir(), "LANG": "C.UTF-8"}
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env,
                                    start_new_session=True, pass_fds=fds if confined else ())
            try:
                code = proc.wait(timeout=wall)
            except subprocess.TimeoutExpired:
                code = None
            finally:
                try:
                    os.killpg(proc.pid, 9)
                except (ProcessLookupError, PermissionError):
                    pass
                proc.wait()
        finally:
            for fd in fds:
                os.close(fd)
            if group is not None:
                group.remove()
        if code is None:
            raise DeckError(f"reading the deck took longer than {wall} s and was stopped")
        size = out.seek(0, os.SEEK_END)
        out.seek(0)
        if code != 0 or size > max_out:
            err.seek(0)
            tail = err.read(4000).decode("utf-8", "replace").strip().splitlines()
            why = tail[-1][:300] if tail else f"exit status {code}"
            if "MemoryError" in why or code in (-9, 137):
                why = "it needs more memory than a deck may (a zip or XML bomb?)"
            raise DeckError(f"the deck could not be read: {why}")
        try:
            return json.loads(out.read())
        except ValueError as exc:
            raise DeckError("the deck reader sent no valid reply") from exc


def _text(v) -> str:
    return v if isinstance(v, str) else ""


_outlines: dict[str, list] = {}  # deck SHA-256 -> outline: the shape check's copy and the final copy are one read
OUTLINES_KEPT = 64


def _digest(deck: Path) -> str:
    fd = _open_deck(deck)
    try:
        h = hashlib.sha256()
        while chunk := os.read(fd, 1 << 20):
            h.update(chunk)
        return h.hexdigest()
    finally:
        os.close(fd)


def slide_texts(deck: Path, uid: int | None = None) -> list[tuple[str, list[str]]]:
    """(title, bullet lines) for each slide, read in the jail (once per distinct deck)."""
    key = _digest(deck)
    if key in _outlines:
        return list(_outlines[key])
    got = _run("outline", deck, uid).get("slides")
    if not isinstance(got, list):
        raise DeckError("the deck reader sent no slides")
    out = []
    for item in got:
        title, lines = (item + [None, None])[:2] if isinstance(item, list) else ("", [])
        out.append((_text(title), [_text(x) for x in lines] if isinstance(lines, list) else []))
    if len(_outlines) >= OUTLINES_KEPT:
        _outlines.pop(next(iter(_outlines)))
    _outlines[key] = out
    return list(out)


def preview(deck: Path, out_dir: Path, simple: bool = False, uid: int | None = None) -> tuple[list[Path], str]:
    """PNG per slide in slide order, drawn in the jail and written by the server into out_dir (emptied first),
    and the name of the renderer used (with how to get LibreOffice when it is missing)."""
    real = not simple and libreoffice() is not None and shutil.which("pdftoppm") is not None
    got = _run("render" if real else "render-simple", deck, uid)
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("slide-*.png"):
        old.unlink()
    paths = []
    for i, b64 in enumerate(got.get("pngs") or [], 1):
        try:
            data = base64.b64decode(b64, validate=True) if isinstance(b64, str) else b""
        except ValueError:
            data = b""
        if not data.startswith(PNG):
            raise DeckError(f"the renderer sent slide {i} as something other than a PNG")
        path = out_dir / f"slide-{i:02d}.png"
        path.write_bytes(data)
        paths.append(path)
    if not real:
        return paths, "simple renderer" if simple else SIMPLE
    renderer = got.get("renderer") if isinstance(got.get("renderer"), str) else "unknown renderer"
    return paths, renderer[:300]
