"""出图: GET /api/print against a live server on the analysed sample city. The PDF is read back
with poppler (pdfinfo, pdftotext, pdftoppm, pdfimages): its page size, its 图名 / 图例 / 比例尺 /
指北针 / 制图单位 / 制图日期 text, a map that is not blank and is drawn as vectors; bad requests
are 400 with the reason; 亩均税收 colours need an analyst token; nothing is written."""

from __future__ import annotations

import shutil
import subprocess
from datetime import date
from pathlib import Path

import httpx
import numpy as np
import pytest
from matplotlib.image import imread
from sqlalchemy import text

from gis.core import vocabulary
from gis.core.rules import get_rules
from gis.map import print_map as pm
from tests.conftest import bearer, served_copy, snapshot

POPPLER = ("pdfinfo", "pdftotext", "pdftoppm", "pdfimages")
pytestmark = pytest.mark.skipif(
    any(shutil.which(t) is None for t in POPPLER),
    reason="needs poppler-utils (pdfinfo, pdftotext, pdftoppm, pdfimages): make deps",
)
MM_PER_PT = 25.4 / 72


@pytest.fixture(scope="module")
def city(analysed_sample, tmp_path_factory):
    with served_copy(
        analysed_sample,
        "print",
        tmp_path_factory.mktemp("print"),
        {"analyst": ("analyst", "分析", None), "viewer": ("viewer", "看图", None)},
    ) as served:
        yield served


def view_bbox(eng) -> str:
    """The lon/lat bbox (EPSG:4490) of the platforms' middle part: a view with parcels."""
    with eng.connect() as c:
        x0, y0, x1, y1 = c.execute(
            text(
                "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM (SELECT "
                "ST_Extent(ST_Transform(geom, 4490)) e FROM platforms) s"
            )
        ).one()
    w, h = x1 - x0, y1 - y0
    return f"{x0 + 0.3 * w:.5f},{y0 + 0.3 * h:.5f},{x1 - 0.3 * w:.5f},{y1 - 0.3 * h:.5f}"


def pdf_facts(pdf: bytes, tmp: Path, name: str) -> tuple[str, str, np.ndarray, str]:
    """(pdfinfo, pdftotext, page 1 at 50 dpi as an RGB array, pdfimages -list) of ``pdf``."""
    f = tmp / f"{name}.pdf"
    f.write_bytes(pdf)

    def run(*args: str) -> str:
        return subprocess.run(args, check=True, capture_output=True, text=True).stdout

    info = run("pdfinfo", str(f))
    txt = run("pdftotext", "-layout", str(f), "-")
    run("pdftoppm", "-r", "50", "-png", "-f", "1", "-l", "1", str(f), str(tmp / name))
    img = imread(next(tmp.glob(f"{name}-*1.png")))[..., :3]
    images = run("pdfimages", "-list", str(f))
    return info, txt, img, images


def page_mm(info: str) -> tuple[float, float]:
    line = next(v for v in info.splitlines() if v.startswith("Page size:"))
    w, h = line.split(":", 1)[1].split("pts")[0].split("x")
    return float(w) * MM_PER_PT, float(h) * MM_PER_PT


def raster_images(listing: str) -> list[list[str]]:
    """The rows of ``pdfimages -list`` (one per embedded raster image)."""
    return [r.split() for r in listing.splitlines()[2:] if r.strip()]


