"""The confined side of demo.agent.slides: everything that parses or draws a model-written deck.

Runs inside the jail as a plain script (`python -I deck_tool.py outline|render`), a copy of the deck given in,
no network, nothing of the host but the system and Python folders: python-pptx reads it, LibreOffice and
pdftoppm draw it. It imports only the standard library, python-pptx and Pillow (the project is not visible).
Usage: deck_tool.py outline|render|render-simple MEMORY_BYTES CPU_SECONDS DECK. It sets those limits first,
then prints one JSON object on stdout:
  outline -> {"slides": [[title, [line, ...]], ...]}
  render  -> {"renderer": str, "pngs": [base64 PNG, ...]}   (LibreOffice, else a simple title-and-bullets drawing)
"""
import base64
import io
import json
import os
import resource
import shutil
import subprocess
import sys

WIDTH = 1280  # preview width in pixels: a slide's text stays readable on a booth screen
MAX_SLIDES = 100
MAX_TEXT = 2000  # characters of one title or line
MAX_LINES = 60  # lines of one slide
INSTALL_HINT = "apt-get install libreoffice-impress poppler-utils"


def _limits(memory: int, cpu: int) -> None:
    for name, soft, hard in (("RLIMIT_AS", memory, memory), ("RLIMIT_CPU", cpu, cpu + 1),
                             ("RLIMIT_FSIZE", 256 << 20, 256 << 20), ("RLIMIT_CORE", 0, 0),
                             ("RLIMIT_NPROC", 64, 64)):
        resource.setrlimit(getattr(resource, name), (soft, hard))


def open_deck(path: str):
    from pptx import Presentation

    return Presentation(path)


def outline(prs) -> list:
    """(title, bullet lines) for each slide."""
    out = []
    for slide in list(prs.slides)[:MAX_SLIDES]:
        title = slide.shapes.title.text if slide.shapes.title is not None else ""
        lines = []
        for shape in slide.shapes:
            if shape == slide.shapes.title or not shape.has_text_frame:
                continue
            lines += [p.text[:MAX_TEXT] for p in shape.text_frame.paragraphs if p.text.strip()]
        out.append([title[:MAX_TEXT], lines[:MAX_LINES]])
    return out


def slide_size(prs) -> tuple:
    w, h = prs.slide_width or 9144000, prs.slide_height or 6858000
    return WIDTH, max(1, min(4 * WIDTH, round(WIDTH * h / w)))


# ---------------------------------------------------------------- the simple renderer

def _font(size: int):
    from PIL import ImageFont

    for name in ("DejaVuSans.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"):
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            continue
    return ImageFont.load_default(size=size)


def _wrap(draw, text: str, font, width: int) -> list:
    words, lines, line = text.split(), [], ""
    for w in words:
        trial = f"{line} {w}".strip()
        if draw.textlength(trial, font=font) <= width or not line:
            line = trial
        else:
            lines.append(line)
            line = w
    return lines + ([line] if line else [])


def _layout(draw, title: str, lines: list, size: tuple, scale: float):
    """(x, y, text, font, colour) for every line at this text scale, and whether it all fits on the slide."""
    w, h = size
    margin = round(w * 0.05)
    title_font, body_font = _font(round(w * 0.048 * scale)), _font(round(w * 0.031 * scale))
    placed, y = [], margin
    for line in _wrap(draw, title or "(untitled)", title_font, w - 2 * margin):
        placed.append((margin, y, line, title_font, "#111827"))
        y += round(title_font.size * 1.25)
    y += round(body_font.size * 0.8)
    for bullet in lines:
        for j, line in enumerate(_wrap(draw, bullet, body_font, w - 3 * margin)):
            placed.append((round(margin * 1.5), y, ("• " if j == 0 else "   ") + line, body_font, "#374151"))
            y += round(body_font.size * 1.4)
        y += round(body_font.size * 0.3)
    return placed, y <= h - margin


