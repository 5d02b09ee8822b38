"""Exports are safe to open: text a spreadsheet would run as a formula is escaped (OWASP's rule
for CSV injection) in every CSV and XLSX, public and analyst, and numbers stay numbers.

Enterprise names (QY, through the importer), a district's name, a supply's grantee and a
parcel's holder start with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return; every list
that writes files is fetched from a live server as CSV and XLSX, read back (csv, openpyxl) and
checked cell by cell.
"""

from __future__ import annotations

import csv
import io
import math
from datetime import date

import openpyxl
import pytest
from sqlalchemy import text

from gis.core import graph
from gis.serving.export import FORMULA_STARTS, spreadsheet_cell
from tests.eval_city import load, outputs, uscc
from tests.land_helpers import city, detect
from tests.test_land_api import analyst

NAMES = ['=HYPERLINK("http://x","y")', "+1+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1"]
AS_OF = date(2025, 6, 30)
FILES = [
    ("/api/enterprises", {}),
    ("/api/evaluations", {"year": 2024}),
    ("/api/indicators", {"level": "district", "year": 2024}),
    ("/api/land/idle", {"status": "all"}),
    ("/api/land/unsupplied", {"status": "all"}),
    ("/api/land/low-efficiency", {}),
    ("/api/land/summary", {"level": "district"}),
]


@pytest.fixture
def injected(http, db, tmp_path):
    city(db)
    with db.begin() as c:
        c.execute(text("UPDATE districts SET name = '-上城区' WHERE code = '330102'"))
        c.execute(text("UPDATE supplies SET grantee_name = '=1+2' WHERE supply_no = 'GD-W1'"))
        c.execute(text("UPDATE parcels SET holder_name = '@SUM(A1)' WHERE parcel_no = 'DK-W'"))
        c.execute(text("UPDATE enterprises SET above_size = false"))  # as an import has it
    usccs = [uscc(100 + i) for i in range(len(NAMES))]
    ents = [
        {"TYSHXYDM": u, "QYMC": n, "HYDM": "2611", "GMYS": i % 2, "DKBH": "DK-W"}
        for i, (u, n) in enumerate(zip(usccs, NAMES, strict=True))
    ]
    cc = []
    for i, u in enumerate(usccs):  # output falls from 2023 to 2024: negative changes
        cc.append({"TYSHXYDM": u, "ND": 2023, "GYZCZ": 900 + i, "YYSR": 800, "GYZJZ": 300,
                   "SJSJ": 50 + i, "CYRS": 20, "YFFY": 5, "ZHNH": 40, "PFDL": 3})  # fmt: skip
        cc.append({"TYSHXYDM": u, "ND": 2024, "GYZCZ": 400 + i, "YYSR": 500, "GYZJZ": 200,
                   "SJSJ": 40 + i, "CYRS": 20, "YFFY": 5, "ZHNH": 40, "PFDL": 3})  # fmt: skip
    load(db, tmp_path, qy=_qy_xlsx(tmp_path, ents), cc=outputs(tmp_path, cc))
    with db.begin() as conn:  # the rows written by SQL above: every derived table from scratch
        graph.refresh(conn, None, as_of=AS_OF)
    detect(db, AS_OF)
    with db.connect() as c:
        stored = [
            c.execute(text("SELECT name FROM enterprises WHERE uscc = :u"), {"u": u}).scalar_one()
            for u in usccs
        ]
    # what the importer kept (it may trim the blanks): still formulas to a spreadsheet
    assert all(s.startswith(FORMULA_STARTS) for s in stored), stored
    return http, db, stored


def _qy_xlsx(tmp_path, ents: list[dict]):
    """QY as the XLSX a bureau sends (a carriage return inside a CSV field would end its row)."""
    wb = openpyxl.Workbook()
    ws = wb.active
    cols = list(ents[0])
    ws.append(cols)
    for e in ents:
        ws.append([e[c] for c in cols])
    for row in ws.iter_rows(min_row=2):  # text cells, as typed: never formulas
        for c in row:
            if isinstance(c.value, str):
                c.data_type = "s"
    p = tmp_path / "QY.xlsx"
    wb.save(p)
    return p