@pytest.mark.parametrize(
    ("size", "orientation", "expect_mm"),
    [("A4", "portrait", (210, 297)), ("A3", "landscape", (420, 297))],
)
def test_print_pdf_page(city, tmp_path, size, orientation, expect_mm):
    base, eng, toks = city
    before = snapshot(eng)
    # every layer on the smaller page (the longest legend still fits the one page)
    layers = ",".join(pm.PRINT_LAYERS) if size == "A4" else "districts,platforms,parcels"
    with httpx.Client(base_url=base, timeout=120) as h:
        r = h.get(
            "/api/print",
            params={
                "bbox": view_bbox(eng),
                "layers": layers,
                "size": size,
                "orientation": orientation,
                "title": "工业用地测试图",
            },
        )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/pdf"
    info, txt, img, images = pdf_facts(r.content, tmp_path, f"{size}{orientation}")
    assert "Pages:           1" in info
    w, h = page_mm(info)
    assert abs(w - expect_mm[0]) < 1 and abs(h - expect_mm[1]) < 1, (w, h)
    flat = " ".join(txt.split())
    assert "工业用地测试图" in flat  # 图名
    assert "图例" in flat  # the legend with the page's labels
    for lab in ("主城区", "现状工业用地(实际用途)", vocabulary.label("actual_use", "工业")):
        assert lab in flat, lab
    assert "比例尺" in flat and "1:" in flat and ("千米" in flat or " 米" in flat)
    assert "指北针" in flat and "北" in flat
    assert f"制图单位: {get_rules().publication.publisher}" in flat.replace(" ", "") or (
        "制图单位" in flat and get_rules().publication.publisher[:6] in flat
    )
    assert f"制图日期: {date.today():%Y年%m月%d日}" in flat
    # the map frame (below the title, above the legend) is drawn: many non-white pixels, and
    # the parcels' 工业 colour among them
    hh, ww = img.shape[:2]
    frame = img[int(0.08 * hh) : int(0.6 * hh), int(0.1 * ww) : int(0.9 * ww)]
    non_white = (frame.min(axis=-1) < 0.95).mean()
    assert non_white > 0.3, non_white
    rgb = np.array(
        [int(vocabulary.colour("actual_use", "工业")[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    )
    blended = 0.75 * rgb + 0.25 * np.array(
        [int(vocabulary.colour("map", "district_main")[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    )
    near = np.abs(frame - blended).max(axis=-1) < 0.08
    assert near.sum() > 20, "no parcel drawn in 工业's colour"
    assert raster_images(images) == []  # vectors only: no raster image in the PDF
    assert snapshot(eng) == before  # printing wrote nothing


def test_print_refuses_bad_requests_with_the_reason(city):
    base, eng, toks = city
    good = view_bbox(eng)
    with httpx.Client(base_url=base, timeout=60) as h:
        for params, words in (
            ({"bbox": "1,2,3"}, "four numbers"),
            ({"bbox": "a,b,c,d"}, "not numbers"),
            ({"bbox": "120.4,30.1,120.0,30.4"}, "minlon < maxlon"),
            ({"bbox": "200,30,201,31"}, "±180"),
            ({"bbox": "100,20,120,30"}, "at most"),
            ({"bbox": good, "layers": "parcels,roads"}, "unknown layer 'roads'"),
            ({"bbox": good, "size": "A5"}, "size 'A5'"),
            ({"bbox": good, "orientation": "sideways"}, "orientation 'sideways'"),
            ({"bbox": good, "parcel_colour": "rainbow"}, "parcel_colour"),
        ):
            r = h.get("/api/print", params=params)
            assert r.status_code == 400, (params, r.text)
            assert r.headers["content-type"].startswith("application/")
            assert words in r.json()["detail"] or words in r.text, (words, r.text)
        r = h.get("/api/print")
        assert r.status_code == 400 and "bbox is required" in r.text


def test_tax_colours_need_an_analyst(city, tmp_path):
    base, eng, toks = city
    params = {"bbox": view_bbox(eng), "layers": "parcels", "parcel_colour": "tax"}
    with httpx.Client(base_url=base, timeout=120) as h:
        r = h.get("/api/print", params=params)
        assert r.status_code == 403 and "analyst" in r.text
        r = h.get("/api/print", params=params, headers=bearer(toks["viewer"]))
        assert r.status_code == 403
        r = h.get("/api/print", params=params, headers=bearer(toks["analyst"]))
    assert r.status_code == 200, r.text
    _, txt, _, _ = pdf_facts(r.content, tmp_path, "tax")
    flat = " ".join(txt.split())
    assert "现状工业用地(亩均税收)" in flat
    assert any(lab in flat for lab in vocabulary.labels("tax_band").values())


def test_scale_bar_lengths_are_round():
    assert pm.nice_length(3700) == 2000 and pm.nice_length(740) == 500
    assert pm.nice_length(10) == 10 and pm.nice_length(0.3) == 1
    assert pm.length_label(2000) == "2 千米" and pm.length_label(500) == "500 米"
    # a 100 km wide extent drawn 190 mm wide: 1:526,316 rounded to three figures
    ext = pm.fit_extent((0, 0, 100_000, 10_000), 190, 100)
    assert ext[2] - ext[0] == 100_000 and abs((ext[3] - ext[1]) - 100_000 * 100 / 190) < 1e-6
    assert pm.round_scale(pm.scale_of(ext, 190)) == "1:526,000"
