"""Word (.docx) output of the reports (python-docx), for bureaus that edit them in WPS or Word.

A4 portrait, a CJK font for East Asian text (the first of ``print_map.CJK_FONTS``, which WPS and
Word substitute with their own when it is not installed), 第 N 页 in the footer (a PAGE field),
tables in the "Table Grid" style with a header row repeated on each page, and pictures sized in
mm with a caption under them.
"""

from __future__ import annotations

import io

from docx import Document
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from docx.shared import Mm, Pt

from gis.map.print_map import CJK_FONTS


def _east_asian(style_or_run, font: str) -> None:
    rpr = style_or_run.element.get_or_add_rPr()
    fonts = rpr.find(qn("w:rFonts"))
    if fonts is None:
        fonts = OxmlElement("w:rFonts")
        rpr.append(fonts)
    fonts.set(qn("w:eastAsia"), font)


def _field(paragraph, instr: str) -> None:
    """A Word field (``PAGE``, ``NUMPAGES``) in ``paragraph``, updated when the file opens."""
    run = paragraph.add_run()
    for kind, text in (("begin", None), (None, instr), ("separate", None), ("end", None)):
        if kind:
            el = OxmlElement("w:fldChar")
            el.set(qn("w:fldCharType"), kind)
        else:
            el = OxmlElement("w:instrText")
            el.set(qn("xml:space"), "preserve")
            el.text = text
        run._r.append(el)
        if kind == "separate":
            t = OxmlElement("w:t")
            t.text = "1"
            run._r.append(t)


def new_document(title: str):
    """An empty A4 document titled ``title`` (core properties) with page numbers."""
    doc = Document()
    sec = doc.sections[0]
    sec.page_width, sec.page_height = Mm(210), Mm(297)
    sec.left_margin = sec.right_margin = Mm(15)
    sec.top_margin, sec.bottom_margin = Mm(15), Mm(18)
    for name in ("Normal", "Title", "Heading 1", "Heading 2", "Caption"):
        try:
            _east_asian(doc.styles[name], CJK_FONTS[0])
        except KeyError:
            continue
    doc.styles["Normal"].font.size = Pt(10.5)
    doc.core_properties.title = title
    doc.core_properties.author = "landlink"
    p = sec.footer.paragraphs[0]
    p.alignment = WD_ALIGN_PARAGRAPH.CENTER
    p.add_run("第 ")
    _field(p, "PAGE")
    p.add_run(" 页 / 共 ")
    _field(p, "NUMPAGES")
    p.add_run(" 页")
    return doc


def paragraph(doc, text: str, small: bool = False) -> None:
    run = doc.add_paragraph().add_run(text)
    if small:
        run.font.size = Pt(9)


def table(doc, head: list[str], rows: list[list[str]]) -> None:
    """A table with ``head`` as its header row (repeated on each page) and ``rows``."""
    t = doc.add_table(rows=1, cols=len(head))
    t.style = "Table Grid"
    for cell, h in zip(t.rows[0].cells, head, strict=True):
        cell.text = str(h)
        for r in cell.paragraphs[0].runs:
            r.font.bold = True
            r.font.size = Pt(8.5)
    trpr = t.rows[0]._tr.get_or_add_trPr()
    hdr = OxmlElement("w:tblHeader")
    hdr.set(qn("w:val"), "true")
    trpr.append(hdr)
    for row in rows:
        cells = t.add_row().cells
        for cell, v in zip(cells, row, strict=True):
            cell.text = str(v)
            for r in cell.paragraphs[0].runs:
                r.font.size = Pt(8.5)
    doc.add_paragraph()


def picture(doc, png: bytes, width_mm: float, caption: str | None = None) -> None:
    """A picture ``width_mm`` wide, centred, with its caption under it."""
    doc.add_picture(io.BytesIO(png), width=Mm(width_mm))
    doc.paragraphs[-1].alignment = WD_ALIGN_PARAGRAPH.CENTER
    if caption:
        p = doc.add_paragraph(caption)
        p.alignment = WD_ALIGN_PARAGRAPH.CENTER


def to_bytes(doc) -> bytes:
    buf = io.BytesIO()
    doc.save(buf)
    return buf.getvalue()
