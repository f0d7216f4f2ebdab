""".pptx -> PNG previews, one whole slide per image at the deck's aspect ratio, in slide order: LibreOffice (to PDF)
+ pdftoppm when installed, else a simple title-and-bullets renderer."""
from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

WIDTH = 1280  # preview width in pixels: a slide's text stays readable on a booth screen
INSTALL_HINT = "apt-get install libreoffice-impress poppler-utils"
SIMPLE = f"simple renderer (titles and bullets only; for real previews install LibreOffice: {INSTALL_HINT})"


def slide_texts(pptx_path: Path) -> list[tuple[str, list[str]]]:
    """(title, bullet lines) for each slide."""
    from pptx import Presentation

    out = []
    for slide in Presentation(str(pptx_path)).slides:
        title = slide.shapes.title.text if slide.shapes.title is not None else ""
        lines = []
        for shape in slide.shapes:
            if shape == slide.shapes.title or not shape.has_text_frame:
                continue
            lines += [p.text for p in shape.text_frame.paragraphs if p.text.strip()]
        out.append((title, lines))
    return out


def slide_size(pptx_path: Path) -> tuple[int, int]:
    """The preview's (width, height) in pixels: WIDTH wide at the deck's aspect ratio."""
    from pptx import Presentation

    prs = Presentation(str(pptx_path))
    w, h = prs.slide_width or 9144000, prs.slide_height or 6858000
    return WIDTH, round(WIDTH * h / w)


def _wrap(draw, text: str, font, width: int) -> list[str]:
    words, lines, line = text.split(), [], ""
    for w in words:
        trial = f"{line} {w}".strip()
        if draw.textlength(trial, font=font) <= width or not line:
            line = trial
        else:
            lines.append(line)
            line = w
    return lines + ([line] if line else [])


def _font(size: int):
    from PIL import ImageFont

    for name in ("DejaVuSans.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"):
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            continue
    return ImageFont.load_default(size=size)


def _layout(draw, title: str, lines: list[str], size: tuple[int, int], scale: float):
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


def render_simple(pptx_path: Path, out_dir: Path) -> list[Path]:
    """Draw each slide's title and bullets on a plain background (no layout fidelity); the text shrinks until
    the whole slide fits, so nothing is cut."""
    from PIL import Image, ImageDraw

    out_dir.mkdir(parents=True, exist_ok=True)
    size = slide_size(pptx_path)
    paths = []
    for i, (title, lines) in enumerate(slide_texts(pptx_path), 1):
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
        path = out_dir / f"slide-{i:02d}.png"
        img.save(path)
        paths.append(path)
    return paths


def libreoffice() -> str | None:
    return shutil.which("soffice") or shutil.which("libreoffice")


def _page(path: Path) -> int:
    return int(re.findall(r"\d+", path.stem)[-1])


def render_libreoffice(pptx_path: Path, out_dir: Path) -> list[Path]:
    """LibreOffice converts the deck to PDF, pdftoppm draws each page WIDTH pixels wide."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        # its own profile, so a LibreOffice already running (a desktop, another preview) does not swallow the job
        profile = Path(tmp, "profile").as_uri()
        subprocess.run([libreoffice(), f"-env:UserInstallation={profile}", "--headless", "--convert-to", "pdf",
                        "--outdir", tmp, str(pptx_path)], check=True, capture_output=True, timeout=180)
        pdf = Path(tmp) / (pptx_path.stem + ".pdf")
        if not pdf.exists():
            raise OSError(f"LibreOffice wrote no PDF for {pptx_path.name}")
        subprocess.run(["pdftoppm", "-png", "-scale-to-x", str(WIDTH), "-scale-to-y", "-1", str(pdf),
                        str(out_dir / "slide")], check=True, capture_output=True, timeout=180)
    return sorted(out_dir.glob("slide-*.png"), key=_page)  # slide-1 .. slide-10 in slide order


def preview(pptx_path: Path, out_dir: Path) -> tuple[list[Path], str]:
    """PNG per slide, in slide order, and the name of the renderer used (with how to get LibreOffice when it
    is missing)."""
    if libreoffice() and shutil.which("pdftoppm"):
        try:
            return render_libreoffice(pptx_path, out_dir), "LibreOffice"
        except (subprocess.SubprocessError, OSError) as exc:
            for old in out_dir.glob("slide-*.png"):
                old.unlink()
            return render_simple(pptx_path, out_dir), f"simple renderer (LibreOffice failed: {str(exc)[:200]})"
    return render_simple(pptx_path, out_dir), SIMPLE
