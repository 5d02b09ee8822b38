"""Reading PDFs and .docx back in tests: poppler's pdftotext, pdftoppm and pdfimages, and
python-docx. Tests that use these skip when poppler-utils is absent (``POPPLER_MISSING``)."""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import numpy as np
from matplotlib.image import imread

POPPLER = ("pdfinfo", "pdftotext", "pdftoppm", "pdfimages")
POPPLER_MISSING = any(shutil.which(t) is None for t in POPPLER)
POPPLER_REASON = "needs poppler-utils (pdfinfo, pdftotext, pdftoppm, pdfimages): make deps"


def _run(*args: str) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


def _file(pdf: bytes, tmp: Path, name: str) -> Path:
    f = tmp / f"{name}.pdf"
    f.write_bytes(pdf)
    return f


def pdf_text(pdf: bytes, tmp: Path, name: str = "doc") -> str:
    """The text of every page (pdftotext -layout), whitespace runs made one space."""
    return " ".join(_run("pdftotext", "-layout", str(_file(pdf, tmp, name)), "-").split())


def pdf_page_count(pdf: bytes, tmp: Path, name: str = "doc") -> int:
    info = _run("pdfinfo", str(_file(pdf, tmp, name)))
    return int(next(ln.split()[-1] for ln in info.splitlines() if ln.startswith("Pages:")))


def pdf_pages(pdf: bytes, tmp: Path, dpi: int = 50, name: str = "doc") -> list[np.ndarray]:
    """Every page as an RGB array (pdftoppm)."""
    f = _file(pdf, tmp, name)
    _run("pdftoppm", "-r", str(dpi), "-png", str(f), str(tmp / f"{name}-page"))
    return [imread(p)[..., :3] for p in sorted(tmp.glob(f"{name}-page-*.png"))]


def raster_images(pdf: bytes, tmp: Path, name: str = "doc") -> list[list[str]]:
    """The rows of ``pdfimages -list``: one per raster image in the PDF."""
    out = _run("pdfimages", "-list", str(_file(pdf, tmp, name)))
    return [r.split() for r in out.splitlines()[2:] if r.strip()]


def has_colour(img: np.ndarray, hex_colour: str, tol: float = 0.04) -> bool:
    rgb = np.array([int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)])
    return bool((np.abs(img[..., :3] - rgb).max(axis=-1) < tol).any())


def docx_parts(body: bytes) -> dict:
    """{headings: [text], tables: [[header cells]], pictures: n, text: all paragraphs} of a
    .docx read with python-docx."""
    from docx import Document

    doc = Document(io.BytesIO(body))
    heads = [p.text for p in doc.paragraphs if p.style.name.startswith(("Heading", "Title"))]
    return {
        "headings": heads,
        "tables": [[c.text for c in t.rows[0].cells] for t in doc.tables],
        "pictures": len(doc.inline_shapes),
        "text": "\n".join(p.text for p in doc.paragraphs),
        "footer": "".join(p._p.xml for p in doc.sections[0].footer.paragraphs),
    }