def _csv_cells(content: bytes) -> list[list[str]]:
    assert content.startswith(b"\xef\xbb\xbf")
    return list(csv.reader(io.StringIO(content.decode("utf-8-sig"), newline="")))


def _number(cell: str) -> bool:
    try:
        return math.isfinite(float(cell))
    except ValueError:
        return False


def _check_text(cell, where: str) -> None:
    """No text cell starts like a formula (in CSV a cell that is a plain number, a negative
    one too, is a number)."""
    if isinstance(cell, str) and not (where.endswith("csv") and _number(cell)):
        assert not cell.startswith(FORMULA_STARTS), (where, cell)


def test_spreadsheet_cell():
    for n in NAMES:
        assert spreadsheet_cell(n) == "'" + n
    for v in (-2.5, -3, 0, 1.5, None, "上城区", "'=x", "a=b", " =1", "2024-01-01"):
        assert spreadsheet_cell(v) == v


@pytest.mark.parametrize("role", ["public", "analyst"])
def test_csv_and_xlsx_exports_are_escaped(injected, role):
    http, db, stored = injected
    headers = analyst(db) if role == "analyst" else None
    files = FILES + ([("/api/backward-capacity", {"year": 2024})] if role == "analyst" else [])
    seen_text: set[str] = set()
    negatives = {"csv": 0, "xlsx": 0}
    for path, params in files:
        js = http.get(path, params=params, headers=headers)
        assert js.status_code == 200, (path, js.text[:300])
        r = http.get(path, params={**params, "format": "csv"}, headers=headers)
        assert r.status_code == 200, (path, r.text[:300])
        rows = _csv_cells(r.content)
        for row in rows:
            assert len(row) == len(rows[0]), (path, row)
            for cell in row:
                _check_text(cell, f"{path} csv")
                seen_text.add(cell)
                if _number(cell) and float(cell) < 0:
                    negatives["csv"] += 1

        r = http.get(path, params={**params, "format": "xlsx"}, headers=headers)
        assert r.status_code == 200, (path, r.text[:300])
        wb = openpyxl.load_workbook(io.BytesIO(r.content))
        xrows = []
        for ws in wb.worksheets:
            for row in ws.iter_rows():
                for c in row:
                    assert c.data_type != "f", (path, ws.title, c.coordinate, c.value)
                    _check_text(c.value, f"{path} xlsx {c.coordinate}")
                    if isinstance(c.value, str):
                        seen_text.add(c.value)
                        assert c.data_type == "s", (path, c.coordinate, c.value)
                    if isinstance(c.value, (int, float)) and c.value < 0:
                        assert c.data_type == "n"
                        negatives["xlsx"] += 1
            xrows.append(list(ws.iter_rows(values_only=True)))
        # the same cells in both files (CSV has no types: compare as text): the headers, the
        # codes, the rows and 合计 (the XLSX has its heading and 制表日期 above them, the CSV its
        # 制表单位 and 制表日期 on the last line)
        sheet = xrows[0][2:]
        assert len(sheet) == len(rows) - 1, path
        for crow, xrow in zip(rows[:-1], sheet, strict=True):
            for cc, xc in zip(crow, xrow, strict=True):
                if isinstance(xc, str):
                    assert cc == xc, (path, cc, xc)
                elif isinstance(xc, (int, float)) and cc:
                    assert float(cc) == pytest.approx(xc), (path, cc, xc)
    # every injected text is there, escaped, and nowhere as it was
    for s in [*stored, "-上城区", "=1+2", "@SUM(A1)"]:
        assert "'" + s in seen_text, (s, role)
        assert s not in seen_text
    # negative numbers (the indicators' change on 2023) stayed numbers in both formats
    assert negatives["csv"] > 0 and negatives["xlsx"] > 0, negatives


def test_json_keeps_the_names_as_they_are(injected):
    http, _, stored = injected
    names = {i["name"] for i in http.get("/api/enterprises").json()["items"]}
    assert set(stored) <= names
