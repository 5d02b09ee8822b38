"""The plan report renders: HTML with a vector map per corridor, a PDF laid out by WeasyPrint
(page numbers, CJK text, maps drawn as vectors: no raster image, yet pdftoppm shows their
colours), and a .docx with the headings, tables and a map picture per corridor. Also the sample
city's plan for both corridors, as ``make demo`` (``landlink analyse-all``) makes it."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from gis.core import vocabulary
from gis.map.print_map import cjk_font
from gis.platforms.layout_plan import create, default_request, plan_summary_line
from gis.platforms.plan_report import FUNCTION_COLORS, render
from tests.pdf_helpers import (
    POPPLER_MISSING,
    POPPLER_REASON,
    docx_parts,
    has_colour,
    pdf_page_count,
    pdf_pages,
    pdf_text,
    raster_images,
)
from tests.plan_helpers import token
from tests.test_layout_plan import plan_req, small_city

pytestmark = pytest.mark.skipif(POPPLER_MISSING, reason=POPPLER_REASON)


def test_report_html_pdf_and_docx(city_plan, tmp_path):
    engine, pid = city_plan
    html, media = render(engine, pid, "html", analyst=True)
    assert media.startswith("text/html")
    page = html.decode("utf-8")
    assert page.count("data:image/svg+xml;base64,") == 2  # one vector map per corridor
    assert "城东智造大走廊" in page and "城西科创大走廊" in page
    assert "亩均税收" in page and "约束校验" in page and "假设与依据" in page
    assert "data:image/png" not in page
    public, _ = render(engine, pid, "html", analyst=False)
    assert "亩均税收(万元/亩)" not in public.decode("utf-8")
    pdf, media = render(engine, pid, "pdf", analyst=True)
    assert media == "application/pdf" and pdf.startswith(b"%PDF")
    n = pdf_page_count(pdf, tmp_path)
    assert n >= 3
    words = pdf_text(pdf, tmp_path)
    tight = words.replace(" ", "")
    assert f"第1页/共{n}页" in tight and f"第{n}页/共{n}页" in tight  # page numbers
    for cjk in ("用地布局规划报告", "假设与依据", "约束校验", "走廊规划图", "新增工业用地分配"):
        assert cjk in words, cjk
    assert "图例" in words and "比例尺 1:" in words and "北" in words  # legend, scale, arrow
    assert vocabulary.label("block_function", "exit") in words  # the legend's labels
    assert raster_images(pdf, tmp_path) == []  # maps are vectors
    pages = pdf_pages(pdf, tmp_path)
    assert all(img.std() > 0.01 for img in pages)  # nothing blank
    assert any(has_colour(p, FUNCTION_COLORS["exit"]) for p in pages)
    assert any(has_colour(p, FUNCTION_COLORS["to_m0"]) for p in pages)
    assert cjk_font() is not None  # Chinese text renders (fonts-wqy-microhei)
    body, media = render(engine, pid, "docx", analyst=True)
    assert media.endswith("wordprocessingml.document")
    d = docx_parts(body)
    for h in ("约束校验", "指标变化", "走廊规划图", "新增工业用地分配"):
        assert any(h in x for x in d["headings"]), (h, d["headings"])
    assert ["项目", "取值"] in d["tables"] and ["约束", "是否满足", "数值"] in d["tables"]
    assert d["pictures"] == 2  # a map per corridor
    assert "PAGE" in d["footer"]  # page numbers


def test_report_api(http, db, tmp_path):
    small_city(db)
    pid = create(db, plan_req(), user="test")["id"]
    r = http.get(f"/api/plans/{pid}/report", params={"format": "pdf"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    assert pdf_page_count(r.content, tmp_path) >= 3
    r = http.get(f"/api/plans/{pid}/report", headers=token(db, "analyst"))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    r = http.get(f"/api/plans/{pid}/report", params={"format": "docx"})
    assert r.status_code == 200 and r.headers["content-type"].endswith("wordprocessingml.document")
    assert "attachment" in r.headers["content-disposition"]
    assert docx_parts(r.content)["pictures"] == 2
    assert http.get(f"/api/plans/{pid}/report", params={"format": "doc"}).status_code == 422
    assert http.get("/api/plans/999999/report").status_code == 404


@pytest.fixture
def city_plan(db):
    small_city(db)
    return db, create(db, plan_req(), user="test")["id"]


def test_sample_city_plan_for_both_corridors(sample_engine, tmp_path):
    """What `make demo` makes: the sample plan for both corridors; its report renders. The plan
    is deleted afterwards (the sample database is shared read-only by other tests)."""
    # as analyse-all does, but without its three-lands run (the sample database is shared)
    pid = create(sample_engine, default_request(sample_engine), user="test")["id"]
    try:
        with sample_engine.connect() as c:
            inv = c.execute(text("SELECT invariants FROM plans WHERE id = :i"), {"i": pid}).one()[0]
            corr = (
                c.execute(
                    text("SELECT DISTINCT corridor_code FROM plan_blocks WHERE plan_id = :i"),
                    {"i": pid},
                )
                .scalars()
                .all()
            )
        assert all(v["holds"] for v in inv.values())
        assert sorted(corr) == ["CDZZ", "CXKC"]
        pdf, _ = render(sample_engine, pid, "pdf", analyst=True)
        pages = pdf_pages(pdf, tmp_path, dpi=40)
        assert len(pages) >= 3
        assert sum(has_colour(p, FUNCTION_COLORS["keep_industrial"]) for p in pages) >= 2
        assert raster_images(pdf, tmp_path) == []
    finally:
        with sample_engine.begin() as c:
            c.execute(text("DELETE FROM plans WHERE id = :i"), {"i": pid})
            c.execute(
                text("DELETE FROM tile_invalidations WHERE source = :s"), {"s": f"plan:{pid}"}
            )


def test_analyse_all_step_makes_a_three_lands_run_first(db):
    small_city(db)
    line = plan_summary_line(db)
    assert line.startswith("plan 1 (sample-both-corridors v1)"), line
    with db.connect() as c:
        runs = c.execute(text("SELECT count(*) FROM detection_runs")).scalar_one()
        run_id = c.execute(text("SELECT detection_run_id FROM plans")).scalar_one()
    assert runs == 1 and run_id is not None
    plan_summary_line(db)  # a second plan uses the same run
    with db.connect() as c:
        assert c.execute(text("SELECT count(*) FROM detection_runs")).scalar_one() == 1
