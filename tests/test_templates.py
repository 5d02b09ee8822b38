"""Excel templates for the departments: the workbook, header forms an import accepts, and a
refused workbook handed back marked (CLI ``--report-xlsx``, HTTP ``report=xlsx``)."""

from __future__ import annotations

import io
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
from sqlalchemy import text

from gis.core import tokens
from gis.core.layers import LAYERS, SUPPLY_METHODS, YEARS, layer
from gis.ingest import ImportOptions, ImportRejected, InputError, import_file
from gis.ingest import template as tpl
from gis.ingest.read import header_codes
from tests.conftest import snapshot
from tests.factories import X0, Y0, uscc

XLSX = tpl.XLSX_MEDIA_TYPE

QY_ROWS = [
    {
        "TYSHXYDM": uscc(1),
        "QYMC": "杭州甲科技有限公司",
        "HYDM": "3911",
        "GMYS": 1,
        "X": X0 + 10,
        "Y": Y0 + 20,
        "ZBXT": "EPSG:4549",
    },
    {"TYSHXYDM": uscc(2), "QYMC": "杭州乙农业服务有限公司", "HYDM": "0511", "GMYS": 0},
]
CC_ROWS = [
    {"TYSHXYDM": uscc(1), "ND": 2023, "GYZCZ": 1200.5, "SJSJ": 86.5, "CYRS": 120},
    {"TYSHXYDM": uscc(2), "ND": 2023, "SJSJ": 3.25},
]


def book(data: bytes) -> openpyxl.Workbook:
    return openpyxl.load_workbook(io.BytesIO(data))


def validations(ws) -> dict[str, object]:
    """Column letter -> its data validation (each template column has one)."""
    out = {}
    for dv in ws.data_validations.dataValidation:
        ref = str(dv.sqref)
        assert ref.endswith("1048576"), ref
        out[ref.split("2:")[0]] = dv
    return out


def fill(code: str, rows: list[dict], path: Path, headers: str = "label(code)") -> Path:
    """The layer's template filled in as a clerk would: one row per dict (field codes), the
    headers kept (``label(code)``) or rewritten as ``label``, ``short`` (a label without its
    unit), ``code`` or ``full-width`` (``企业名称（QYMC）``)."""
    lyr = layer(code)
    wb = book(tpl.workbook(lyr))
    ws = wb.worksheets[0]
    fields = lyr.table_fields
    for i, f in enumerate(fields, start=1):
        ws.cell(1, i).value = {
            "label(code)": f"{f.label}({f.code})",
            "label": f.label,
            "short": f.label.split("(")[0],
            "code": f.code,
            "full-width": f"{f.label}（{f.code}）",
        }[headers]
    for r, row in enumerate(rows, start=2):
        for i, f in enumerate(fields, start=1):
            if f.code in row:
                ws.cell(r, i).value = row[f.code]
    wb.save(path)
    return path


# --- the workbook ---------------------------------------------------------------------------


def test_the_cc_template_has_marked_headers_formats_and_validations():
    wb = book(tpl.workbook(layer("cc")))
    assert wb.sheetnames == ["企业产出(CC)", "填表说明"]
    ws = wb.worksheets[0]
    heads = [c.value for c in ws[1]]
    assert heads[:4] == [
        "统一社会信用代码(TYSHXYDM)",
        "年度(ND)",
        "工业总产值(万元)(GYZCZ)",
        "营业收入(万元)(YYSR)",
    ]
    assert "实缴税金(万元)(SJSJ)" in heads and len(heads) == len(layer("cc").fields)
    assert ws.freeze_panes == "A2"
    # required: bold, orange, comment "必填"; optional: none of that
    for col, required in (("A", True), ("B", True), ("C", False), ("F", True), ("G", False)):
        cell = ws[f"{col}1"]
        assert cell.font.b is required, col
        assert cell.fill.fgColor.rgb.endswith(tpl.REQUIRED_FILL) is required, col
        assert cell.comment.text.startswith("必填" if required else "选填"), col
    assert "万元" in ws["F1"].comment.text
    dv = validations(ws)
    assert (dv["B"].type, dv["B"].operator, dv["B"].formula1, dv["B"].formula2) == (
        "whole",
        "between",
        str(YEARS[0]),
        str(YEARS[1]),
    )
    assert dv["B"].showErrorMessage and "1949" in dv["B"].error
    assert dv["F"].type == "decimal" and dv["C"].type == "decimal"
    assert dv["A"].type is None and dv["A"].prompt.startswith("必填")
    # codes as text (leading zeros kept), numbers and years as numbers
    dims = ws.column_dimensions
    assert (dims["A"].number_format, dims["B"].number_format, dims["F"].number_format) == (
        "@",
        "0",
        "0.00",
    )
    assert dims["A"].width >= len("统一社会信用代码") * 2 + len("(TYSHXYDM)")
    assert ws.max_row == 1  # no empty rows that an import would read as data