def render_simple(path: str) -> list:
    """Each slide's title and bullets on a plain background (no layout fidelity); the text shrinks until the
    whole slide fits, so nothing is cut. PNG bytes per slide."""
    from PIL import Image, ImageDraw

    prs = open_deck(path)  # read once: the deck is hostile, and parsing it is the costly part
    size = slide_size(prs)
    pngs = []
    for i, (title, lines) in enumerate(outline(prs), 1):
        img = Image.new("RGB", size, "white")
        d = ImageDraw.Draw(img)
        d.rectangle([0, 0, size[0], round(size[1] * 0.015)], fill="#1d4ed8")
        scale = 1.0
        placed, fits = _layout(d, title, lines, size, scale)
        while not fits and scale > 0.4:
            scale -= 0.1
            placed, fits = _layout(d, title, lines, size, scale)
        for x, y, text, font, colour in placed:
            d.text((x, y), text, fill=colour, font=font)
        small = _font(round(size[0] * 0.02))
        d.text((size[0] - round(size[0] * 0.06), size[1] - round(size[0] * 0.04)), str(i), fill="#9ca3af", font=small)
        buf = io.BytesIO()
        img.save(buf, "PNG")
        pngs.append(buf.getvalue())
    return pngs


# ---------------------------------------------------------------- LibreOffice

def libreoffice():
    return shutil.which("soffice") or shutil.which("libreoffice")


def render_libreoffice(path: str) -> list:
    """LibreOffice converts the deck to PDF, pdftoppm draws each page WIDTH pixels wide. Its own profile, so
    nothing of another LibreOffice is shared."""
    out = "/tmp/render"
    os.makedirs(out, exist_ok=True)
    subprocess.run([libreoffice(), "-env:UserInstallation=file:///tmp/profile", "--headless", "--norestore",
                    "--convert-to", "pdf", "--outdir", out, path], check=True, capture_output=True, timeout=150)
    pdf = os.path.join(out, os.path.splitext(os.path.basename(path))[0] + ".pdf")
    if not os.path.exists(pdf):
        raise OSError("LibreOffice wrote no PDF")
    subprocess.run(["pdftoppm", "-png", "-l", str(MAX_SLIDES), "-scale-to-x", str(WIDTH), "-scale-to-y", "-1", pdf,
                    os.path.join(out, "slide")], check=True, capture_output=True, timeout=60)
    pages = sorted((f for f in os.listdir(out) if f.startswith("slide-") and f.endswith(".png")),
                   key=lambda f: int(f[6:-4]))
    result = []
    for f in pages:
        with open(os.path.join(out, f), "rb") as fh:
            result.append(fh.read())
    return result


def render(path: str, simple: bool = False) -> dict:
    if simple:
        return {"renderer": "simple renderer", "pngs": render_simple(path)}
    if libreoffice() and shutil.which("pdftoppm"):
        try:
            return {"renderer": "LibreOffice", "pngs": render_libreoffice(path)}
        except (subprocess.SubprocessError, OSError) as exc:
            why = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
            return {"renderer": f"simple renderer (LibreOffice failed: {why})", "pngs": render_simple(path)}
    return {"renderer": f"simple renderer (titles and bullets only; for real previews install LibreOffice: "
                        f"{INSTALL_HINT})", "pngs": render_simple(path)}


def main() -> int:
    what, memory, cpu, deck = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    _limits(memory, cpu)
    if what == "outline":
        reply = {"slides": outline(open_deck(deck))}
    elif what in ("render", "render-simple"):
        got = render(deck, simple=what == "render-simple")
        reply = {"renderer": got["renderer"], "pngs": [base64.b64encode(p).decode() for p in got["pngs"]]}
    else:
        raise SystemExit(f"unknown command {what!r}")
    sys.stdout.write(json.dumps(reply))
    return 0


if __name__ == "__main__":
    sys.exit(main())
