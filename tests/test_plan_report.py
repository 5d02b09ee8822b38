"""The plan report renders: HTML with embedded corridor maps, and a PDF that pdftoppm turns into
PNG pages with the maps drawn (function colours present). Also the sample city's plan for both
corridors, as ``make demo`` (``landlink analyse-all``) makes it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread
from sqlalchemy import text

from gis.platforms.layout_plan import create, default_request, plan_summary_line
from gis.platforms.plan_report import FUNCTION_COLORS, cjk_font, render
from tests.plan_helpers import token
from tests.test_layout_plan import plan_req, small_city

pytestmark = pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="needs poppler-utils")


def pdf_pages(pdf: bytes, tmp: Path, dpi: int = 50) -> list[np.ndarray]:
    (tmp / "plan.pdf").write_bytes(pdf)
    subprocess.run(
        ["pdftoppm", "-r", str(dpi), "-png", str(tmp / "plan.pdf"), str(tmp / "page")],
        check=True,
        capture_output=True,
    )
    return [imread(p) for p in sorted(tmp.glob("page-*.png"))]


def has_colour(img: np.ndarray, hex_colour: str, tol: float = 0.04) -> bool:
    rgb = np.array([int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)])
    return bool((np.abs(img[..., :3] - rgb).max(axis=-1) < tol).any())


def test_report_html_and_pdf(city_plan, tmp_path):
    engine, pid = city_plan
    html, media = render(engine, pid, "html", analyst=True)
    assert media.startswith("text/html")
    page = html.decode("utf-8")
    assert page.count("data:image/png;base64,") == 2  # one map per corridor
    assert "城东智造大走廊" in page and "城西科创大走廊" in page
    assert "亩均税收" in page and "Invariants" in page and "Assumptions" in page
    public, _ = render(engine, pid, "html", analyst=False)
    assert "tax per mu" not in public.decode("utf-8")
    pdf, media = render(engine, pid, "pdf", analyst=True)
    assert media == "application/pdf" and pdf.startswith(b"%PDF")
    pages = pdf_pages(pdf, tmp_path)
    assert len(pages) >= 5  # text, two maps, three allocation tables
    maps = pages[1:3]
    assert all(img.std() > 0.01 for img in pages)  # nothing blank
    assert any(has_colour(m, FUNCTION_COLORS["exit"]) for m in maps)
    assert any(has_colour(m, FUNCTION_COLORS["to_m0"]) for m in maps)
    assert cjk_font() is not None  # Chinese text renders (fonts-wqy-microhei)


def test_report_api(http, db, tmp_path):
    small_city(db)
    pid = create(db, plan_req(), user="test")["id"]
    r = http.get(f"/api/plans/{pid}/report", params={"format": "pdf"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    assert len(pdf_pages(r.content, tmp_path)) >= 5
    r = http.get(f"/api/plans/{pid}/report", headers=token(db, "analyst"))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
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
        assert len(pages) >= 5
        assert all(has_colour(p, FUNCTION_COLORS["keep_industrial"]) for p in pages[1:3])
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
