"""The report sheets (报表) on the analysed sample city, served: each XLSX read back with openpyxl
and its cells compared with the API's JSON answering the same question (grouped here by hand),
its 合计 with the sum of its rows; the PDF turned into images by pdftoppm and its text read by
pdftotext; restricted figures only with an analyst token."""

from __future__ import annotations

import io
import shutil
import subprocess
from collections import Counter, defaultdict
from datetime import date

import httpx
import openpyxl
import pytest

from gis.core import vocabulary
from gis.core.rules import get_rules
from tests.conftest import bearer

NAMES = [
    "unsupplied-by-year",
    "idle-disposal",
    "low-efficiency-by-reason",
    "abcd-summary",
    "per-mu-ranking",
]
MU = 10000 / 15  # m² in one 亩


@pytest.fixture(scope="module")
def api(sample_server):
    base, _, token, _ = sample_server
    with httpx.Client(base_url=base, timeout=120) as c:
        yield c, bearer(token)


def _sheets(content: bytes) -> dict[str, tuple[list, list[dict], tuple]]:
    """Per sheet: (rows 1–2, rows keyed by Chinese header, the 合计 row)."""
    wb = openpyxl.load_workbook(io.BytesIO(content))
    out = {}
    for ws in wb.worksheets:
        v = list(ws.iter_rows(values_only=True))
        assert ws.freeze_panes == "B4"
        header = list(v[2])
        assert str(v[-1][0]).startswith("合计(")
        out[ws.title] = (v[:2], [dict(zip(header, r, strict=True)) for r in v[3:-1]], v[-1])
    return out


def _get(api, name: str, fmt: str = "xlsx", analyst: bool = True, **params):
    c, h = api
    r = c.get(
        f"/api/reports/{name}", params={"format": fmt, **params}, headers=h if analyst else {}
    )
    assert r.status_code == 200, r.text
    return r


def _check_layout(content: bytes) -> dict:
    sheets = _sheets(content)
    unit = get_rules().publication.publisher
    for title, (top, rows, total) in sheets.items():
        assert top[1][:2] == (f"制表日期: {date.today().isoformat()}", f"制表单位: {unit}")
        assert total[0] == f"合计({len(rows)})", title
        header = list(rows[0]) if rows else []
        for i, h in enumerate(header):  # every count and area column is summed in 合计
            if h.endswith(("(宗)", "(家)", "(亩)", "(个)")):
                assert total[i] == pytest.approx(sum(r[h] or 0 for r in rows), abs=1e-3), h
    return sheets


def test_catalogue(api):
    c, _ = api
    body = c.get("/api/reports").json()
    assert [r["name"] for r in body["items"]] == NAMES and body["formats"] == ["xlsx", "pdf"]
    r = c.get("/api/reports/nothing")
    assert r.status_code == 404 and "unsupplied-by-year" in r.json()["detail"]


def test_unsupplied_by_year_equals_the_api(api):
    c, h = api
    items = c.get(
        "/api/land/unsupplied", params={"status": "all", "limit": 10000}, headers=h
    ).json()["items"]
    want: dict[tuple, dict] = defaultdict(lambda: Counter())
    for it in items:
        k = (int(it["approved_on"][:4]), it["district"])
        want[k]["n"] += 1
        want[k]["approved"] += it["approved_m2"] / MU
        want[k]["supplied"] += it["supplied_m2"] / MU
        want[k]["unsupplied"] += it["unsupplied_mu"]
    ((_, rows, _),) = _check_layout(_get(api, "unsupplied-by-year").content).values()
    assert len(rows) == len(want) > 1
    for r in rows:
        w = want[(r["批准年度"], r["区县代码"])]
        assert r["批次(个)"] == w["n"]
        assert r["批准面积(亩)"] == pytest.approx(w["approved"], abs=1e-3)
        assert r["未供面积(亩)"] == pytest.approx(w["unsupplied"], abs=1e-3)
        assert r["供地率"] == pytest.approx(w["supplied"] / w["approved"], abs=1e-4)
    years = sorted({y for y, _ in want})
    ((_, older, _),) = _sheets(_get(api, "unsupplied-by-year", year=years[0]).content).values()
    assert {r["批准年度"] for r in older} == {years[0]}