def test_the_qy_template_has_coordinates_and_a_yes_no_list():
    wb = book(tpl.workbook(layer("qy")))
    ws = wb["企业名录(QY)"]
    heads = [c.value for c in ws[1]]
    assert heads == [
        "统一社会信用代码(TYSHXYDM)",
        "企业名称(QYMC)",
        "行业代码(HYDM)",
        "规模以上(GMYS)",
        "占用地块(DKBH)",
        "X坐标(X)",
        "Y坐标(Y)",
        "坐标系统(ZBXT)",
    ]
    dv = validations(ws)
    assert (dv["D"].type, dv["D"].formula1) == ("list", '"1,0"')  # GMYS
    assert dv["D"].showErrorMessage
    # ZBXT: common codes offered, any other CRS code accepted
    assert dv["H"].type == "list" and "EPSG:4549" in dv["H"].formula1
    assert "gcj02" in dv["H"].formula1 and not dv["H"].showErrorMessage
    assert dv["F"].type == "decimal" and dv["G"].type == "decimal"
    dims = ws.column_dimensions
    assert dims["C"].number_format == "@" and dims["E"].number_format == "@"  # HYDM, DKBH
    assert ws["B1"].font.b and not ws["D1"].font.b
    notes = {r[0]: r[1] for r in wb["填表说明"].iter_rows(values_only=True) if r[0]}
    coords = notes["坐标"]
    for words in ("EPSG:4549", "米", "EPSG:4490", "经纬度", "gcj02", "ZBXT"):
        assert words in coords, words
    assert "TYSHXYDM" in notes["主键"]
    assert "UTF-8" in notes["编码"] and "GBK" in notes["编码"]


def test_allowed_values_and_dates_of_the_supply_template():
    ws = book(tpl.workbook(layer("gd"))).worksheets[0]
    heads = [c.value for c in ws[1]]
    dv = validations(ws)
    col = openpyxl.utils.get_column_letter(heads.index("供地方式(GDFS)") + 1)
    assert (dv[col].type, dv[col].formula1) == ("list", '"' + ",".join(SUPPLY_METHODS) + '"')
    date_col = openpyxl.utils.get_column_letter(heads.index("供地日期(GDRQ)") + 1)
    assert dv[date_col].type == "date"
    assert (dv[date_col].formula1, dv[date_col].formula2) == ("1", "73415")  # 1900..2100
    assert ws.column_dimensions[date_col].number_format == "yyyy-mm-dd"


@pytest.mark.parametrize("code", list(LAYERS))
def test_the_notes_sheet_lists_every_field_with_its_meaning(code):
    lyr = layer(code)
    wb = book(tpl.workbook(lyr))
    assert wb.worksheets[0].title == tpl.sheet_title(lyr)
    rows = list(wb["填表说明"].iter_rows(min_row=4, values_only=True))
    listed = [r for r in rows if r[0] in {f.code for f in lyr.table_fields} and r[2]]
    assert [r[0] for r in listed] == [f.code for f in lyr.table_fields]
    for r, f in zip(listed, lyr.table_fields, strict=True):
        assert r[1] == f.label and r[2] == tpl.header(f)
        assert (r[4] == "是") is f.required
        assert r[7] and (f"{code}.{f.code}" in tpl.MEANINGS or f.code in tpl.MEANINGS)
        if f.choices:
            assert r[6] == " / ".join(f.choices)
    notes = {r[0]: r[1] for r in rows if r[0] and not r[2]}
    key = " + ".join(tpl.header(lyr.field(k)) for k in lyr.key)
    assert notes["主键"].startswith(key)
    assert (":" in notes["主键"]) is (len(lyr.key) > 1)  # how a composite key is written
    assert ("图形" in notes) is (lyr.geometry in ("polygon", "polygon_or_table"))
    if lyr.geometry == "polygon":
        assert "Shapefile" in notes["图形"] and "属性" in notes["图形"]
    assert ("坐标" in notes) is (lyr.geometry == "point_or_table")


