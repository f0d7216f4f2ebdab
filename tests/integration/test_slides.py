"""Slide previews from real python-pptx decks, through both renderers (both in the jail, demo/agent/deck_tool.py):
whole slides at the deck's aspect ratio, in slide order, wide enough to read."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PIL import Image

from demo.agent import slides

HAS_LIBREOFFICE = bool(slides.libreoffice() and shutil.which("pdftoppm"))
needs_libreoffice = pytest.mark.skipif(not HAS_LIBREOFFICE, reason=f"LibreOffice missing: {slides.INSTALL_HINT}")


def make_deck(path: Path, n: int, widescreen: bool = False, bullets=None) -> Path:
    """n slides; slide i has i bullets (so later slides carry more ink), unless `bullets` says otherwise."""
    from pptx import Presentation
    from pptx.util import Inches

    prs = Presentation()
    if widescreen:
        prs.slide_width, prs.slide_height = Inches(13.333), Inches(7.5)
    for i in range(1, n + 1):
        slide = prs.slides.add_slide(prs.slide_layouts[1])
        slide.shapes.title.text = f"Slide {i}"
        body = slide.placeholders[1].text_frame
        lines = bullets or [f"Point {j} of slide {i}" for j in range(1, i + 1)]
        body.text = lines[0]
        for line in lines[1:]:
            body.add_paragraph().text = line
    prs.save(path)
    return path


def ink(path: Path, box=None) -> int:
    """Dark pixels in the image (or in box = (left, top, right, bottom))."""
    img = Image.open(path).convert("L")
    if box:
        img = img.crop(box)
    return sum(1 for v in img.tobytes() if v < 128)


def text_lines(path: Path, right: int) -> int:
    """Bands of rows holding dark pixels left of `right`: the lines of text drawn."""
    img = Image.open(path).convert("L")
    w, h = img.size
    data = img.tobytes()
    inked = [any(data[y * w + x] < 128 for x in range(right)) for y in range(h)]
    return sum(1 for y in range(1, h) if inked[y] and not inked[y - 1])


RENDERERS = [pytest.param(True, id="simple"), pytest.param(False, id="libreoffice", marks=needs_libreoffice)]


@pytest.mark.parametrize("simple", RENDERERS)
@pytest.mark.parametrize("widescreen, size", [(False, (1280, 960)), (True, (1280, 720))])
def test_whole_slides_at_the_decks_aspect_ratio_in_order(simple, widescreen, size, tmp_path):
    deck = make_deck(tmp_path / "deck.pptx", 4, widescreen)
    pngs, _ = slides.preview(deck, tmp_path / "png", simple=simple)
    assert len(pngs) == 4
    sizes = {Image.open(p).size for p in pngs}
    assert len(sizes) == 1 and abs(next(iter(sizes))[1] - size[1]) <= 2 and next(iter(sizes))[0] == size[0]
    amounts = [ink(p) for p in pngs]
    assert amounts == sorted(amounts) and amounts[0] < amounts[-1], amounts  # slide i has i bullets: in order


@needs_libreoffice
def test_libreoffice_keeps_slide_order_past_nine(tmp_path):
    deck = make_deck(tmp_path / "deck.pptx", 11)
    pngs, how = slides.preview(deck, tmp_path / "png")
    assert how == "LibreOffice" and [p.name for p in pngs] == [f"slide-{i:02d}.png" for i in range(1, 12)]
    amounts = [ink(p) for p in pngs]
    # slide i has i bullets (LibreOffice shrinks the text of the fullest two): pages 10 and 11 come last
    assert amounts[:9] == sorted(amounts[:9]) and min(amounts[9:]) > amounts[2], amounts


def test_simple_renderer_shrinks_a_full_slide_instead_of_cutting_it(tmp_path):
    long = [f"Bullet {i}: a long point that wraps over more than one line on a slide of this width" for i in range(14)]
    deck = make_deck(tmp_path / "deck.pptx", 1, bullets=long)
    (png,), _ = slides.preview(deck, tmp_path / "png", simple=True)
    w, h = Image.open(png).size
    # every bullet was drawn (the title and 14 bullets, some wrapped) and the bottom margin stayed empty (bar
    # the page number at the right)
    assert text_lines(png, round(w * 0.9)) >= 15
    assert ink(png, (0, h - round(w * 0.045), round(w * 0.9), h)) == 0


def test_preview_names_its_renderer_and_how_to_get_libreoffice(tmp_path, monkeypatch):
    deck = make_deck(tmp_path / "deck.pptx", 2)
    pngs, how = slides.preview(deck, tmp_path / "a")
    assert len(pngs) == 2
    assert how == ("LibreOffice" if HAS_LIBREOFFICE else slides.SIMPLE)
    monkeypatch.setattr(slides, "libreoffice", lambda: None)  # as on a machine without it
    pngs, how = slides.preview(deck, tmp_path / "b")
    assert len(pngs) == 2 and "apt-get install libreoffice-impress poppler-utils" in how