def test_idle_disposal_equals_the_api(api):
    c, h = api
    items = c.get("/api/land/idle", params={"status": "all", "limit": 10000}, headers=h).json()
    flagged = {t.code: t.label for t in vocabulary.vocabulary("idle_status").terms if t.flagged}
    count, mu = Counter(), Counter()
    for it in items["items"]:
        if it["status"] in flagged:
            count[(it["district"], it["status"])] += 1
            mu[(it["district"], it["status"])] += it["area_mu"]
    ((_, rows, _),) = _check_layout(_get(api, "idle-disposal").content).values()
    assert sum(count.values()) > 0
    for r in rows:
        for code, label in flagged.items():
            assert r[f"{label}(宗)"] == count[(r["区县代码"], code)]
            assert r[f"{label}(亩)"] == pytest.approx(mu[(r["区县代码"], code)], abs=1e-3)
    assert sum(r["合计(宗)"] for r in rows) == sum(count.values())


def test_low_efficiency_by_reason_equals_the_api(api):
    c, h = api
    items = c.get("/api/land/low-efficiency", params={"limit": 10000}, headers=h).json()["items"]
    reasons = vocabulary.labels("low_efficiency_reason")
    count = Counter((it["platform"], code) for it in items for code in it["reason_codes"])
    ((_, rows, _),) = _check_layout(_get(api, "low-efficiency-by-reason").content).values()
    assert sum(r["低效用地(宗)"] for r in rows) == len(items) > 0
    for r in rows:
        for code, label in reasons.items():
            assert r[f"{label}(宗)"] == count[(r["平台代码"], code)], (r["平台代码"], code)


def test_abcd_summary_equals_the_api(api):
    c, h = api
    ev = c.get("/api/evaluations", params={"limit": 10000}, headers=h).json()
    sheets = _check_layout(_get(api, "abcd-summary").content)
    assert len(sheets) == 2
    for (_, rows, _), level, col in zip(
        sheets.values(), ("district", "platform"), ("区县代码", "平台代码"), strict=True
    ):
        count = Counter((it[level], it["class"]) for it in ev["items"])
        for r in rows:
            for k in "ABCD":
                assert r[f"{k}类(家)"] == count[(r[col], k)], (level, r[col], k)
        assert sum(r["A类(家)"] for r in rows) == sum(1 for i in ev["items"] if i["class"] == "A")


def test_per_mu_ranking_equals_the_api_and_withholds_tax(api):
    c, h = api
    for analyst in (True, False):
        ind = c.get(
            "/api/indicators", params={"level": "platform"}, headers=h if analyst else {}
        ).json()
        ((_, rows, _),) = _check_layout(
            _get(api, "per-mu-ranking", analyst=analyst).content
        ).values()
        by_code = {z["code"]: z for z in ind["items"]}
        assert [r["平台代码"] for r in rows] == list(by_code)
        tax = vocabulary.label("indicator", "tax_per_mu")
        assert (tax in rows[0]) is analyst and ("tax_per_mu" in ind["indicators"]) is analyst
        for r in rows:
            for code, v in by_code[r["平台代码"]]["indicators"].items():
                lab = vocabulary.label("indicator", code)
                assert r[lab] == pytest.approx(v["value"]) if v["value"] is not None else True
                assert r[f"{lab}排名"] == v["rank"]


@pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="needs poppler-utils")
@pytest.mark.parametrize("name", ["idle-disposal", "abcd-summary"])
def test_pdf_pages_render_with_their_text(api, name, tmp_path):
    r = _get(api, name, "pdf")
    assert r.headers["content-type"] == "application/pdf" and r.content[:5] == b"%PDF-"
    pdf = tmp_path / "r.pdf"
    pdf.write_bytes(r.content)
    subprocess.run(["pdftoppm", "-r", "40", "-png", str(pdf), str(tmp_path / "p")], check=True)
    pages = sorted(tmp_path.glob("p*.png"))
    assert pages and all(p.stat().st_size > 1000 for p in pages)
    words = subprocess.run(
        ["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    assert "制表单位" in words and "制表日期" in words and "合计" in words
    assert get_rules().publication.publisher in words.replace(" ", "")
    if name == "abcd-summary":
        assert "A类(家)" in words.replace(" ", "")


def test_cli_writes_the_same_workbook(sample_server, api, tmp_path):
    import os
    import sys

    _, eng, _, _ = sample_server
    out = tmp_path / "abcd.xlsx"
    env = {**os.environ, "DATABASE_URL": eng.url.render_as_string(hide_password=False)}
    r = subprocess.run(
        [sys.executable, "-m", "app.cli", "report", "abcd-summary", "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert r.returncode == 0, r.stderr
    assert _sheets(out.read_bytes()) == _sheets(_get(api, "abcd-summary").content)
    bad = subprocess.run(
        [sys.executable, "-m", "app.cli", "report", "nothing", "--out", str(tmp_path / "x.xlsx")],
        capture_output=True,
        text=True,
        env=env,
    )
    assert bad.returncode == 2 and "unknown report" in bad.stderr