# --- header forms -----------------------------------------------------------------------------


def test_headers_are_read_as_codes_labels_or_both():
    cc = layer("cc")
    got = header_codes(
        [
            "统一社会信用代码(TYSHXYDM)",
            "年度（ND）",  # full-width parentheses
            "工业总产值(万元)",  # the label
            "营业收入",  # the label without its unit
            "*实缴税金(万元)(SJSJ)",  # a required mark
            "yffy",  # a code in lower case
            "用地面积(m2)",  # m2 for m²
            "备注",  # no field: kept for the warning
            "企业名称(QYMC)",  # a code of another layer: kept
        ],
        cc,
        "CC.xlsx",
    )
    assert got[:7] == ["TYSHXYDM", "ND", "GYZCZ", "YYSR", "SJSJ", "YFFY", "YDMJ"]
    assert got[7:] == ["备注", "企业名称(QYMC)"]
    qy = header_codes(["X坐标", "Y坐标(Y)", "坐标系统"], layer("qy"), "QY.csv")
    assert qy == ["X", "Y", "ZBXT"]
    assert header_codes(["X坐标"], layer("cc"), "CC.csv") == ["X坐标"]  # no point columns
    with pytest.raises(InputError, match="'QYMC' and '企业名称' both give field QYMC"):
        header_codes(["QYMC", "企业名称"], layer("qy"), "QY.xlsx")


@pytest.mark.parametrize("headers", ["label(code)", "label", "short", "code", "full-width"])
def test_a_filled_template_imports_whatever_the_header_form(db, tmp_path, headers):
    qy = import_file(db, "qy", fill("qy", QY_ROWS, tmp_path / "QY.xlsx", headers))
    cc = import_file(db, "cc", fill("cc", CC_ROWS, tmp_path / "CC.xlsx", headers))
    assert (qy["inserted"], cc["inserted"]) == (2, 2)
    assert not any("not in the contract" in w for w in qy["warnings"] + cc["warnings"])
    with db.connect() as c:
        got = c.execute(
            text(
                "SELECT uscc, name, industry_code, above_size, source_crs, "
                "round(ST_X(geom)::numeric, 1), round(ST_Y(geom)::numeric, 1) "
                "FROM enterprises ORDER BY uscc"
            )
        ).all()
        outputs = c.execute(
            text("SELECT uscc, year, gross_output, tax_paid, employees FROM outputs ORDER BY 1")
        ).all()
    assert [tuple(r) for r in got] == [
        (uscc(1), "杭州甲科技有限公司", "3911", True, "EPSG:4549", X0 + 10, Y0 + 20),
        (uscc(2), "杭州乙农业服务有限公司", "0511", False, None, None, None),
    ]
    assert [tuple(r) for r in outputs] == [
        (uscc(1), 2023, 1200.5, 86.5, 120.0),
        (uscc(2), 2023, None, 3.25, None),
    ]


def test_label_headers_work_for_csv_too(db, tmp_path):
    qy = tmp_path / "QY.csv"
    pd.DataFrame(
        {
            "统一社会信用代码（TYSHXYDM）": [uscc(1)],
            "企业名称": ["杭州甲科技有限公司"],
            "行业代码(HYDM)": ["3911"],
            "备注": ["不是合同字段"],
        }
    ).to_csv(qy, index=False, encoding="gbk")
    rep = import_file(db, "qy", qy)
    assert rep["inserted"] == 1 and rep["encoding"] == "gb18030"
    assert "columns not in the contract, ignored: 备注" in rep["warnings"]
    cc = tmp_path / "CC.csv"
    pd.DataFrame({"统一社会信用代码": [uscc(1)], "年度": [2024], "实缴税金": ["12.5"]}).to_csv(
        cc, index=False, encoding="utf-8-sig"
    )
    assert import_file(db, "cc", cc)["inserted"] == 1
    with db.connect() as c:
        assert c.execute(text("SELECT name FROM enterprises")).scalar() == "杭州甲科技有限公司"
        assert c.execute(text("SELECT year, tax_paid FROM outputs")).one() == (2024, 12.5)
    # a required field under a label that names no field is missing, and the message says so
    bad = tmp_path / "CC2.csv"
    pd.DataFrame({"统一社会信用代码": [uscc(1)], "年份": [2024], "实缴税金": [1]}).to_csv(
        bad, index=False
    )
    with pytest.raises(InputError, match=r"required column\(s\) ND missing.*年份"):
        import_file(db, "cc", bad)


