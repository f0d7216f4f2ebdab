""".pptx -> PNG previews: LibreOffice (to PDF) + pdftoppm when installed, else a simple title-and-bullets renderer."""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

SIZE = (960, 540)


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


def render_simple(pptx_path: Path, out_dir: Path) -> list[Path]:
    """Draw each slide's title and bullets on a plain background (no layout fidelity)."""
    from PIL import Image, ImageDraw

    out_dir.mkdir(parents=True, exist_ok=True)
    title_font, body_font = _font(40), _font(24)
    paths = []
    for i, (title, lines) in enumerate(slide_texts(pptx_path), 1):
        img = Image.new("RGB", SIZE, "white")
        d = ImageDraw.Draw(img)
        d.rectangle([0, 0, SIZE[0], 8], fill="#1d4ed8")
        y = 40
        for line in _wrap(d, title or "(untitled)", title_font, SIZE[0] - 80):
            d.text((40, y), line, fill="#111827", font=title_font)
            y += 50
        y += 20
        for bullet in lines:
            for j, line in enumerate(_wrap(d, bullet, body_font, SIZE[0] - 120)):
                d.text((60, y), ("• " if j == 0 else "  ") + line, fill="#374151", font=body_font)
                y += 34
            if y > SIZE[1] - 40:
                break
        d.text((SIZE[0] - 70, SIZE[1] - 36), str(i), fill="#9ca3af", font=body_font)
        path = out_dir / f"slide-{i:02d}.png"
        img.save(path)
        paths.append(path)
    return paths


def libreoffice() -> str | None:
    return shutil.which("soffice") or shutil.which("libreoffice")


def render_libreoffice(pptx_path: Path, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([libreoffice(), "--headless", "--convert-to", "pdf", "--outdir", tmp, str(pptx_path)],
                       check=True, capture_output=True, timeout=180)
        pdf = Path(tmp) / (pptx_path.stem + ".pdf")
        subprocess.run(["pdftoppm", "-png", "-r", "50", str(pdf), str(out_dir / "slide")], check=True,
                       capture_output=True, timeout=180)
    return sorted(out_dir.glob("slide*.png"))


def preview(pptx_path: Path, out_dir: Path) -> tuple[list[Path], str]:
    """PNG per slide and the name of the renderer used."""
    if libreoffice() and shutil.which("pdftoppm"):
        try:
            return render_libreoffice(pptx_path, out_dir), "LibreOffice"
        except (subprocess.SubprocessError, OSError):
            pass  # fall back to the simple renderer below
    return render_simple(pptx_path, out_dir), "simple renderer (titles and bullets; install LibreOffice for full fidelity)"