def test_chinese_field_names_of_a_spatial_file_are_read_too(db, tmp_path):
    import geopandas as gpd

    from tests.factories import box

    path = tmp_path / "ZL.geojson"
    gpd.GeoDataFrame(
        {"走廊代码（ZLDM）": ["CXKC"], "走廊名称": ["城西科创大走廊"]}, geometry=[box(0)], crs=4549
    ).to_file(path, engine="pyogrio")
    assert import_file(db, "zl", path)["inserted"] == 1
    with db.connect() as c:
        assert c.execute(text("SELECT code, name FROM corridors")).one() == (
            "CXKC",
            "城西科创大走廊",
        )


# --- marked workbooks -------------------------------------------------------------------------


def test_marked_puts_each_reason_on_its_cell_and_clears_an_earlier_round(tmp_path):
    src = fill("cc", CC_ROWS, tmp_path / "CC.xlsx", "label")
    report = {
        "file": "CC.xlsx",
        "layer": "CC",
        "status": "rejected",
        "rejected": 2,
        "errors_total": 4,
        "errors": [
            {"where": "row 2", "key": uscc(1), "field": "SJSJ", "reason": "not a number"},
            {"where": "row 2", "key": uscc(1), "field": "SJSJ", "reason": "second reason"},
            {"where": "row 3", "key": None, "field": "TYSHXYDM+ND", "reason": "duplicate key"},
            {"where": "row 3", "key": None, "field": "geometry", "reason": "a row problem"},
        ],
    }
    ws = book(tpl.marked(src, report))["企业产出(CC)"]
    assert ws["F2"].fill.fgColor.rgb.endswith(tpl.BAD_FILL)
    assert ws["F2"].comment.text == "SJSJ: not a number\nSJSJ: second reason"
    # a composite key marks each of its columns; a field that is no column, the first cell
    assert "duplicate key" in ws["A3"].comment.text and "a row problem" in ws["A3"].comment.text
    assert "duplicate key" in ws["B3"].comment.text
    assert ws["C2"].comment is None and ws["B2"].comment is None
    assert ws["A1"].comment.author == tpl.AUTHOR  # the header's note is kept
    assert len(ws.data_validations.dataValidation) == len(layer("cc").fields)
    wb = book(tpl.marked(src, report))
    assert wb.sheetnames == ["企业产出(CC)", "填表说明", "导入问题"]
    problems = list(wb["导入问题"].iter_rows(values_only=True))
    assert "4 个问题" in problems[0][0] and "整个文件未导入" in problems[0][0]
    assert problems[2] == ("row 2", uscc(1), "SJSJ", "not a number")
    assert "只列出" not in problems[0][0]
    more = {**report, "errors_total": 1500, "dry_run": True}
    first = book(tpl.marked(src, more))["导入问题"]["A1"].value
    assert "1500 个问题" in first and "只列出前 4 个" in first and "什么也没有改变" in first
    # sent back after a fix: only this round's problems are marked
    again = tmp_path / "again.xlsx"
    again.write_bytes(tpl.marked(src, report))
    second = {**report, "errors": report["errors"][2:3], "errors_total": 1}
    wb = book(tpl.marked(again, second))
    ws = wb.worksheets[0]
    assert ws["F2"].comment is None and not ws["F2"].fill.fgColor.rgb.endswith(tpl.BAD_FILL)
    assert ws["B3"].comment.text == "TYSHXYDM+ND: duplicate key"
    assert wb.sheetnames.count("导入问题") == 1


def test_marked_refuses_a_sheet_too_large_or_a_damaged_workbook(tmp_path, monkeypatch):
    src = fill("cc", CC_ROWS, tmp_path / "CC.xlsx")
    monkeypatch.setattr(tpl, "MARK_MAX_CELLS", 10)
    with pytest.raises(tpl.TooLargeToMark, match="33 cells"):
        tpl.marked(src, {"layer": "CC", "errors": []})
    broken = tmp_path / "broken.xlsx"
    broken.write_bytes(b"PK\x03\x04 not a workbook")
    with pytest.raises(tpl.CannotMark, match="cannot be opened"):
        tpl.marked(broken, {"layer": "CC", "errors": []})


def test_a_strict_import_refuses_a_bad_template_and_marks_its_cells(db, tmp_path):
    import_file(db, "qy", fill("qy", QY_ROWS, tmp_path / "QY.xlsx"))
    rows = [
        {**CC_ROWS[0], "SJSJ": "八十六"},
        {**CC_ROWS[1], "ND": 1850},
        {"TYSHXYDM": uscc(9), "ND": 2023, "SJSJ": 1},  # no such enterprise
    ]
    src = fill("cc", rows, tmp_path / "CC.xlsx")
    before = snapshot(db)
    with pytest.raises(ImportRejected) as e:
        import_file(db, "cc", src)
    assert snapshot(db) == before
    ws = book(tpl.marked(src, e.value.report)).worksheets[0]
    assert "not a number" in ws["F2"].comment.text  # SJSJ, row 2
    assert "not a plausible year" in ws["B3"].comment.text  # ND, row 3
    assert "is not in layer QY" in ws["A4"].comment.text  # TYSHXYDM, row 4
    marked_cells = {
        c.coordinate for row in ws.iter_rows(min_row=2) for c in row if c.comment is not None
    }
    assert marked_cells == {"F2", "B3", "A4"}


def test_import_options_sheet_is_the_sheet_marked(db, tmp_path):
    """``--sheet``: the sheet the import read is the one marked."""
    import_file(db, "qy", fill("qy", QY_ROWS, tmp_path / "QY.xlsx"))
    src = fill("cc", [{**CC_ROWS[0], "GYZCZ": "约1200"}], tmp_path / "CC.xlsx")
    wb = openpyxl.load_workbook(src)
    wb.move_sheet("填表说明", offset=-1)  # the data is no longer the first sheet
    wb.save(src)
    with pytest.raises(ImportRejected) as e:
        import_file(db, "cc", src, ImportOptions(sheet="企业产出(CC)"))
    wb = book(tpl.marked(src, e.value.report))
    assert wb["企业产出(CC)"]["C2"].comment.text == "GYZCZ: not a number"
    assert all(c.comment is None for row in wb["填表说明"].iter_rows() for c in row)


# --- the CLI ----------------------------------------------------------------------------------


def test_landlink_template_writes_the_workbook(tmp_path):
    from tests.test_cli import run

    r = run("template", "cc", "--out", str(tmp_path / "cc.xlsx"))
    assert r.returncode == 0, r.stderr
    assert str(tmp_path / "cc.xlsx") in r.stdout
    assert book((tmp_path / "cc.xlsx").read_bytes()).sheetnames == ["企业产出(CC)", "填表说明"]
    r = subprocess_in(tmp_path, "template", "DK")  # default name, in the current folder
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "DK_template.xlsx").exists() and "DK_template.xlsx" in r.stdout
    assert "needs polygons" in r.stderr
    r = run("template", "zz")
    assert r.returncode == 2 and "unknown layer 'zz'" in r.stderr


def subprocess_in(folder: Path, *args: str):
    import os
    import subprocess

    from tests.test_cli import LANDLINK

    return subprocess.run(
        [LANDLINK, *args], capture_output=True, text=True, timeout=300, cwd=folder, env=os.environ
    )


def test_cli_report_xlsx_writes_the_marked_workbook(db, tmp_path):
    from tests.test_cli import run

    assert run("import", "qy", str(fill("qy", QY_ROWS, tmp_path / "QY.xlsx"))).returncode == 0
    bad = fill("cc", [{**CC_ROWS[0], "ND": "二〇二三"}, CC_ROWS[1]], tmp_path / "CC.xlsx", "code")
    out = tmp_path / "CC_marked.xlsx"
    before = snapshot(db)
    r = run("import", "cc", str(bad), "--report-xlsx", str(out))
    assert r.returncode == 1 and "nothing was imported" in r.stderr
    assert f"marked workbook written to {out}" in r.stderr
    assert snapshot(db) == before
    ws = book(out.read_bytes()).worksheets[0]
    assert ws["B2"].fill.fgColor.rgb.endswith(tpl.BAD_FILL)
    assert ws["B2"].comment.text == "ND: not a number"
    assert ws["B2"].value == "二〇二三" and ws["A1"].value == "TYSHXYDM"  # the clerk's workbook
    # lenient: the good row loads, the marked workbook shows the other
    out.unlink()
    r = run("import", "cc", str(bad), "--lenient", "--report-xlsx", str(out))
    assert r.returncode == 0 and "inserted 1" in r.stdout and "rejected 1" in r.stdout
    ws = book(out.read_bytes()).worksheets[0]
    assert ws["B2"].comment.text == "ND: not a number" and ws["B3"].comment is None
    problems = book(out.read_bytes())["导入问题"]
    assert "其余的行已导入" in problems["A1"].value
    # not an .xlsx: refused before anything is read
    csv = tmp_path / "CC.csv"
    pd.DataFrame(CC_ROWS).to_csv(csv, index=False)
    r = run("import", "cc", str(csv), "--report-xlsx", str(tmp_path / "x.xlsx"))
    assert r.returncode == 2 and "--report-xlsx marks the cells of an .xlsx file" in r.stderr
    assert not (tmp_path / "x.xlsx").exists()


# --- HTTP -------------------------------------------------------------------------------------


def test_the_template_over_http_is_public(http):
    r = http.get("/api/layers/cc/template.xlsx")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == XLSX
    cd = r.headers["content-disposition"]
    assert cd.startswith("attachment;") and 'filename="CC_template.xlsx"' in cd
    # 企业产出(CC)_填报模板.xlsx, percent-encoded as RFC 5987 wants
    assert "filename*=UTF-8''%E4%BC%81%E4%B8%9A%E4%BA%A7%E5%87%BA%28CC%29_" in cd
    assert book(r.content).sheetnames == ["企业产出(CC)", "填表说明"]
    assert http.get("/api/layers/QY/template.xlsx").status_code == 200
    r = http.get("/api/layers/zz/template.xlsx")
    assert r.status_code == 404 and "unknown layer 'zz'" in r.json()["message"]


def test_a_refused_upload_with_report_xlsx_answers_with_the_marked_workbook(http, db, tmp_path):
    with db.begin() as c:
        h = {"Authorization": f"Bearer {tokens.create(c, 'admin', 'templates')}"}
    import_file(db, "qy", fill("qy", QY_ROWS, tmp_path / "QY.xlsx"))
    bad = fill("cc", [CC_ROWS[0], {**CC_ROWS[1], "SJSJ": None}], tmp_path / "CC.xlsx", "short")
    upload = [("files", ("产出2023.xlsx", bad.read_bytes(), XLSX))]
    before = snapshot(db)
    for how in ({"data": {"layer": "cc", "report": "xlsx"}}, {"params": {"report": "xlsx"}}):
        data = how.get("data", {"layer": "cc"})
        r = http.post("/api/imports", data=data, params=how.get("params"), files=upload, headers=h)
        assert r.status_code == 422, r.text
        assert r.headers["content-type"] == XLSX
        assert r.headers["x-import-errors"] == "1" and r.headers["x-import-batch"].isdigit()
        assert "filename*=UTF-8''%E4%BA%A7%E5%87%BA2023_" in r.headers["content-disposition"]
        ws = book(r.content).worksheets[0]
        assert ws["F3"].comment.text == "SJSJ: required field is empty"
        assert ws["F3"].fill.fgColor.rgb.endswith(tpl.BAD_FILL)
    # a dry run logs no attempt: no batch to name
    dry = {"layer": "cc", "report": "xlsx", "dry_run": "true"}
    r = http.post("/api/imports", data=dry, files=upload, headers=h)
    assert r.status_code == 422 and r.headers["content-type"] == XLSX
    assert "x-import-batch" not in r.headers
    assert snapshot(db) == before
    # the default answer stays the JSON report
    r = http.post("/api/imports", data={"layer": "cc"}, files=upload, headers=h)
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem")
    assert r.json()["report"]["errors"][0]["where"] == "row 3"
    # report=xlsx with a CSV: 400 before anything is imported
    csv = pd.DataFrame(CC_ROWS).to_csv(index=False).encode()
    r = http.post(
        "/api/imports",
        data={"layer": "cc", "report": "xlsx"},
        files=[("files", ("CC.csv", csv, "text/csv"))],
        headers=h,
    )
    assert r.status_code == 400 and "report=xlsx marks the cells" in r.json()["message"]
    # a good workbook with report=xlsx imports as usual and answers JSON
    good = fill("cc", CC_ROWS, tmp_path / "good.xlsx")
    r = http.post(
        "/api/imports",
        data={"layer": "cc", "report": "xlsx"},
        files=[("files", ("CC.xlsx", good.read_bytes(), XLSX))],
        headers=h,
    )
    assert r.status_code == 201 and r.json()["inserted"] == 2
    with db.connect() as c:
        assert c.execute(text("SELECT count(*) FROM outputs")).scalar() == 2
